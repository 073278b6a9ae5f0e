import { type CausalLm, type CausalLmConfig, sampleFrom, TINY_LLAMA_SHAPE } from '@specstream/core';
import { type AcceptRule, acceptDraft, speculativeGenerate } from '../src/index.js';
import { collect } from './helpers.js';

/**
 * The exactness test of speculative sampling, end to end: the joint law of
 * the first two generated tokens over a 4-token vocabulary, from one batched
 * run of many seeded rows, against the exact law computed from the target's
 * own softmax (with top-k, then top-p, applied where the case sets them);
 * chi-square at the 0.1% level. Shared by the wasm suite (20,000 rows) and the
 * webgpu one.
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
/** Chi-square critical values at the 0.1% level for 1…15 degrees of freedom (2…16 possible cells). */
const CRITICAL = [
  10.828, 13.816, 16.266, 18.467, 20.515, 22.458, 24.322, 26.124, 27.877, 29.588, 31.264, 32.909, 34.528,
  36.123, 37.697,
];

/** The filters a case applies to p (and, through the same sampler, to q). */
export interface LawFilters {
  temperature: number;
  /** 0 = off. */
  topK: number;
  /** 1 = off. */
  topP: number;
}

function softmax(logits: ArrayLike<number>, temperature: number): number[] {
  const scaled = Array.from(logits, (x) => x / temperature);
  const max = Math.max(...scaled);
  const e = scaled.map((x) => Math.exp(x - max));
  const total = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / total);
}

/** Keeps the entries of `law` for which `keep(p, rank)` holds (rank 0 = most likely), renormalised. */
function restrict(law: number[], keep: (p: number, rank: number) => boolean): number[] {
  const order = law.map((_, i) => i).sort((a, b) => law[b] - law[a] || a - b);
  const rank = new Array<number>(law.length);
  order.forEach((id, r) => {
    rank[id] = r;
  });
  const cut = law.map((p, i) => (keep(p, rank[i]) ? p : 0));
  const total = cut.reduce((a, b) => a + b, 0);
  return cut.map((p) => p / total);
}

/** Top-p by its definition: the smallest set of most likely tokens whose mass reaches topP. */
function nucleus(law: number[], topP: number): number[] {
  const sorted = [...law].sort((a, b) => b - a);
  const before = (rank: number) => sorted.slice(0, rank).reduce((a, b) => a + b, 0);
  // A token is in the set while the mass ranked above it is still short of topP.
  return restrict(law, (_, rank) => before(rank) < topP);
}

/** Last-position law of `model` after each of `contexts`: softmax at the temperature, then top-k, then top-p. */
async function nextLaw(model: CausalLm, contexts: number[][], f: LawFilters): Promise<number[][]> {
  const state = model.createState({ batch: contexts.length, maxLength: 16 });
  const { logits } = model.extendStep(state, contexts, { logits: 'last' });
  const values = await logits.data();
  logits.dispose();
  model.disposeState(state);
  return contexts.map((_, r) => {
    const law = softmax(values.subarray(r * V, (r + 1) * V), f.temperature);
    const topK = f.topK === 0 ? law : restrict(law, (_, rank) => rank < f.topK);
    return f.topP === 1 ? topK : nucleus(topK, f.topP);
  });
}

/** Exact P(t1, t2) under the target, as a flat array of V*V cells. */
async function exactJoint(target: CausalLm, f: LawFilters): Promise<number[]> {
  const [first] = await nextLaw(target, [PROMPT], f);
  const second = await nextLaw(
    target,
    Array.from({ length: V }, (_, t) => [...PROMPT, t]),
    f,
  );
  return Array.from({ length: V * V }, (_, c) => first[Math.floor(c / V)] * second[Math.floor(c / V)][c % V]);
}

export interface ChiSquareCase extends Partial<LawFilters> {
  target: CausalLm;
  draft: CausalLm;
  /** Seeded rows of the one batched run. */
  rows: number;
  rule?: AcceptRule;
  k: number;
  seed: number;
}

export async function chiSquare(c: ChiSquareCase) {
  const { target, draft, rows: N, rule, k, seed } = c;
  const filters: LawFilters = { temperature: c.temperature ?? 1, topK: c.topK ?? 0, topP: c.topP ?? 1 };
  const exact = await exactJoint(target, filters);
  const run = speculativeGenerate({
    target,
    draft,
    k,
    prompt: Array.from({ length: N }, () => PROMPT),
    // The second token comes from the first verify pass; k + 2 lets that pass draft all k
    // (k is capped by the tokens still needed).
    maxNewTokens: k + 2,
    sampling: { ...filters, seed },
    acceptRule: rule,
  });
  const rows = await collect(run, N);
  const counts = new Array<number>(V * V).fill(0);
  for (const [a, b] of rows) counts[a * V + b]++;
  // Cells the filters make impossible must stay empty; the others enter the statistic.
  const impossible = exact.reduce((n, p, i) => n + (p === 0 ? counts[i] : 0), 0);
  const cells = exact.filter((p) => p > 0).length;
  const chi2 = exact.reduce((s, p, i) => (p > 0 ? s + (counts[i] - N * p) ** 2 / (N * p) : s), 0);
  return {
    chi2,
    cells,
    critical: CRITICAL[cells - 2],
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
