export { argmax } from './argmax.js';
export {
  isGreedy,
  type NormalizedSamplingOptions,
  type SamplingOptions,
  validateSampling,
} from './options.js';
export { applyRepetitionPenalty } from './penalty.js';
export { processLogits } from './process.js';
export { createRng, type Rng } from './rng.js';
export { sampleFrom } from './sample.js';
export { createSampler, greedyToken, type Sampler } from './sampler.js';
