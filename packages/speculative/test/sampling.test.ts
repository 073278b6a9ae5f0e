import {
  type CausalLm,
  type CausalLmConfig,
  createRng,
  initBackend,
  randomCausalLm,
  sampleFrom,
  TINY_LLAMA_SHAPE,
} from '@specstream/core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type AcceptRule, acceptDraft, speculativeGenerate } from '../src/index.js';
import { collect } from './helpers.js';

/**
 * Exactness of speculative sampling, end to end: the joint law of the first
 * two generated tokens over a 4-token vocabulary, from 20,000 seeded rows of
 * one batched run, against the exact law computed from the target's own
 * softmax (with top-k applied where the case sets it). Chi-square at the
 * 0.1% level. A known-wrong rule (draw from p instead of the residual after a
 * rejection) must fail the same test, showing it can fail.
 */
const V = 4;
const CONFIG: CausalLmConfig = {
  ...TINY_LLAMA_SHAPE,
  vocabSize: V,
  hiddenSize: 16,
  layers: 1,
  heads: 2,
  kvHeads: 2,
};
const PROMPT = [1, 3, 0];
const N = 20_000;
const CRITICAL = 37.7;
const CRITICAL_8 = 26.12;

let target: CausalLm;
let draft: CausalLm;

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  target = randomCausalLm(CONFIG, { seed: 11, std: 0.08 });
  draft = randomCausalLm(CONFIG, { seed: 29, std: 0.08 });
});
afterAll(() => {
  target.dispose();
  draft.dispose();
});

function softmax(logits: ArrayLike<number>, temperature: number): number[] {
  const scaled = Array.from(logits, (x) => x / temperature);
  const max = Math.max(...scaled);
  const e = scaled.map((x) => Math.exp(x - max));
  const total = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / total);
}

/** Last-position softmax of `model` after each of `contexts`, restricted to the topK most likely (0 = all). */
async function nextLaw(
  model: CausalLm,
  contexts: number[][],
  temperature: number,
  topK: number,
): Promise<number[][]> {
  const state = model.createState({ batch: contexts.length, maxLength: 16 });
  const { logits } = model.extendStep(state, contexts, { logits: 'last' });
  const values = await logits.data();
  logits.dispose();
  model.disposeState(state);
  return contexts.map((_, r) => {
    const law = softmax(values.subarray(r * V, (r + 1) * V), temperature);
    if (topK === 0) return law;
    const kept = [...law].sort((a, b) => b - a)[topK - 1];
    const cut = law.map((p) => (p >= kept ? p : 0));
    const total = cut.reduce((a, b) => a + b, 0);
    return cut.map((p) => p / total);
  });
}

/** Exact P(t1, t2) under the target, as a flat array of V*V cells. */
async function exactJoint(temperature: number, topK: number): Promise<number[]> {
  const [first] = await nextLaw(target, [PROMPT], temperature, topK);
  const second = await nextLaw(
    target,
    Array.from({ length: V }, (_, t) => [...PROMPT, t]),
    temperature,
    topK,
  );
  return Array.from({ length: V * V }, (_, c) => first[Math.floor(c / V)] * second[Math.floor(c / V)][c % V]);
}

async function chiSquare(
  rule: AcceptRule | undefined,
  temperature: number,
  topK: number,
  k: number,
  seed: number,
) {
  const exact = await exactJoint(temperature, topK);
  const run = speculativeGenerate({
    target,
    draft,
    k,
    prompt: Array.from({ length: N }, () => PROMPT),
    // The second token comes from the first verify pass; k + 2 lets that pass draft all k
    // (k is capped by the tokens still needed).
    maxNewTokens: k + 2,
    sampling: { temperature, topK, seed },
    acceptRule: rule,
  });
  const rows = await collect(run, N);
  const counts = new Array<number>(V * V).fill(0);
  for (const [a, b] of rows) counts[a * V + b]++;
  // Cells top-k makes impossible must stay empty; the others enter the statistic.
  const impossible = exact.reduce((n, p, c) => n + (p === 0 ? counts[c] : 0), 0);
  const cells = exact.filter((p) => p > 0).length;
  const chi2 = exact.reduce((s, p, c) => (p > 0 ? s + (counts[c] - N * p) ** 2 / (N * p) : s), 0);
  return {
    chi2,
    cells,
    impossible,
    minExpected: Math.min(...exact.filter((p) => p > 0)) * N,
    rates: run.rates(),
  };
}

/** The classic mistake: after a rejection, draw from p rather than from norm(max(0, p − q)). */
const wrongRule: AcceptRule = (input) => {
  const result = acceptDraft(input);
  if (result.accepted === input.draft.length) return result;
  return { accepted: result.accepted, next: sampleFrom(input.p(result.accepted), input.rng) };
};

describe('speculative sampling reproduces the target distribution', () => {
  test.each([
    [1, 0, 2, 7],
    [0.7, 0, 3, 8],
    [1, 3, 2, 9],
  ])(
    'temperature %f, top-k %i, k=%i: correct rule passes chi-square, wrong rule fails',
    async (temperature, topK, k, seed) => {
      const good = await chiSquare(undefined, temperature, topK, k, seed);
      // Critical values at the 0.1% level for 15 and 8 degrees of freedom (16 or 9 possible cells).
      const critical = good.cells === 16 ? CRITICAL : CRITICAL_8;
      expect(good.impossible).toBe(0);
      // Preconditions that make the test meaningful: every possible cell expected ≥ 20 times,
      // and a draft that disagrees often enough for the residual to matter.
      expect(good.minExpected).toBeGreaterThan(20);
      expect(good.rates.acceptanceRate).toBeLessThan(0.9);
      expect(good.rates.acceptanceRate).toBeGreaterThan(0.2);
      expect(good.chi2).toBeLessThan(critical);

      const bad = await chiSquare(wrongRule, temperature, topK, k, seed);
      expect(bad.chi2).toBeGreaterThan(critical * 3);
    },
  );
});

describe('acceptDraft on explicit distributions', () => {
  test('one position: the emitted token follows p whatever q is (50,000 draws)', () => {
    const p = new Float32Array([0.5, 0.3, 0.15, 0.05]);
    const q = new Float32Array([0.1, 0.2, 0.3, 0.4]);
    const rng = createRng(3);
    const counts = [0, 0, 0, 0];
    const draws = 50_000;
    for (let i = 0; i < draws; i++) {
      const d = sampleFrom(q, rng);
      const { accepted, next } = acceptDraft({ draft: [d], q: [q], p: () => p, rng });
      // With one drafted token the first emitted token is d if accepted, else the residual draw.
      counts[accepted === 1 ? d : next]++;
    }
    const chi2 = counts.reduce((s, c, i) => s + (c - draws * p[i]) ** 2 / (draws * p[i]), 0);
    expect(chi2).toBeLessThan(16.3); // 3 dof, 0.1%
  });

  test('greedy p accepts exactly while the argmax agrees, then emits the argmax', () => {
    const oneHot = (i: number) => Float32Array.from({ length: 5 }, (_, j) => (j === i ? 1 : 0));
    const targetArgmax = [2, 4, 1, 0];
    const rng = createRng(1);
    const p = (i: number) => oneHot(targetArgmax[i]);
    expect(acceptDraft({ draft: [2, 4, 1], p, rng })).toEqual({ accepted: 3, next: 0 });
    expect(acceptDraft({ draft: [2, 3, 1], p, rng })).toEqual({ accepted: 1, next: 4 });
    expect(acceptDraft({ draft: [], p, rng })).toEqual({ accepted: 0, next: 2 });
  });

  test('a draft vocabulary shorter than the target (padded) gives the extra ids zero q', () => {
    const p = new Float32Array([0, 0, 0, 1]); // all mass on an id the draft cannot propose
    const q = new Float32Array([0.5, 0.5, 0]);
    const { accepted, next } = acceptDraft({ draft: [0], q: [q], p: () => p, rng: createRng(2) });
    expect(accepted).toBe(0);
    expect(next).toBe(3);
  });

  test('mismatched q list is an error', () => {
    expect(() =>
      acceptDraft({
        draft: [1, 2],
        q: [new Float32Array(3)],
        p: () => new Float32Array(3),
        rng: Math.random,
      }),
    ).toThrow(/2 drafted tokens but 1 q distributions/);
  });
});
