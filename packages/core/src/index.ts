export { concatFloat32 } from './arrays.js';
export { webGpuErrors } from './backend/candidates.js';
export * from './backend.js';
export * from './causal-lm.js';
export * from './decoder.js';
export * from './errors.js';
export * from './generate.js';
export {
  availableKernelSets,
  denseForBackend,
  KERNEL_SET_NAMES,
  type KernelSet,
  type KernelSetName,
  kernelSet,
  kernelSetting,
  type LinearStep,
  type ModelKernels,
  type OutputWeights,
  type Pass,
  WEIGHT_FORMATS,
  type WeightFormat,
} from './kernel-sets/index.js';
export {
  type ArenaMatrix,
  arenaGather,
  arenaMatrix,
  arenaMatrixFromChunks,
  arenaTransposedLinear,
  disposeArenaMatrix,
  isArenaMatrix,
} from './kernel-sets/wasm/arena-matrix.js';
export { kernelThreadCount, stopKernelThreads } from './kernel-sets/wasm/kernel-threads.js';
export {
  disposePackedLinear,
  PACKED_MATMUL,
  type PackedLinear,
  packedLinear,
  packedLinearSupported,
  packedMatMulCall,
  packLinear,
  packLinearValues,
  type TransposedLinear,
  transposedLinear,
  transposedLinearSupported,
  useWasmKernels,
} from './kernel-sets/wasm/packed-linear.js';
export { QUANT_MATMUL, quantLinear, quantLinearSupported } from './kernel-sets/wasm/quant-linear.js';
export {
  dequantizeColumns,
  dequantizeMatrix,
  disposeQuantMatrix,
  GGUF_BLOCK_BYTES,
  isQuantMatrix,
  QUANT_BLOCK,
  type QuantFormat,
  type QuantMatrix,
  quantizeMatrix,
  quantizeMatrixValues,
  quantMatrixFromGguf,
} from './kernel-sets/wasm/quant-matrix.js';
export { type WeightArena, weightArena } from './kernel-sets/wasm/weight-arena.js';
export { ACTIVATION, activateRows, activationSupported } from './kernel-sets/webgpu/activation.js';
export { GREEDY_ROWS, greedyRows, greedyRowsSupported } from './kernel-sets/webgpu/greedy-rows.js';
export { ROTARY, rotarySupported, rotatePacked } from './kernel-sets/webgpu/rotary-packed.js';
export { webGpuPrograms } from './kernel-sets/webgpu/webgpu-program.js';
export {
  CAUSAL_ATTENTION,
  type CausalAttentionOptions,
  causalAttention,
  causalAttentionSupported,
} from './kernels/causal-attention.js';
export { STANDARDIZE, standardizeRows, standardizeRowsSupported } from './kernels/standardize.js';
export * from './kv-cache/index.js';
export { getLogger, type Logger, setLogger } from './log.js';
export * from './prefill.js';
export * from './random-model.js';
export { readAndDispose } from './read-and-dispose.js';
export { readPicks } from './read-picks.js';
export * from './sampling/index.js';
export { type SequenceScores, scoreSequences } from './score.js';
export * from './synthesizer.js';
export * from './transformer/index.js';
export {
  checkCapacity,
  checkLogitsIndices,
  checkLogitsSelection,
  checkNotDisposed,
  checkPositiveInteger,
  checkRollback,
  flattenTokens,
  selectLogitRows,
} from './validate.js';
