export {
  checkSynthesizerConfig,
  DEFAULT_SYNTHESIZER_CONFIG,
  type ReferenceSynthesizerConfig,
  TINY_SYNTHESIZER_CONFIG,
} from './config.js';
export {
  createGriffinLimVocoder,
  type GriffinLimOptions,
  type GriffinLimState,
  type GriffinLimVocoder,
} from './griffin-lim.js';
export { createInverseRealDft, type InverseRealDft } from './inverse-dft.js';
export { melPseudoInverse } from './mel-inverse.js';
export {
  DEFAULT_VOCODER_OPTIONS,
  TINY_VOCODER_OPTIONS,
} from './presets.js';
export {
  createReferenceSynthesizer,
  type ReferenceSynthesizer,
  type ReferenceSynthesizerState,
} from './reference.js';
export {
  type RandomSynthesizerOptions,
  type ReferenceSynthesizerWeights,
  randomSynthesizerWeights,
  type SynthesizerDecoderLayerWeights,
  type SynthesizerTextLayerWeights,
} from './weights.js';
