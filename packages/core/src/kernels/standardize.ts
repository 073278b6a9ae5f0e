import * as tf from '@tensorflow/tfjs-core';
import { useWasmKernels } from '../kernel-sets/wasm/packed-linear.js';
import { requireWasmKernels } from '../kernel-sets/wasm/wasm-kernels.js';
import {
  MAX_WORKGROUPS,
  requireWebGpuPrograms,
  webGpuPrograms,
} from '../kernel-sets/webgpu/webgpu-program.js';
import { standardizeProgram } from '../kernel-sets/webgpu/webgpu-standardize.js';

/**
 * A norm without its affine part over the last axis, in one kernel (wasm, webgpu):
 * (x − mean(x)) / √(var(x) + eps) when `center` (LayerNorm), x / √(mean(x²)
 * + eps) otherwise (RMSNorm). tfjs composes it of five to seven kernels, and
 * models run it twice per layer per step.
 */
export const STANDARDIZE = 'SpecstreamStandardize';

/**
 * Whether standardizeRows runs as one kernel on the current backend for
 * `rows` rows: core's wasm kernels (see useWasmKernels), or its WGSL
 * program (a workgroup per row, so up to MAX_WORKGROUPS rows).
 */
export function standardizeRowsSupported(rows = 1): boolean {
  return useWasmKernels() || (webGpuPrograms() !== undefined && rows <= MAX_WORKGROUPS);
}

export function standardizeRows<T extends tf.Tensor>(x: T, eps: number, center: boolean): T {
  return tf.engine().runKernel(STANDARDIZE, { x }, { eps, center }) as T;
}

tf.registerKernel({
  kernelName: STANDARDIZE,
  backendName: 'wasm',
  kernelFunc: ({ inputs, attrs }) => {
    const k = requireWasmKernels();
    const x = inputs.x as tf.TensorInfo;
    const d = x.shape[x.shape.length - 1];
    const rows = x.shape.slice(0, -1).reduce((a, b) => a * b, 1);
    const out = k.backend.makeOutput([...x.shape], 'float32');
    if (rows > 0 && d > 0) {
      k.exports.standardize(k.offset(x), k.offset(out), rows, d, attrs!.eps as number, attrs!.center ? 1 : 0);
    }
    return out;
  },
});

tf.registerKernel({
  kernelName: STANDARDIZE,
  backendName: 'webgpu',
  kernelFunc: ({ inputs, attrs }) => {
    const x = inputs.x as tf.TensorInfo;
    const cols = x.shape[x.shape.length - 1];
    return requireWebGpuPrograms().runWebGPUProgram(
      standardizeProgram(x.shape, attrs!.center === true),
      [x],
      'float32',
      [
        { type: 'float32', data: [attrs!.eps as number] },
        { type: 'int32', data: [cols] },
      ],
    );
  },
});
