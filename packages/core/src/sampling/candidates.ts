/**
 * The tokens still in play: ids ascending (position order doubles as the
 * tie-break: lower id first) and their probabilities in float64, because the
 * filters compare running sums against thresholds.
 */
export interface Candidates {
  readonly ids: Int32Array;
  readonly probs: Float64Array;
}

/** Every id whose logit is not a -Infinity mask. */
export function unmaskedIds(logits: Float32Array): Int32Array {
  const ids = new Int32Array(logits.length);
  let count = 0;
  for (let id = 0; id < logits.length; id++) {
    if (logits[id] !== Number.NEGATIVE_INFINITY) ids[count++] = id;
  }
  return ids.subarray(0, count);
}

/** Softmax of logits/temperature over `ids` only, i.e. already renormalized to that subset. */
export function softmaxOver(logits: Float32Array, ids: Int32Array, temperature: number): Candidates {
  let max = Number.NEGATIVE_INFINITY;
  for (let j = 0; j < ids.length; j++) max = Math.max(max, logits[ids[j]]);
  const probs = new Float64Array(ids.length);
  let sum = 0;
  for (let j = 0; j < ids.length; j++) {
    // Shifting by the max keeps exp() from overflowing; the largest term is exactly 1, so sum >= 1.
    probs[j] = Math.exp((logits[ids[j]] - max) / temperature);
    sum += probs[j];
  }
  for (let j = 0; j < ids.length; j++) probs[j] /= sum;
  return { ids, probs };
}

export function maxOf(values: Float64Array): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let j = 0; j < values.length; j++) max = Math.max(max, values[j]);
  return max;
}

/** Positions (ascending) whose value is at least `cutoff`. */
export function positionsAtLeast(values: Float64Array, cutoff: number): Int32Array {
  const positions = new Int32Array(values.length);
  let count = 0;
  for (let j = 0; j < values.length; j++) {
    if (values[j] >= cutoff) positions[count++] = j;
  }
  return positions.subarray(0, count);
}

/** The candidates at `positions`, not renormalized: ratios are all the later steps need. */
export function pick(candidates: Candidates, positions: Int32Array): Candidates {
  const ids = new Int32Array(positions.length);
  const probs = new Float64Array(positions.length);
  for (let j = 0; j < positions.length; j++) {
    ids[j] = candidates.ids[positions[j]];
    probs[j] = candidates.probs[positions[j]];
  }
  return { ids, probs };
}

/** A full-vocabulary distribution: zeros except the candidates, rescaled to sum to 1. */
export function toDistribution(candidates: Candidates, vocabSize: number): Float32Array {
  let mass = 0;
  for (let j = 0; j < candidates.probs.length; j++) mass += candidates.probs[j];
  const distribution = new Float32Array(vocabSize);
  for (let j = 0; j < candidates.ids.length; j++) {
    distribution[candidates.ids[j]] = candidates.probs[j] / mass;
  }
  return distribution;
}
