import { InvalidArgumentError } from '@specstream/core';
import type { Drafter, Proposal } from './drafter.js';

export interface PromptLookupOptions {
  /** Longest suffix n-gram to look up (default 3); longer matches are tried first. */
  maxNgram?: number;
  /** Shortest n-gram worth trusting (default 1). */
  minNgram?: number;
}

/**
 * Model-free drafting (prompt lookup decoding): find the most recent earlier
 * occurrence of the text's last n tokens in the prompt or the output so far
 * and propose the tokens that followed it. Costs no model call; pays off when
 * the output repeats its input (summaries, edits, code, quoting).
 */
export function promptLookupDrafter(options: PromptLookupOptions = {}): Drafter {
  const maxNgram = options.maxNgram ?? 3;
  const minNgram = options.minNgram ?? 1;
  if (!Number.isInteger(minNgram) || minNgram < 1 || !Number.isInteger(maxNgram) || maxNgram < minNgram) {
    throw new InvalidArgumentError(
      `prompt lookup needs integers 1 <= minNgram <= maxNgram, got minNgram ${minNgram}, maxNgram ${maxNgram}`,
    );
  }
  return {
    name: `prompt-lookup(${minNgram}..${maxNgram})`,
    start: () => ({
      propose: async ({ histories, active, k }) =>
        histories.map((h, r): Proposal => ({ tokens: active[r] ? lookup(h, k, minNgram, maxNgram) : [] })),
      dispose() {},
    }),
  };
}

/** The continuation of the latest earlier match of the longest matching suffix n-gram. */
export function lookup(history: readonly number[], k: number, minNgram: number, maxNgram: number): number[] {
  const length = history.length;
  for (let n = Math.min(maxNgram, length - 1); n >= minNgram; n--) {
    const tail = length - n;
    // Latest match first: recent text predicts the continuation best.
    for (let start = tail - 1; start >= 0; start--) {
      let i = 0;
      while (i < n && history[start + i] === history[tail + i]) i++;
      if (i === n) return history.slice(start + n, Math.min(start + n + k, length));
    }
  }
  return [];
}
