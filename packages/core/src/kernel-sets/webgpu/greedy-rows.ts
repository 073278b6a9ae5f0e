import * as tf from '@tensorflow/tfjs-core';
import {
  MAIN,
  MAX_WORKGROUPS,
  requireWebGpuPrograms,
  type WebGpuProgram,
  webGpuPrograms,
} from './webgpu-program.js';

/**
 * Each row's greedy token on the device (webgpu): the first index of the
 * row's maximum, or −1 where greedyToken would refuse the row (a NaN or +∞
 * in it, or nothing above −∞). Verifying a greedy draft then reads one
 * integer per position instead of a vocabulary of floats (1.8 MB for GPT-2
 * at k = 8), and the host scan over them goes away.
 */
export const GREEDY_ROWS = 'SpecstreamGreedyRows';

export function greedyRowsSupported(rows: number): boolean {
  return webGpuPrograms() !== undefined && rows <= MAX_WORKGROUPS;
}

/** logits [..., vocab] → int32 [rows]. */
export function greedyRows(logits: tf.Tensor): tf.Tensor1D {
  return tf.engine().runKernel(GREEDY_ROWS, { logits }) as tf.Tensor1D;
}

const THREADS = 256;
/** Consecutive logits each thread loads per round. */
const UNROLL = 8;

function greedyRowsProgram(rows: number): WebGpuProgram {
  return {
    variableNames: ['logits'],
    outputShape: [rows],
    shaderKey: 'specstreamGreedyRows',
    dispatchLayout: { x: [0] },
    dispatch: [rows, 1, 1],
    workgroupSize: [THREADS, 1, 1],
    uniforms: 'vocab : i32, ',
    getUserCode: () => `
    var<workgroup> bestValues : array<f32, ${THREADS}>;
    var<workgroup> bestIndices : array<i32, ${THREADS}>;
    var<workgroup> refused : array<i32, ${THREADS}>;

    ${MAIN} {
      let tid = i32(localId.x);
      let row = index / ${THREADS};
      let vocab = uniforms.vocab;
      var best = -1;
      var bestValue = 0.0;
      var bad = 0;
      let at = row * vocab;
      let last = vocab - 1;
      // One workgroup scans a row, so the scan is bound by load latency: each thread
      // issues ${UNROLL} independent loads per round (clamped at the row's end) before comparing.
      for (var base = tid * ${UNROLL}; base < vocab; base = base + ${THREADS * UNROLL}) {
        var values = array<f32, ${UNROLL}>(${Array.from({ length: UNROLL }, (_, j) => `logits[at + min(base + ${j}, last)]`).join(', ')});
        for (var j = 0; j < ${UNROLL}; j = j + 1) {
          let i = base + j;
          if (i > last) { break; }
          let v = values[j];
          let bits = bitcast<u32>(v);
          let infinite = (bits & 0x7fffffffu) == 0x7f800000u;
          if (isnan(v) || (infinite && v > 0.0)) { bad = 1; }
          // Indices rise along a thread's rounds: a strict > keeps the first of equal values.
          if (!isnan(v) && !(infinite && v < 0.0) && (best < 0 || v > bestValue)) {
            best = i;
            bestValue = v;
          }
        }
      }
      bestValues[tid] = bestValue;
      bestIndices[tid] = best;
      refused[tid] = bad;
      workgroupBarrier();
      for (var half = ${THREADS / 2}; half > 0; half = half / 2) {
        if (tid < half) {
          let j = bestIndices[tid + half];
          let vj = bestValues[tid + half];
          let i = bestIndices[tid];
          if (j >= 0 && (i < 0 || vj > bestValues[tid] || (vj == bestValues[tid] && j < i))) {
            bestIndices[tid] = j;
            bestValues[tid] = vj;
          }
          refused[tid] = max(refused[tid], refused[tid + half]);
        }
        workgroupBarrier();
      }
      if (tid == 0) {
        result[row] = select(bestIndices[0], -1, refused[0] != 0 || bestIndices[0] < 0);
      }
    }
  `,
  };
}

tf.registerKernel({
  kernelName: GREEDY_ROWS,
  backendName: 'webgpu',
  kernelFunc: ({ inputs }) => {
    const logits = inputs.logits as tf.TensorInfo;
    const vocab = logits.shape[logits.shape.length - 1];
    const rows = logits.shape.slice(0, -1).reduce((a, b) => a * b, 1);
    return requireWebGpuPrograms().runWebGPUProgram(greedyRowsProgram(rows), [logits], 'int32', [
      { type: 'int32', data: [vocab] },
    ]);
  },
});
