import { type NormalizedSamplingOptions, type SamplingOptions, validateSampling } from './options.js';
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
}

/** Validates once up front; `seed`, when given, overrides `options.seed`. */
export function createSampler(options: SamplingOptions = {}, seed?: number): Sampler {
  const settings = validateSampling(seed === undefined ? options : { ...options, seed });
  const rng = createRng(settings.seed);
  return {
    options: settings,
    rng,
    probs: (logits, history) => processLogits(logits, settings, history),
    sample: (logits, history) => sampleFrom(processLogits(logits, settings, history), rng),
  };
}
