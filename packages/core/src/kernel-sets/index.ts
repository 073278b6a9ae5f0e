import { InvalidArgumentError } from '../errors.js';
import type { DenseLayer, Linear } from '../transformer/linear.js';
import type { KernelSet } from './kernel-set.js';
import { referenceKernels } from './reference/index.js';
import { KERNEL_SET_NAMES, type KernelSetName, kernelSetting } from './setting.js';
import { wasmKernels } from './wasm/index.js';
import { webgpuKernels } from './webgpu/index.js';

export type { KernelSet, LinearStep, ModelKernels, OutputWeights, Pass } from './kernel-set.js';
export { KERNEL_SET_NAMES, type KernelSetName, kernelSetting } from './setting.js';

const SETS: Record<KernelSetName, KernelSet> = {
  reference: referenceKernels,
  wasm: wasmKernels,
  webgpu: webgpuKernels,
};

/**
 * The kernel set a model built now uses: `name` if given (an error names
 * why it cannot run here), else SPECSTREAM_KERNELS if set, else the fastest
 * the current backend has (webgpu, wasm, else reference).
 */
export function kernelSet(name?: KernelSetName): KernelSet {
  const chosen = name ?? kernelSetting();
  if (chosen !== 'auto') {
    const set = SETS[chosen];
    if (set === undefined) {
      throw new InvalidArgumentError(`unknown kernel set "${chosen}"; known: ${KERNEL_SET_NAMES.join(', ')}`);
    }
    const why = set.unavailable();
    if (why !== undefined) throw new InvalidArgumentError(`the ${chosen} kernel set cannot run here: ${why}`);
    return set;
  }
  return availableKernelSets()[0];
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
