import type { Activation } from '../../transformer/mlp.js';
import { ACTIVATION_WGSL } from './webgpu-activation.js';
import { MAIN, type WebGpuProgram, workgroupSumWgsl } from './webgpu-program.js';

/** Rows a workgroup carries through the product at most (more rows: more workgroups). */
const ROW_BLOCK = 16;
/** Threads that share one output column, striding over the inner dimension. */
const LANES = 32;
/** Output columns per workgroup. */
const COLUMNS = 8;
const THREADS = LANES * COLUMNS;

export interface LinearProgramOptions {
  /** Output rows: x's rows r·xStride + xOffset (uniforms), r < rows. */
  rows: number;
  /** Output columns (half the weight's rows when gated). */
  columns: number;
  /** Standardize each input row first (a norm whose affine part is folded into the weights). */
  norm?: 'layer' | 'rms';
  bias: boolean;
  activation?: Activation;
  /** act(x·W_gateᵀ + b) · (x·W_upᵀ + b): the weight's first half of rows gates its second half. */
  gated: boolean;
  /** Adds a [rows, out] residual after everything else. */
  residual: boolean;
  /** The inner dimension is a multiple of 4: x and W are read as vec4s (a quarter of the loads). */
  vectorized: boolean;
  /**
   * How the weight is stored (needs `vectorized` unless f32): f16, each i32
   * two halves (packF16Rows), unpacked with unpack2x16float (core WGSL: no
   * shader-f16 feature needed); q8, each i32 four int8 of one row with one
   * f32 scale per 32 inputs in `scales` (quantizeRowsQ8). Sums are f32.
   */
  weights?: 'f32' | 'f16' | 'q8';
}

/**
 * x·Wᵀ with W stored [out, in], and what surrounds a product in a
 * transformer layer fused in: the norm before it, the bias, the activation
 * (gated or not), the residual add. Decoding multiplies a few rows, so the
 * weights' reading is the cost: 32 threads share each output column and
 * stride along its row of W (adjacent threads, adjacent floats), a sum per
 * input row each, then meet in shared memory; a workgroup takes 8 columns
 * and up to 16 input rows, so even a 768-wide product spreads over 96
 * workgroups. (Stored [in, out], a column's weights are a stride apart and
 * only splitting the inner dimension across a few threads keeps reads
 * together: that version took ~450 µs per GPT-2 product on an H200, tfjs's
 * tiled matmul ~170 µs.)
 */
export function linearProgram(o: LinearProgramOptions): WebGpuProgram {
  const { rows, columns, norm, bias, activation, gated, residual, vectorized } = o;
  const format = o.weights ?? 'f32';
  if (format !== 'f32' && !vectorized)
    throw new Error(`linearProgram: ${format} weights need an inner dimension divisible by 4`);
  // Row `row`'s 4 inputs at vec4 index k: f16, one vec2<i32> (two packed pairs); q8, one i32 of
  // four int8 (byte j: input 4k + j) times its block's scale (8 vec4s a block).
  const weightAt = (row: string, k: string) =>
    format === 'f16'
      ? `vec4<f32>(unpack2x16float(bitcast<u32>(w[${row} * K + ${k}].x)), unpack2x16float(bitcast<u32>(w[${row} * K + ${k}].y)))`
      : format === 'q8'
        ? `unpackQ8(w[${row} * K + ${k}]) * scales[${row} * (K / 8) + ${k} / 8]`
        : `w[${row} * K + ${k}]`;
  const variableNames = [
    'x',
    'w',
    ...(format === 'q8' ? ['scales'] : []),
    ...(bias ? ['bias'] : []),
    ...(residual ? ['residual'] : []),
  ];
  // In vec4 units when vectorized: K below counts vec4s, and sums and products are over 4 lanes.
  const sumOf = (v: string) => (vectorized ? `(${v}.x + ${v}.y + ${v}.z + ${v}.w)` : v);
  const product = (a: string, b: string) => (vectorized ? `dot(${a}, ${b})` : `${a} * ${b}`);
  const minus = (v: string, mean: string) =>
    vectorized ? `(${v} - vec4<f32>(${mean}))` : `(${v} - ${mean})`;
  const input = norm
    ? `${minus('x[xRow(r0 + m) * K + k]', 'stats[m].x')} * stats[m].y`
    : 'x[xRow(r0 + m) * K + k]';
  const width = vectorized ? 4 : 1;
  // The block is baked in: a decode step's single row should not loop over 16.
  const block = Math.min(ROW_BLOCK, rows);
  const workgroups = Math.ceil(columns / COLUMNS) * Math.ceil(rows / block);
  return {
    variableNames,
    outputShape: [rows, columns],
    shaderKey: `specstreamLinear_${block}_${width}_${format}_${norm ?? 'none'}_${activation ?? 'none'}_${gated}_${bias}_${residual}`,
    dispatchLayout: { x: [0, 1] },
    dispatch: [workgroups, 1, 1],
    workgroupSize: [THREADS, 1, 1],
    variableComponents: [width, format === 'f16' ? 2 : format === 'q8' ? 1 : width, 1, 1, 1].slice(
      0,
      variableNames.length,
    ),
    uniforms: 'eps : f32, xStride : i32, xOffset : i32, ',
    getUserCode: () => `
    const M = ${block};
    ${
      format === 'q8'
        ? `// Four int8 of one i32, byte j as lane j (arithmetic shifts sign-extend).
    fn unpackQ8(p : i32) -> vec4<f32> {
      return vec4<f32>(f32((p << 24u) >> 24u), f32((p << 16u) >> 24u), f32((p << 8u) >> 24u), f32(p >> 24u));
    }`
        : ''
    }
    var<workgroup> stats : array<vec2<f32>, M>;
    ${activation ? ACTIVATION_WGSL[activation].helpers : ''}
    ${activation ? `fn activate(v : f32) -> f32 { return ${ACTIVATION_WGSL[activation].formula}; }` : ''}

    ${workgroupSumWgsl(THREADS)}

    // The input row behind output row r (a pass's last step per batch row: stride steps, offset steps − 1).
    fn xRow(r : i32) -> i32 { return r * uniforms.xStride + uniforms.xOffset; }

    // The sum over each group of ${LANES} threads, in the group's first thread.
    fn groupSum(tid : i32, value : f32) -> f32 {
      workgroupBarrier();
      lanes[tid] = value;
      workgroupBarrier();
      for (var half = ${LANES / 2}; half > 0; half = half / 2) {
        if (tid % ${LANES} < half) { lanes[tid] = lanes[tid] + lanes[tid + half]; }
        workgroupBarrier();
      }
      return lanes[tid];
    }

    ${MAIN} {
      let tid = i32(localId.x);
      let lane = tid % ${LANES};
      let K = uniforms.xShape.y / ${width};
      let inner = f32(uniforms.xShape.y);
      let rows = uniforms.outShape.x;
      let outN = uniforms.outShape.y;
      let columnBlocks = (outN + ${COLUMNS - 1}) / ${COLUMNS};
      let block = index / ${THREADS};
      let n = (block % columnBlocks) * ${COLUMNS} + tid / ${LANES};
      let r0 = (block / columnBlocks) * M;
      let count = clamp(rows - r0, 0, M);
      ${
        norm
          ? `for (var m = 0; m < M; m = m + 1) {
        var mean = 0.0;
        var squares = 0.0;
        if (m < count) {
          ${
            norm === 'layer'
              ? `var sum = 0.0;
          for (var k = tid; k < K; k = k + ${THREADS}) { sum = sum + ${sumOf('x[xRow(r0 + m) * K + k]')}; }
          mean = sum;`
              : ''
          }
        }
        ${norm === 'layer' ? 'mean = workgroupSum(tid, mean) / inner;' : ''}
        if (m < count) {
          for (var k = tid; k < K; k = k + ${THREADS}) {
            let d = ${minus('x[xRow(r0 + m) * K + k]', 'mean')};
            squares = squares + ${product('d', 'd')};
          }
        }
        let scale = inverseSqrt(workgroupSum(tid, squares) / inner + uniforms.eps);
        if (tid == 0) { stats[m] = vec2<f32>(mean, scale); }
      }
      workgroupBarrier();`
          : ''
      }
      var acc : array<f32, M>;
      ${gated ? 'var up : array<f32, M>;' : ''}
      if (n < outN) {
        for (var k = lane; k < K; k = k + ${LANES}) {
          let weight = ${weightAt('n', 'k')};
          ${gated ? `let weightUp = ${weightAt('(n + outN)', 'k')};` : ''}
          for (var m = 0; m < M; m = m + 1) {
            if (m < count) {
              let v = ${input};
              acc[m] = acc[m] + ${product('v', 'weight')};
              ${gated ? `up[m] = up[m] + ${product('v', 'weightUp')};` : ''}
            }
          }
        }
      }
      for (var m = 0; m < M; m = m + 1) {
        var value = groupSum(tid, acc[m]);
        ${gated ? 'var upValue = groupSum(tid, up[m]);' : ''}
        if (lane == 0 && n < outN && m < count) {
          ${bias ? `value = value + bias[n];${gated ? ' upValue = upValue + bias[n + outN];' : ''}` : ''}
          ${activation ? 'value = activate(value);' : ''}
          ${gated ? 'value = value * upValue;' : ''}
          ${residual ? 'value = value + residual[(r0 + m) * outN + n];' : ''}
          result[(r0 + m) * outN + n] = value;
        }
      }
    }
  `,
  };
}
