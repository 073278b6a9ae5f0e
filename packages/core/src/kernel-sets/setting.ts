/** The kernel sets a model can be built with (kernel-set.ts). */
export const KERNEL_SET_NAMES = ['reference', 'wasm', 'webgpu'] as const;
export type KernelSetName = (typeof KERNEL_SET_NAMES)[number];

/**
 * How a set's linear kernels keep the weights: f32, or quantized in blocks
 * of 32 along the input with one scale each (q8: GGUF Q8_0's int8, q4:
 * Q4_0's 4-bit). f16 is reserved for the GPU sets.
 */
export const WEIGHT_FORMATS = ['f32', 'f16', 'q8', 'q4'] as const;
export type WeightFormat = (typeof WEIGHT_FORMATS)[number];

/**
 * SPECSTREAM_KERNELS: 'auto' (unset: the fastest set the backend has) or a
 * set's name. 'reference' runs everything on tfjs's own kernels, the
 * comparison benchmarks draw; it also keeps the shared kernel dispatchers
 * (useWasmKernels, webGpuPrograms) off for models that do not take a set.
 */
export function kernelSetting(): KernelSetName | 'auto' {
  const value = globalThis.process?.env?.SPECSTREAM_KERNELS;
  if (value === undefined || value === '' || value === 'auto') return 'auto';
  if ((KERNEL_SET_NAMES as readonly string[]).includes(value)) return value as KernelSetName;
  throw new Error(`SPECSTREAM_KERNELS must be auto, ${KERNEL_SET_NAMES.join(', ')}; got "${value}"`);
}

/** Whether the setting allows a set's kernels to run where their backend is current. */
export function kernelSetAllowed(name: Exclude<KernelSetName, 'reference'>): boolean {
  const setting = kernelSetting();
  return setting === 'auto' || setting === name;
}
