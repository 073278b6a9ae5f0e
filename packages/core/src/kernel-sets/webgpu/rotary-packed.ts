import * as tf from '@tensorflow/tfjs-core';
import { MAIN, requireWebGpuPrograms, type WebGpuProgram, webGpuPrograms } from './webgpu-program.js';

/**
 * Rotary embeddings on the packed q|k|v projection in one kernel (webgpu):
 * the first `rotated` heads of each position (queries, then keys) come out
 * as x·cos + rotate_half(x)·sin, rotate_half(x) = [−x₂, x₁]; the value heads
 * are left where they are, for the cache to read in place. tfjs takes a
 * slice, a product with the rotate-half matrix, two products and a sum per
 * layer.
 */
export const ROTARY = 'SpecstreamRotary';

export function rotarySupported(): boolean {
  return webGpuPrograms() !== undefined;
}

/**
 * qkv: [batch, steps, heads, headDim]; cosSin: [batch·steps, headDim], each
 * position's cos for the first half of the dimensions then its sin (see
 * rotaryCosSin) → [batch, steps, rotated, headDim].
 */
export function rotatePacked(qkv: tf.Tensor4D, cosSin: tf.Tensor2D, rotated: number): tf.Tensor4D {
  return tf.engine().runKernel(ROTARY, { qkv, cosSin }, { rotated }) as tf.Tensor4D;
}

function rotaryProgram(shape: number[]): WebGpuProgram {
  const threads = 64;
  const size = shape.reduce((a, b) => a * b, 1);
  return {
    variableNames: ['qkv', 'cosSin'],
    outputShape: shape,
    shaderKey: 'specstreamRotary',
    dispatchLayout: { x: [0, 1, 2, 3] },
    dispatch: [Math.ceil(size / threads), 1, 1],
    workgroupSize: [threads, 1, 1],
    size: true,
    getUserCode: () => `
    ${MAIN} {
      if (index >= uniforms.size) { return; }
      let dim = uniforms.outShape.w;
      let half = dim / 2;
      let rotated = uniforms.outShape.z;
      let d = index % dim;
      let head = (index / dim) % rotated;
      let position = index / (dim * rotated);
      let at = (position * uniforms.qkvShape.z + head) * dim;
      let i = d % half;
      let c = cosSin[position * dim + i];
      let s = cosSin[position * dim + half + i];
      let x = qkv[at + d];
      if (d < half) {
        result[index] = x * c - qkv[at + d + half] * s;
      } else {
        result[index] = x * c + qkv[at + d - half] * s;
      }
    }
  `,
  };
}

tf.registerKernel({
  kernelName: ROTARY,
  backendName: 'webgpu',
  kernelFunc: ({ inputs, attrs }) => {
    const { qkv, cosSin } = inputs as Record<string, tf.TensorInfo>;
    const rotated = attrs!.rotated as number;
    const [batch, steps, heads, dim] = qkv.shape;
    if (
      qkv.shape.length !== 4 ||
      dim % 2 !== 0 ||
      !Number.isInteger(rotated) ||
      rotated < 1 ||
      rotated > heads ||
      cosSin.shape.length !== 2 ||
      cosSin.shape[0] !== batch * steps ||
      cosSin.shape[1] !== dim
    ) {
      throw new Error(
        `rotatePacked: cannot rotate ${rotated} heads of [${qkv.shape}] with cos|sin [${cosSin.shape}]`,
      );
    }
    return requireWebGpuPrograms().runWebGPUProgram(
      rotaryProgram([batch, steps, rotated, dim]),
      [qkv, cosSin],
      'float32',
    );
  },
});
