import { type CausalLm, type CausalLmConfig, sampleFrom, TINY_LLAMA_SHAPE } from '@specstream/core';
import { type AcceptRule, acceptDraft, speculativeGenerate } from '../src/index.js';
import { collect } from './helpers.js';

/**
 * The exactness test of speculative sampling, end to end: the joint law of
 * the first two generated tokens over a 4-token vocabulary, from one batched
 * run of many seeded rows, against the exact law computed from the target's
 * own softmax (with top-k applied where the case sets it); chi-square at the
 * 0.1% level. Shared by the wasm suite (20,000 rows) and the webgpu one.
 */
export const V = 4;
export const SAMPLING_CONFIG: CausalLmConfig = {
  ...TINY_LLAMA_SHAPE,
  vocabSize: V,
  hiddenSize: 16,
  layers: 1,
  heads: 2,
  kvHeads: 2,
};
const PROMPT = [1, 3, 0];
/** Critical values at the 0.1% level for 15 and 8 degrees of freedom (16 or 9 possible cells). */
export const CRITICAL = 37.7;
export const CRITICAL_8 = 26.12;

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
async function exactJoint(target: CausalLm, temperature: number, topK: number): Promise<number[]> {
  const [first] = await nextLaw(target, [PROMPT], temperature, topK);
  const second = await nextLaw(
    target,
    Array.from({ length: V }, (_, t) => [...PROMPT, t]),
    temperature,
    topK,
  );
  return Array.from({ length: V * V }, (_, c) => first[Math.floor(c / V)] * second[Math.floor(c / V)][c % V]);
}

export interface ChiSquareCase {
  target: CausalLm;
  draft: CausalLm;
  /** Seeded rows of the one batched run. */
  rows: number;
  rule?: AcceptRule;
  temperature: number;
  topK: number;
  k: number;
  seed: number;
}

export async function chiSquare(c: ChiSquareCase) {
  const { target, draft, rows: N, rule, temperature, topK, k, seed } = c;
  const exact = await exactJoint(target, temperature, topK);
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
  const impossible = exact.reduce((n, p, i) => n + (p === 0 ? counts[i] : 0), 0);
  const cells = exact.filter((p) => p > 0).length;
  const chi2 = exact.reduce((s, p, i) => (p > 0 ? s + (counts[i] - N * p) ** 2 / (N * p) : s), 0);
  return {
    chi2,
    cells,
    critical: cells === 16 ? CRITICAL : CRITICAL_8,
    impossible,
    minExpected: Math.min(...exact.filter((p) => p > 0)) * N,
    rates: run.rates(),
  };
}

/** The classic mistake: after a rejection, draw from p rather than from norm(max(0, p − q)). */
export const wrongRule: AcceptRule = (input) => {
  const result = acceptDraft(input);
  if (result.accepted === input.draft.length) return result;
  return { accepted: result.accepted, next: sampleFrom(input.p(result.accepted), input.rng) };
};
