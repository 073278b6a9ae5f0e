import { InvalidArgumentError } from '../errors.js';
import type { DenseLayer, Linear } from '../transformer/linear.js';
import type { KernelSet } from './kernel-set.js';
import { referenceKernels } from './reference/index.js';
import {
  KERNEL_SET_NAMES,
  type KernelSetName,
  kernelSetting,
  WEIGHT_FORMATS,
  type WeightFormat,
} from './setting.js';
import { wasmKernelSet, wasmKernels } from './wasm/index.js';
import { webgpuKernelSet, webgpuKernels } from './webgpu/index.js';

export type { KernelSet, LinearStep, ModelKernels, OutputWeights, Pass } from './kernel-set.js';
export {
  KERNEL_SET_NAMES,
  type KernelSetName,
  kernelSetting,
  WEIGHT_FORMATS,
  type WeightFormat,
} from './setting.js';

const SETS: Record<KernelSetName, KernelSet> = {
  reference: referenceKernels,
  wasm: wasmKernels,
  webgpu: webgpuKernels,
};

/**
 * The kernel set a model built now uses: `name` if given (an error names
 * why it cannot run here), else SPECSTREAM_KERNELS if set, else the fastest
 * the current backend has (webgpu, wasm, else reference); with its linear
 * kernels keeping weights in `weights` (default f32; q8 and q4: the wasm and webgpu
 * sets; f16: the webgpu set).
 */
export function kernelSet(name?: KernelSetName, weights: WeightFormat = 'f32'): KernelSet {
  if (!(WEIGHT_FORMATS as readonly string[]).includes(weights)) {
    throw new InvalidArgumentError(`unknown weight format "${weights}"; known: ${WEIGHT_FORMATS.join(', ')}`);
  }
  const chosen = name ?? kernelSetting();
  let set: KernelSet;
  if (chosen !== 'auto') {
    set = SETS[chosen];
    if (set === undefined) {
      throw new InvalidArgumentError(`unknown kernel set "${chosen}"; known: ${KERNEL_SET_NAMES.join(', ')}`);
    }
    const why = set.unavailable();
    if (why !== undefined) throw new InvalidArgumentError(`the ${chosen} kernel set cannot run here: ${why}`);
  } else {
    set = availableKernelSets()[0];
  }
  if (weights === 'f32') return set;
  if (set.name === 'wasm' && (weights === 'q8' || weights === 'q4')) return wasmKernelSet(weights);
  if (set.name === 'webgpu') return webgpuKernelSet(weights);
  throw new InvalidArgumentError(
    `${weights} weights are not supported by the ${set.name} kernel set (q8 and q4: the wasm and webgpu sets; f16: the webgpu set)`,
  );
}

/**
 * A product in the layout of the set models built now use (kernelSet()),
 * for code that takes no set (Whisper, the synthesizer); takes ownership.
 */
export function denseForBackend(layer: Linear): DenseLayer {
  return kernelSet().prepareLinear(layer);
}

/** The sets that can run on the current backend, fastest first (reference always last). */
export function availableKernelSets(): KernelSet[] {
  return [webgpuKernels, wasmKernels, referenceKernels].filter((set) => set.unavailable() === undefined);
}
