import type { Activation } from '../transformer/mlp.js';
import { ACTIVATION_WGSL } from './webgpu-activation.js';
import { MAIN, type WebGpuProgram } from './webgpu-program.js';

/** Rows a workgroup carries through the product at once; more go to tfjs's matmul. */
export const LINEAR_MAX_ROWS = 16;

/** Output columns per workgroup, and slices of the inner dimension (threads = their product). */
const COLUMNS = 64;
const SLICES = 4;
const THREADS = COLUMNS * SLICES;

export interface LinearProgramOptions {
  rows: number;
  /** Output columns (half the weight's when gated). */
  columns: number;
  /** Standardize each input row first (a norm whose affine part is folded into the weights). */
  norm?: 'layer' | 'rms';
  bias: boolean;
  activation?: Activation;
  /** act(x·W_gate + b) · (x·W_up + b): the weight's first half of columns gates its second half. */
  gated: boolean;
  /** Adds a [rows, out] residual after everything else. */
  residual: boolean;
}

/**
 * x·W for a few rows (decode and verification steps) with what surrounds it
 * in a transformer layer fused in: the norm before it, the bias, the
 * activation (gated or not) and the residual add after it. A product of a
 * few rows reads each weight once and does little arithmetic with it, so it
 * is the reading that must go well: a workgroup takes 64 adjacent columns
 * (adjacent threads read adjacent weights) and splits the inner dimension in
 * four, each thread keeping a sum per row; the four partial sums meet in
 * shared memory. tfjs's tiled matmul, made for many rows, took ~170 µs per
 * GPT-2 product on an H200 where the weights take ~2 µs to read.
 */
export function linearProgram(o: LinearProgramOptions): WebGpuProgram {
  const { rows, columns, norm, bias, activation, gated, residual } = o;
  const sums = gated ? 2 : 1;
  const variableNames = ['x', 'w', ...(bias ? ['bias'] : []), ...(residual ? ['residual'] : [])];
  const normalized = norm ? '(x[m * K + k] - stats[m].x) * stats[m].y' : 'x[m * K + k]';
  return {
    variableNames,
    outputShape: [rows, columns],
    shaderKey: `specstreamLinear_${rows}_${norm ?? 'none'}_${activation ?? 'none'}_${gated}_${bias}_${residual}`,
    dispatchLayout: { x: [0, 1] },
    dispatch: [Math.ceil(columns / COLUMNS), 1, 1],
    workgroupSize: [THREADS, 1, 1],
    uniforms: 'eps : f32, ',
    getUserCode: () => `
    const M = ${rows};
    var<workgroup> partial : array<f32, ${(SLICES - 1) * COLUMNS * rows * sums}>;
    var<workgroup> lanes : array<f32, ${THREADS}>;
    var<workgroup> stats : array<vec2<f32>, M>;
    ${activation ? ACTIVATION_WGSL[activation].helpers : ''}
    ${activation ? `fn activate(v : f32) -> f32 { return ${ACTIVATION_WGSL[activation].formula}; }` : ''}

    fn workgroupSum(tid : i32, value : f32) -> f32 {
      workgroupBarrier();
      lanes[tid] = value;
      workgroupBarrier();
      for (var half = ${THREADS / 2}; half > 0; half = half / 2) {
        if (tid < half) { lanes[tid] = lanes[tid] + lanes[tid + half]; }
        workgroupBarrier();
      }
      return lanes[0];
    }

    ${MAIN} {
      let tid = i32(localId.x);
      let column = tid % ${COLUMNS};
      let part = tid / ${COLUMNS};
      let K = uniforms.xShape.y;
      let N = uniforms.wShape.y;
      let outN = uniforms.outShape.y;
      let n = (index / ${THREADS}) * ${COLUMNS} + column;
      ${
        norm
          ? `for (var m = 0; m < M; m = m + 1) {
        var mean = 0.0;
        ${
          norm === 'layer'
            ? `var sum = 0.0;
        for (var k = tid; k < K; k = k + ${THREADS}) { sum = sum + x[m * K + k]; }
        mean = workgroupSum(tid, sum) / f32(K);`
            : ''
        }
        var squares = 0.0;
        for (var k = tid; k < K; k = k + ${THREADS}) { let d = x[m * K + k] - mean; squares = squares + d * d; }
        let scale = inverseSqrt(workgroupSum(tid, squares) / f32(K) + uniforms.eps);
        if (tid == 0) { stats[m] = vec2<f32>(mean, scale); }
      }
      workgroupBarrier();`
          : ''
      }
      var acc : array<f32, M>;
      ${gated ? 'var up : array<f32, M>;' : ''}
      let span = (K + ${SLICES - 1}) / ${SLICES};
      let first = part * span;
      let last = min(K, first + span);
      if (n < outN) {
        for (var k = first; k < last; k = k + 1) {
          let weight = w[k * N + n];
          ${gated ? 'let weightUp = w[k * N + n + outN];' : ''}
          for (var m = 0; m < M; m = m + 1) {
            let v = ${normalized};
            acc[m] = acc[m] + v * weight;
            ${gated ? 'up[m] = up[m] + v * weightUp;' : ''}
          }
        }
      }
      if (part > 0) {
        for (var m = 0; m < M; m = m + 1) {
          partial[(((part - 1) * ${COLUMNS} + column) * M + m) * ${sums}] = acc[m];
          ${gated ? `partial[(((part - 1) * ${COLUMNS} + column) * M + m) * 2 + 1] = up[m];` : ''}
        }
      }
      workgroupBarrier();
      if (part == 0 && n < outN) {
        for (var m = 0; m < M; m = m + 1) {
          var value = acc[m];
          ${gated ? 'var upValue = up[m];' : ''}
          for (var s = 0; s < ${SLICES - 1}; s = s + 1) {
            value = value + partial[((s * ${COLUMNS} + column) * M + m) * ${sums}];
            ${gated ? `upValue = upValue + partial[((s * ${COLUMNS} + column) * M + m) * 2 + 1];` : ''}
          }
          ${bias ? `value = value + bias[n];${gated ? ' upValue = upValue + bias[n + outN];' : ''}` : ''}
          ${activation ? 'value = activate(value);' : ''}
          ${gated ? 'value = value * upValue;' : ''}
          ${residual ? 'value = value + residual[m * outN + n];' : ''}
          result[m * outN + n] = value;
        }
      }
    }
  `,
  };
}
