export { cachedAttention, causalMask } from './attention.js';
export { type ConstantOf, type Constants, createConstants, plainNumber } from './constants.js';
export { type DenseLayer, disposeLinear, type Linear, linear } from './linear.js';
export { type Activation, activate, activationConstants, type MlpWeights, mlp } from './mlp.js';
export {
  applyNorm,
  disposeNorm,
  foldNormIntoLinear,
  layerNorm,
  type NormKind,
  type NormWeights,
  rmsNorm,
  standardize,
} from './norm.js';
export {
  applyRotary,
  type RopeScaling,
  type RotaryConfig,
  rotaryInverseFrequencies,
  rotaryTables,
  rotateHalfMatrix,
} from './rotary.js';
