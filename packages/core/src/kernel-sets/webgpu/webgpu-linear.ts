import type { Activation } from '../../transformer/mlp.js';
import { ACTIVATION_WGSL } from './webgpu-activation.js';
import { MAIN, type WebGpuProgram, workgroupSumWgsl } from './webgpu-program.js';

/**
 * Rows a workgroup carries through the product at most (more rows: more workgroups, each
 * reading the weights again). SPECSTREAM_LINEAR_ROW_BLOCK (1–64) overrides it, to measure
 * whether batch 32 gains from reading the weights once (RESULTS.md, GPU: 16 rows read them twice).
 */
const ROW_BLOCK = rowBlock(globalThis.process?.env?.SPECSTREAM_LINEAR_ROW_BLOCK);

function rowBlock(setting: string | undefined): number {
  if (setting === undefined || setting === '') return 16;
  const n = Number(setting);
  if (!Number.isInteger(n) || n < 1 || n > 64) {
    throw new Error(`SPECSTREAM_LINEAR_ROW_BLOCK must be an integer in 1…64, got "${setting}"`);
  }
  return n;
}
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
   * f32 scale per 32 inputs in `scales` (quantizeRowsQ8); q4, each i32 eight
   * 4-bit values of one row with one f32 scale per 32 inputs
   * (quantizeRowsQ4). Sums are f32.
   */
  weights?: 'f32' | 'f16' | 'q8' | 'q4';
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
  // Each lane takes `chunk` vec4s of inputs at a time: one load of weights covers them. f32, one
  // vec4; f16, one vec2<i32> (two packed pairs); q8, one vec4<i32> of sixteen int8 (byte j of
  // word i: input 4i + j), half a block; q4, one vec4<i32> of 32 nibbles (word i, byte j: input
  // 8i + j low, 8i + 4 + j high), one whole block. Wide loads keep the weight stream in few
  // transactions; the block's scale multiplies the chunk's sum once.
  const chunk = { f32: 1, f16: 1, q8: 4, q4: 8 }[format];
  const quantized = format === 'q8' || format === 'q4';
  const weightChunk = (row: string, c: string): string[] => {
    if (format === 'f32') return [`w[${row} * K + ${c}]`];
    if (format === 'f16')
      return [
        `vec4<f32>(unpack2x16float(bitcast<u32>(w[${row} * K + ${c}].x)), unpack2x16float(bitcast<u32>(w[${row} * K + ${c}].y)))`,
      ];
    const words = `w[${row} * (K / ${chunk}) + ${c}]`;
    return format === 'q8'
      ? ['x', 'y', 'z', 'w'].map((lane) => `unpackQ8(${words}.${lane})`)
      : ['x', 'y', 'z', 'w'].flatMap((lane) => [
          `unpackQ4(${words}.${lane}, 0u)`,
          `unpackQ4(${words}.${lane}, 4u)`,
        ]);
  };
  // The scale of the block holding chunk c of row `row` (8 vec4s a block).
  const scaleAt = (row: string, c: string) => `scales[${row} * (K / 8) + (${c} * ${chunk}) / 8]`;
  const variableNames = [
    'x',
    'w',
    ...(quantized ? ['scales'] : []),
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
    variableComponents: [width, format === 'f16' ? 2 : quantized ? 4 : width, 1, 1, 1].slice(
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
        : format === 'q4'
          ? `// Four nibbles of one i32, byte j's low (shift 0) or high (shift 4) as lane j, less 8.
    fn unpackQ4(p : i32, shift : u32) -> vec4<f32> {
      let nibbles = (vec4<u32>(bitcast<u32>(p)) >> (vec4<u32>(0u, 8u, 16u, 24u) + shift)) & vec4<u32>(15u);
      return vec4<f32>(nibbles) - vec4<f32>(8.0);
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
        for (var c = lane; c < K / ${chunk}; c = c + ${LANES}) {
          ${weightChunk('n', 'c')
            .map((e, j) => `let w${j} = ${e};`)
            .join('\n          ')}
          ${
            gated
              ? weightChunk('(n + outN)', 'c')
                  .map((e, j) => `let u${j} = ${e};`)
                  .join('\n          ')
              : ''
          }
          ${quantized ? `let blockScale = ${scaleAt('n', 'c')};` : ''}
          ${quantized && gated ? `let blockScaleUp = ${scaleAt('(n + outN)', 'c')};` : ''}
          for (var m = 0; m < M; m = m + 1) {
            if (m < count) {
              var dotW = 0.0;
              ${gated ? 'var dotU = 0.0;' : ''}
              ${Array.from(
                { length: chunk },
                (_, j) => `{
                let k = c * ${chunk} + ${j};
                let v = ${input};
                dotW = dotW + ${product('v', `w${j}`)};
                ${gated ? `dotU = dotU + ${product('v', `u${j}`)};` : ''}
              }`,
              ).join('\n              ')}
              acc[m] = acc[m] + ${quantized ? 'blockScale * dotW' : 'dotW'};
              ${gated ? `up[m] = up[m] + ${quantized ? 'blockScaleUp * dotU' : 'dotU'};` : ''}
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
