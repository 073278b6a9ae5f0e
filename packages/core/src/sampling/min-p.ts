import { maxOf, positionsAtLeast } from './candidates.js';
import { FLOAT32_SLACK } from './precision.js';

/**
 * Min-p: positions whose probability is at least minP × the largest. Only the
 * ratio to the top token matters, so it needs no renormalization first, and
 * the top token itself always survives.
 */
export function minPPositions(probs: Float64Array, minP: number): Int32Array {
  return positionsAtLeast(probs, minP * maxOf(probs) * (1 - FLOAT32_SLACK));
}
