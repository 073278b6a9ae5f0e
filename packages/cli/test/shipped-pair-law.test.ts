import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import {
  type CausalLm,
  createRng,
  initBackend,
  processLogits,
  type SamplingOptions,
  sampleFrom,
} from '@specstream/core';
import { loadCausalLm, loadTokenizer } from '@specstream/models';
import { type AcceptRule, acceptDraft, speculativeGenerate } from '@specstream/speculative';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { DEFAULT_DRAFT, DEFAULT_TARGET } from '../src/index.js';

/**
 * Exactness of speculative sampling with the shipped trained pair
 * (models/specstream-docs-target and -draft), end to end on wasm: the joint
 * law of the first two tokens generated after a fixed prompt, at temperature
 * 0.8 and top-k 4 (applied to the target's p and the draft's q alike), against
 * the exact target-alone law computed from the target's own logits;
 * chi-square at the 0.1% level over the K×K cells (those expected fewer
 * than 5 times pooled).
 *
 * maxNewTokens = 3 makes the second token a verified one: after the prefill's
 * token two are still needed, so k is capped at 1 and every row drafts one
 * token that the target accepts or replaces by a residual draw (the metrics
 * must show N drafted tokens). A row's third token is never read: the loop
 * stops once every row has two, which spares the batch a second target pass.
 *
 * With this prompt the pair often disagrees (α from 0.03 to 0.83 over the four
 * first tokens, and the draft's top 4 holds ids outside the target's), so the
 * residual carries a large share of the law. Of the 16 cells three are
 * expected fewer than 5 times at N = 600 and are pooled with the next
 * smallest: 13 groups, 12 degrees of freedom. A simulation under the exact
 * law itself rejects at the nominal rate (0.001 of 2000 seeded trials).
 *
 * Negative control: the classic mistake of drawing from p instead of
 * norm(max(0, p − q)) after a rejection has an exact law of its own, computed
 * below from p and q. Against it the test has noncentrality 89.5 at N = 600,
 * i.e. power 0.999996 (noncentral chi-square, 12 dof; 0.9975 at N = 400, and
 * 0.52 against a law only half as far from the target's); the simulation below
 * must find power > 0.99, and a run with that rule must fail the test.
 * Measured on a 2-core machine (wasm): 9.5–15 s for the file alone, each
 * 600-row sampling taking 3.7–6 s.
 */
const TOP_K = 4;
const SAMPLING: SamplingOptions = { temperature: 0.8, topK: TOP_K };
const PROMPT_TEXT = 'The list data type has';
/** Rows in all; each seeded run (seed = its index) holds BATCH of them. */
const N = 600;
const BATCH = 50;
const MAX_NEW_TOKENS = 3;
const MIN_EXPECTED = 5;
/** Chi-square critical values at the 0.1% level for 1…15 degrees of freedom (2…16 cells). */
const CRITICAL = [
  10.828, 13.816, 16.266, 18.467, 20.515, 22.458, 24.322, 26.124, 27.877, 29.588, 31.264, 32.909, 34.528,
  36.123, 37.697,
];

// The cli package does not depend on tfjs itself: the copy core resolves is the one whose engine counts.
const tf = createRequire(join(import.meta.dirname, '../../core/package.json'))('@tensorflow/tfjs-core') as {
  memory(): { numTensors: number };
};

/** The classic mistake: after a rejection, draw from p rather than from norm(max(0, p − q)). */
const wrongRule: AcceptRule = (input) => {
  const result = acceptDraft(input);
  if (result.accepted === input.draft.length) return result;
  return { accepted: result.accepted, next: sampleFrom(input.p(result.accepted), input.rng) };
};

/** One (t1, t2) cell: its probability under the target alone and under the wrong rule. */
interface Cell {
  t1: number;
  t2: number;
  p: number;
  wrong: number;
}

let target: CausalLm;
let draft: CausalLm;
let prompt: number[];
let tensorsBeforeLoad: number;

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  // The pair is committed: a checkout without it must fail here, not skip.
  for (const dir of [DEFAULT_TARGET, DEFAULT_DRAFT]) {
    expect(existsSync(join(dir, 'config.json')), `${dir}/config.json`).toBe(true);
  }
  tensorsBeforeLoad = tf.memory().numTensors;
  target = await loadCausalLm(DEFAULT_TARGET);
  draft = await loadCausalLm(DEFAULT_DRAFT);
  prompt = (await loadTokenizer(DEFAULT_TARGET)).encode(PROMPT_TEXT);
});

afterAll(() => {
  target?.dispose();
  draft?.dispose();
  if (tensorsBeforeLoad !== undefined) expect(tf.memory().numTensors).toBe(tensorsBeforeLoad);
});

/** `model`'s processed law (SAMPLING) of the token after each of `contexts`, from one extendStep. */
async function nextLaws(model: CausalLm, contexts: number[][]): Promise<Float32Array[]> {
  const vocab = model.config.vocabSize;
  const state = model.createState({
    batch: contexts.length,
    maxLength: Math.max(...contexts.map((c) => c.length)),
  });
  try {
    const { logits } = model.extendStep(state, contexts, { logits: 'last' });
    const values = (await logits.data().finally(() => logits.dispose())) as Float32Array;
    return contexts.map((_, r) => processLogits(values.slice(r * vocab, (r + 1) * vocab), SAMPLING));
  } finally {
    model.disposeState(state);
  }
}

const support = (law: Float32Array) => [...law.keys()].filter((id) => law[id] > 0);

/**
 * The exact joint law of (t1, t2) under the target alone, and the law the wrong
 * rule gives t2 after t1: min(p, q) from accepted drafts plus (1 − α)·p from
 * the draws after a rejection, α = Σ min(p, q).
 */
async function exactCells(): Promise<{ cells: Cell[]; alphas: number[] }> {
  const [first] = await nextLaws(target, [prompt]);
  const firsts = support(first);
  const contexts = firsts.map((t1) => [...prompt, t1]);
  const p = await nextLaws(target, contexts);
  const q = await nextLaws(draft, contexts);
  const cells: Cell[] = [];
  const alphas = firsts.map((t1, a) => {
    const alpha = p[a].reduce((s, pi, i) => s + Math.min(pi, q[a][i] ?? 0), 0);
    for (const t2 of support(p[a])) {
      const wrong = Math.min(p[a][t2], q[a][t2]) + (1 - alpha) * p[a][t2];
      cells.push({ t1, t2, p: first[t1] * p[a][t2], wrong: first[t1] * wrong });
    }
    return alpha;
  });
  return { cells, alphas };
}

/**
 * Groups of cell indices for the statistic: a cell expected at least MIN_EXPECTED
 * times stands alone, the rest are pooled, and a pool still short of it joins
 * the smallest group.
 */
function mergePlan(expected: number[]): number[][] {
  const order = expected.map((_, i) => i).sort((a, b) => expected[a] - expected[b]);
  const pooled = order.filter((i) => expected[i] < MIN_EXPECTED);
  const groups = order.filter((i) => expected[i] >= MIN_EXPECTED).map((i) => [i]);
  if (pooled.length === 0) return groups;
  const mass = pooled.reduce((s, i) => s + expected[i], 0);
  if (mass < MIN_EXPECTED && groups.length > 0) groups[0].push(...pooled);
  else groups.push(pooled);
  return groups;
}

function chiSquare(counts: number[], expected: number[], groups: number[][]): number {
  return groups.reduce((s, g) => {
    const o = g.reduce((x, i) => x + counts[i], 0);
    const e = g.reduce((x, i) => x + expected[i], 0);
    return s + (o - e) ** 2 / e;
  }, 0);
}

interface Sampled {
  /** Rows per cell; pairs outside the cells (impossible under the target) are counted apart. */
  counts: number[];
  impossible: number;
  drafted: number;
  accepted: number;
  rejections: number;
  iterations: number;
}

/** N rows' (t1, t2) in seeded batched runs (seeds seed0, seed0 + 1, …). */
async function sampleFirstTwo(cells: Cell[], rule: AcceptRule, seed0: number): Promise<Sampled> {
  const index = new Map(cells.map((c, i) => [`${c.t1},${c.t2}`, i]));
  const out: Sampled = {
    counts: new Array<number>(cells.length).fill(0),
    impossible: 0,
    drafted: 0,
    accepted: 0,
    rejections: 0,
    iterations: 0,
  };
  for (let run = 0; run < N / BATCH; run++) {
    const spec = speculativeGenerate({
      target,
      draft,
      k: 4,
      prompt: Array.from({ length: BATCH }, () => prompt),
      maxNewTokens: MAX_NEW_TOKENS,
      sampling: { ...SAMPLING, seed: seed0 + run },
      acceptRule: rule,
    });
    const rows: number[][] = Array.from({ length: BATCH }, () => []);
    let complete = 0;
    for await (const event of spec) {
      const row = rows[event.row];
      if (row.length === 2) continue;
      row.push(event.token);
      if (row.length === 2 && ++complete === BATCH) break;
    }
    for (const [t1, t2] of rows) {
      const i = index.get(`${t1},${t2}`);
      if (i === undefined) out.impossible++;
      else out.counts[i]++;
    }
    out.drafted += spec.metrics.draftedTokens;
    out.accepted += spec.metrics.acceptedTokens;
    out.rejections += spec.metrics.rejections;
    out.iterations += spec.metrics.iterations;
  }
  return out;
}

/** How often the test rejects multinomial(N, law) counts, over 2000 seeded simulations. */
function simulatedPower(law: number[], expected: number[], groups: number[][], critical: number): number {
  const trials = 2000;
  const rng = createRng(1);
  const weights = Float32Array.from(law);
  let rejected = 0;
  for (let t = 0; t < trials; t++) {
    const counts = new Array<number>(law.length).fill(0);
    for (let n = 0; n < N; n++) counts[sampleFrom(weights, rng)]++;
    if (chiSquare(counts, expected, groups) > critical) rejected++;
  }
  return rejected / trials;
}

describe('the shipped pair at temperature 0.8, top-k 4: (t1, t2) follows the target alone', () => {
  let cells: Cell[];
  let expected: number[];
  let groups: number[][];
  let critical: number;

  beforeAll(async () => {
    const exact = await exactCells();
    cells = exact.cells;
    expected = cells.map((c) => c.p * N);
    groups = mergePlan(expected);
    critical = CRITICAL[groups.length - 2];
    // Preconditions: K×K cells, read from the law itself; a pair that disagrees enough for the
    // residual to matter; few enough cells pooled that the test keeps most of its resolution.
    expect(target.config.vocabSize).toBe(draft.config.vocabSize);
    expect(cells).toHaveLength(TOP_K * TOP_K);
    expect(Math.min(...exact.alphas)).toBeLessThan(0.5);
    expect(groups.length).toBeGreaterThanOrEqual(TOP_K * TOP_K - 4);
    expect(critical).toBeDefined();
  });

  test('speculative sampling passes chi-square against the exact target law', async () => {
    const tensors = tf.memory().numTensors;
    const good = await sampleFirstTwo(cells, acceptDraft, 0);
    expect(tf.memory().numTensors).toBe(tensors);
    // Every row's second token was drafted (k capped at 1) and verified, in one pass per run.
    expect(good.iterations).toBe(N / BATCH);
    expect(good.drafted).toBe(N);
    expect(good.rejections).toBeGreaterThan(N / 4);
    expect(good.accepted).toBeGreaterThan(N / 4);
    expect(good.impossible).toBe(0);
    const chi2 = chiSquare(good.counts, expected, groups);
    // The pooled statistic keeps its level at this N: the exact law itself is rejected at ~0.1%.
    const size = simulatedPower(
      cells.map((c) => c.p),
      expected,
      groups,
      critical,
    );
    expect(size).toBeLessThan(0.005);
    expect(chi2, `chi-square ${chi2.toFixed(2)} on ${groups.length - 1} dof`).toBeLessThan(critical);
  });

  test('negative control: drawing from p after a rejection fails the same test at the same N', async () => {
    const wrong = cells.map((c) => c.wrong);
    // The control is meaningful only if this N can tell the two laws apart.
    expect(simulatedPower(wrong, expected, groups, critical)).toBeGreaterThan(0.99);
    const tensors = tf.memory().numTensors;
    const bad = await sampleFirstTwo(cells, wrongRule, 1000);
    expect(tf.memory().numTensors).toBe(tensors);
    expect(bad.drafted).toBe(N);
    expect(bad.impossible).toBe(0);
    const chi2 = chiSquare(bad.counts, expected, groups);
    expect(chi2, `chi-square ${chi2.toFixed(2)} on ${groups.length - 1} dof`).toBeGreaterThan(critical);
  });
});
