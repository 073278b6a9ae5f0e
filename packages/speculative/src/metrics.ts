/** Counters of one speculative generation (or, summed, of many). */
export interface SpeculativeMetrics {
  /** Draft-and-verify rounds. */
  iterations: number;
  /** Target passes: verification passes (prefill not included). */
  targetPasses: number;
  /** Sum over target passes of the rows still generating: tokens per pass per row is emitted / rowPasses. */
  rowPasses: number;
  /** Tokens drafted for active rows (the verifier saw them). */
  draftedTokens: number;
  /** Drafted tokens the target accepted. */
  acceptedTokens: number;
  /** Rejections: verifications that stopped before the end of a row's draft (at most one per row per pass). */
  rejections: number;
  /** Tokens emitted to the caller (accepted + corrections/bonuses, cut at stops and limits). */
  emittedTokens: number;
  /** Sum over iterations of the k asked for, to report the mean k (adaptive k). */
  kSum: number;
  /** The target's prefill of the prompts, and the drafter's (`draftPrefillMs`, also counted here). */
  prefillMs: number;
  /**
   * The drafter reading the prompts (a draft model's prefill). It runs after the first token is
   * emitted, so that the first token is not kept waiting for it.
   */
  draftPrefillMs: number;
  draftMs: number;
  verifyMs: number;
  totalMs: number;
}

/** Ratios derived from the counters. */
export interface SpeculativeRates {
  /**
   * α, the probability that a drafted token the target checks is accepted:
   * accepted / (accepted + rejections). Tokens after a rejection are never
   * checked, so they do not count: this is the α of E = (1 − α^(k+1)) / (1 − α).
   */
  acceptanceRate: number;
  /** accepted / drafted: the share of all drafted tokens that were kept. */
  acceptedFraction: number;
  /** Mean tokens emitted per row per target pass (1 = no gain over plain decoding). */
  tokensPerPass: number;
  meanK: number;
  tokensPerSecond: number;
}

export function emptyMetrics(): SpeculativeMetrics {
  return {
    iterations: 0,
    targetPasses: 0,
    rowPasses: 0,
    draftedTokens: 0,
    acceptedTokens: 0,
    rejections: 0,
    emittedTokens: 0,
    kSum: 0,
    prefillMs: 0,
    draftPrefillMs: 0,
    draftMs: 0,
    verifyMs: 0,
    totalMs: 0,
  };
}

/** Adds `from` into `into` (cumulative metrics across calls). */
export function addMetrics(into: SpeculativeMetrics, from: SpeculativeMetrics): SpeculativeMetrics {
  for (const key of Object.keys(from) as (keyof SpeculativeMetrics)[]) into[key] += from[key];
  return into;
}

export function rates(m: SpeculativeMetrics): SpeculativeRates {
  return {
    acceptanceRate:
      m.acceptedTokens + m.rejections > 0 ? m.acceptedTokens / (m.acceptedTokens + m.rejections) : 0,
    acceptedFraction: m.draftedTokens > 0 ? m.acceptedTokens / m.draftedTokens : 0,
    tokensPerPass: m.rowPasses > 0 ? m.emittedTokens / m.rowPasses : 0,
    meanK: m.iterations > 0 ? m.kSum / m.iterations : 0,
    tokensPerSecond: m.totalMs > 0 ? (1000 * m.emittedTokens) / m.totalMs : 0,
  };
}
