import { assertSampleableLogits } from './finite.js';
import {
  isGreedy,
  type NormalizedSamplingOptions,
  type SamplingOptions,
  validateSampling,
} from './options.js';
import { processLogits } from './process.js';
import { createRng, type Rng } from './rng.js';
import { sampleFrom } from './sample.js';

export interface Sampler {
  readonly options: NormalizedSamplingOptions;
  /**
   * The sampler's own random stream. Speculative verification draws its
   * acceptance coins and residual samples from it too, so one seed fixes the run.
   */
  readonly rng: Rng;
  /** The processed distribution for one row of logits (see processLogits). */
  probs(logits: Float32Array, history?: ArrayLike<number>): Float32Array;
  /** A token id drawn from `probs(logits, history)`. */
  sample(logits: Float32Array, history?: ArrayLike<number>): number;
  /**
   * True when tokens are the argmax of the logits as they are (greedy, no
   * repetition penalty): callers may then skip building distributions.
   */
  readonly plainArgmax: boolean;
}

/**
 * The argmax of a row of logits (ties to the lowest index), with the same
 * checks and errors as sampling: the first NaN or +Infinity is named, and a
 * row with nothing but -Infinity is refused. One pass over the row, since
 * greedy decoding runs it on every vocabulary-sized row it reads.
 */
export function greedyToken(logits: Float32Array): number {
  let best = -1;
  let bestValue = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) {
    const value = logits[i];
    if (value > bestValue) {
      if (value === Number.POSITIVE_INFINITY) assertSampleableLogits(logits);
      best = i;
      bestValue = value;
    } else if (Number.isNaN(value)) {
      assertSampleableLogits(logits);
    }
  }
  if (best < 0) assertSampleableLogits(logits);
  return best;
}

/** Validates once up front; `seed`, when given, overrides `options.seed`. */
export function createSampler(options: SamplingOptions = {}, seed?: number): Sampler {
  const settings = validateSampling(seed === undefined ? options : { ...options, seed });
  const rng = createRng(settings.seed);
  const plainArgmax = isGreedy(settings) && settings.repetitionPenalty === 1;
  return {
    options: settings,
    rng,
    plainArgmax,
    probs: (logits, history) => processLogits(logits, settings, history),
    // Greedy without a penalty needs no distribution: skips a vocab-sized one-hot and its scan.
    sample: plainArgmax
      ? (logits) => greedyToken(logits)
      : (logits, history) => sampleFrom(processLogits(logits, settings, history), rng),
  };
}
