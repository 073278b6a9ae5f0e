import type { DecodeResult } from './decode.js';

const fixed = (x: number, digits: number) => (Number.isFinite(x) ? x.toFixed(digits) : '-');

/**
 * The stats line on stderr. Speculative runs add acceptance α (of the drafted tokens the target
 * checked, the share it kept), tokens per target pass (1 = no gain) and the mean k drafted.
 * `firstTokenAtMs` is when the first token reached stdout, counted from the process's start;
 * `weights` names quantized weights (absent for f32).
 */
export function statsLine(
  result: DecodeResult,
  drafter: string,
  firstTokenAtMs?: number,
  weights?: string,
): string {
  const tokens = result.ids.length;
  const parts = [
    `${result.interrupted ? 'interrupted after ' : ''}${tokens} tokens in ${fixed(result.elapsedMs / 1000, 2)} s, ` +
      `${fixed(result.rates?.tokensPerSecond ?? result.tokensPerSecond, 1)} tokens/s`,
  ];
  const r = result.rates;
  if (r === undefined) parts.push('target alone');
  else {
    parts.push(
      `α ${fixed(r.acceptanceRate, 2)}, ${fixed(r.tokensPerPass, 2)} tokens per target pass, mean k ${fixed(r.meanK, 2)} (${drafter})`,
    );
  }
  if (weights !== undefined) parts.push(weights);
  if (firstTokenAtMs !== undefined) parts.push(`first token at ${fixed(firstTokenAtMs / 1000, 2)} s`);
  return `specstream: ${parts.join(' | ')}\n`;
}

export interface Comparison {
  targetTokensPerSecond: number;
  speculativeTokensPerSecond: number;
  speedup: number;
  /** Whether both runs produced the same ids (always so when greedy: speculative decoding is exact). */
  sameText: boolean;
}

export function compare(speculative: DecodeResult, plain: DecodeResult): Comparison {
  const spec = speculative.rates?.tokensPerSecond ?? speculative.tokensPerSecond;
  return {
    targetTokensPerSecond: plain.tokensPerSecond,
    speculativeTokensPerSecond: spec,
    speedup: plain.tokensPerSecond > 0 ? spec / plain.tokensPerSecond : Number.NaN,
    sameText:
      speculative.ids.length === plain.ids.length && speculative.ids.every((id, i) => id === plain.ids[i]),
  };
}

export function compareLine(c: Comparison): string {
  return (
    `specstream: compare: target alone ${fixed(c.targetTokensPerSecond, 1)} tokens/s, speculative ` +
    `${fixed(c.speculativeTokensPerSecond, 1)} tokens/s (both warm): speedup ${fixed(c.speedup, 2)}x` +
    `${c.sameText ? ' (same tokens)' : ' (tokens differ)'}\n`
  );
}
