import * as tf from '@tensorflow/tfjs-core';
import type { Activation } from '../../transformer/mlp.js';
import { linearProgram } from './webgpu-linear.js';
import { MAIN, requireWebGpuPrograms, type WebGpuProgram } from './webgpu-program.js';

/**
 * A dense layer for core's webgpu programs: the weight stored [out, in], so
 * each output's weights are one contiguous row (see linearProgram), the bias
 * and whatever surrounds the product fused into the same program.
 */
export interface RowLinear {
  /**
   * [out, in] floats; or [out, in/2] int32 holding f16 pairs (packF16Rows);
   * or, with `scales`, [out, in/4] int32 holding int8 quads (quantizeRowsQ8)
   * or [out, in/8] int32 holding 4-bit octets (quantizeRowsQ4).
   */
  readonly weightRows: tf.Tensor2D;
  /** q8 and q4 only: one scale per row and block of 32 inputs, [out, in/32]. */
  readonly scales?: tf.Tensor2D;
  readonly bias?: tf.Tensor1D;
}

export const ROW_LINEAR = 'SpecstreamRowLinear';

export interface RowLinearEpilogue {
  norm?: { kind: 'layer' | 'rms'; eps: number };
  activation?: Activation;
  gated?: boolean;
  residual?: tf.Tensor2D;
  /** Multiply only x's rows offset, offset + stride, …: a pass's last step per batch row, without a gather. */
  pickRows?: { stride: number; offset: number };
}

/**
 * [rows, cols] floats → [rows, cols/2] int32, each the f16 bits of a pair
 * (round to nearest even, as pack2x16float does): the weight of a RowLinear
 * at half the bytes. Runs on the device, where the floats are. cols even.
 */
export function packF16Rows(weight: tf.Tensor2D): tf.Tensor2D {
  const cols = weight.shape[1];
  if (weight.rank !== 2 || cols % 2 !== 0) {
    throw new Error(`packF16Rows: [${weight.shape}] is not a matrix with an even row length`);
  }
  return tf.engine().runKernel(PACK_F16, { w: weight }) as tf.Tensor2D;
}

export const PACK_F16 = 'SpecstreamPackF16';
export const QUANTIZE_Q8 = 'SpecstreamQuantizeQ8';
export const QUANTIZE_Q4 = 'SpecstreamQuantizeQ4';

/**
 * [rows, cols] floats → int8 quads [rows, cols/4] (int32, byte j: column
 * 4i + j) and scales [rows, cols/32]: per row and block of 32 columns
 * d = amax/127, q = round(w/d) (ties to even), so every weight is within
 * d/2. The q8 weight of a RowLinear, a quarter of the bytes; made on the
 * device, where the floats are. cols a multiple of 32.
 */
export function quantizeRowsQ8(weight: tf.Tensor2D): { weightRows: tf.Tensor2D; scales: tf.Tensor2D } {
  return quantizeRows('q8', weight);
}

/**
 * [rows, cols] floats → 4-bit octets [rows, cols/8] (int32: word i, byte j
 * holds q of column 8i + j in its low nibble and of 8i + 4 + j in its high
 * one) and scales [rows, cols/32]: per row and block of 32 columns GGUF
 * Q4_0's w ≈ d·(q − 8), q in 0…15, with d = −max/8 (max: the value of
 * largest magnitude), enlarged where the largest value of the other sign
 * would fall more than d/2 outside the grid (|d| = max(|max|/8,
 * |other|/7.5), the wasm set's rule), so every weight is within |d|/2.
 * An eighth of the bytes; made on the device. cols a multiple of 32.
 */
export function quantizeRowsQ4(weight: tf.Tensor2D): { weightRows: tf.Tensor2D; scales: tf.Tensor2D } {
  return quantizeRows('q4', weight);
}

/** Per format: its kernel, weights per int32 word, and the WGSL of its scales and of its words. */
const QUANTIZERS = {
  q8: {
    kernel: QUANTIZE_Q8,
    perWord: 4,
    scales: `
        var amax = 0.0;
        for (var j = 0; j < 8; j = j + 1) {
          let v = abs(w[index * 8 + j]);
          amax = max(amax, max(max(v.x, v.y), max(v.z, v.w)));
        }
        result[index] = amax / 127.0;`,
    // Word index·4 is the flat float index of its first weight; its block is that over 32.
    words: `
        let d = scales[(index * 4) / 32];
        var q = vec4<i32>(0);
        if (d > 0.0) { q = vec4<i32>(clamp(round(w[index] / d), vec4<f32>(-127.0), vec4<f32>(127.0))); }
        result[index] = (q.x & 255) | ((q.y & 255) << 8u) | ((q.z & 255) << 16u) | (q.w << 24u);`,
  },
  q4: {
    kernel: QUANTIZE_Q4,
    perWord: 8,
    // The value of largest magnitude maps to q = 0; the other sign must round to ≤ 15.
    scales: `
        var most = 0.0;
        var least = 0.0;
        for (var j = 0; j < 8; j = j + 1) {
          let v = w[index * 8 + j];
          most = max(most, max(max(v.x, v.y), max(v.z, v.w)));
          least = min(least, min(min(v.x, v.y), min(v.z, v.w)));
        }
        var top = most;
        var other = -least;
        if (-least > most) { top = least; other = most; }
        let size = max(abs(top) / 8.0, other / 7.5);
        result[index] = select(-sign(top) * size, 0.0, top == 0.0);`,
    words: `
        let d = scales[(index * 8) / 32];
        let low = quantize4(w[index * 2], d);
        let high = quantize4(w[index * 2 + 1], d);
        let bytes = low | (high << vec4<u32>(4u));
        result[index] = bitcast<i32>(bytes.x | (bytes.y << 8u) | (bytes.z << 16u) | (bytes.w << 24u));`,
  },
} as const;

const QUANTIZE4_WGSL = `
      fn quantize4(v : vec4<f32>, d : f32) -> vec4<u32> {
        if (d == 0.0) { return vec4<u32>(8u); }
        return vec4<u32>(clamp(round(v / d) + vec4<f32>(8.0), vec4<f32>(0.0), vec4<f32>(15.0)));
      }`;

function quantizeRows(
  format: 'q8' | 'q4',
  weight: tf.Tensor2D,
): { weightRows: tf.Tensor2D; scales: tf.Tensor2D } {
  const cols = weight.shape[1];
  if (weight.rank !== 2 || cols % 32 !== 0) {
    const name = format === 'q8' ? 'quantizeRowsQ8' : 'quantizeRowsQ4';
    throw new Error(`${name}: [${weight.shape}] is not a matrix with rows a multiple of 32 long`);
  }
  const { kernel } = QUANTIZERS[format];
  const scales = tf.engine().runKernel(kernel, { w: weight }, { part: 'scales' }) as tf.Tensor2D;
  const weightRows = tf.engine().runKernel(kernel, { w: weight, scales }, { part: 'words' }) as tf.Tensor2D;
  return { weightRows, scales };
}

for (const [format, q] of Object.entries(QUANTIZERS)) {
  tf.registerKernel({
    kernelName: q.kernel,
    backendName: 'webgpu',
    kernelFunc: ({ inputs, attrs }) => {
      const { w, scales } = inputs as Record<string, tf.TensorInfo>;
      const [rows, cols] = w.shape;
      const threads = 64;
      const words = attrs!.part === 'words';
      const size = (rows * cols) / (words ? q.perWord : 32);
      const program: WebGpuProgram = {
        variableNames: words ? ['w', 'scales'] : ['w'],
        outputShape: words ? [rows, cols / q.perWord] : [rows, cols / 32],
        shaderKey: `specstreamQuantize_${format}_${words ? 'words' : 'scales'}`,
        dispatchLayout: { x: [0, 1] },
        dispatch: [Math.ceil(size / threads), 1, 1],
        workgroupSize: [threads, 1, 1],
        size: true,
        variableComponents: words ? [4, 1] : [4],
        getUserCode: () => `
      ${format === 'q4' && words ? QUANTIZE4_WGSL : ''}
      ${MAIN} {
        if (index >= uniforms.size) { return; }
        ${words ? q.words : q.scales}
      }`,
      };
      return requireWebGpuPrograms().runWebGPUProgram(
        program,
        words ? [w, scales] : [w],
        words ? 'int32' : 'float32',
      );
    },
  });
}

tf.registerKernel({
  kernelName: PACK_F16,
  backendName: 'webgpu',
  kernelFunc: ({ inputs }) => {
    const w = inputs.w as tf.TensorInfo;
    const [rows, cols] = w.shape;
    const threads = 64;
    const size = (rows * cols) / 2;
    const program: WebGpuProgram = {
      variableNames: ['w'],
      outputShape: [rows, cols / 2],
      shaderKey: 'specstreamPackF16',
      dispatchLayout: { x: [0, 1] },
      dispatch: [Math.ceil(size / threads), 1, 1],
      workgroupSize: [threads, 1, 1],
      size: true,
      variableComponents: [2],
      getUserCode: () => `
      ${MAIN} {
        if (index < uniforms.size) { result[index] = bitcast<i32>(pack2x16float(w[index])); }
      }
    `,
    };
    return requireWebGpuPrograms().runWebGPUProgram(program, [w], 'int32');
  },
});

/** residual + act(standardize(x)·Wᵀ + b), each part optional, as one program. */
export function rowLinear(x: tf.Tensor2D, layer: RowLinear, o: RowLinearEpilogue = {}): tf.Tensor2D {
  const gated = o.gated ?? false;
  if (gated && o.activation === undefined) throw new Error('rowLinear: a gated layer needs an activation');
  const inputs: tf.NamedTensorMap = { x, w: layer.weightRows };
  if (layer.scales) inputs.scales = layer.scales;
  if (layer.bias) inputs.bias = layer.bias;
  if (o.residual) inputs.residual = o.residual;
  const attrs = {
    norm: o.norm?.kind ?? 'none',
    eps: o.norm?.eps ?? 0,
    activation: o.activation ?? 'none',
    gated,
    xStride: o.pickRows?.stride ?? 1,
    xOffset: o.pickRows?.offset ?? 0,
  };
  return tf.engine().runKernel(ROW_LINEAR, inputs, attrs) as tf.Tensor2D;
}

tf.registerKernel({
  kernelName: ROW_LINEAR,
  backendName: 'webgpu',
  kernelFunc: ({ inputs, attrs }) => {
    const { x, w, scales, bias, residual } = inputs as Record<string, tf.TensorInfo | undefined>;
    const [xRows, inner] = x!.shape;
    const gated = attrs!.gated === true;
    const stride = attrs!.xStride as number;
    const offset = attrs!.xOffset as number;
    if (
      !Number.isInteger(stride) ||
      stride < 1 ||
      !Number.isInteger(offset) ||
      offset < 0 ||
      offset >= xRows
    ) {
      throw new Error(`rowLinear: cannot pick rows ${offset}, ${offset} + ${stride}, … of ${xRows} rows`);
    }
    const rows = Math.floor((xRows - 1 - offset) / stride) + 1;
    const columns = gated ? w!.shape[0] / 2 : w!.shape[0];
    // An int32 weight holds f16 pairs, or with scales int8 quads (q8) or 4-bit octets (q4).
    const format = w!.dtype !== 'int32' ? 'f32' : !scales ? 'f16' : w!.shape[1] * 8 === inner ? 'q4' : 'q8';
    const perWord = { f32: 1, f16: 2, q8: 4, q4: 8 }[format];
    if (
      x!.shape.length !== 2 ||
      perWord * w!.shape[1] !== inner ||
      (format !== 'f32' && inner % 4 !== 0) ||
      ((format === 'q8' || format === 'q4') &&
        (inner % 32 !== 0 || scales!.shape[0] !== w!.shape[0] || scales!.shape[1] !== inner / 32)) ||
      (gated && w!.shape[0] % 2 !== 0)
    ) {
      throw new Error(`rowLinear: cannot multiply [${x!.shape}] by [${w!.shape}]ᵀ${gated ? ' (gated)' : ''}`);
    }
    if (residual && (residual.shape[0] !== rows || residual.shape[1] !== columns)) {
      throw new Error(`rowLinear: residual [${residual.shape}] is not [${rows},${columns}]`);
    }
    const norm = attrs!.norm as 'layer' | 'rms' | 'none';
    const activation = attrs!.activation as Activation | 'none';
    const program = linearProgram({
      rows,
      columns,
      norm: norm === 'none' ? undefined : norm,
      bias: bias !== undefined,
      activation: activation === 'none' ? undefined : activation,
      gated,
      residual: residual !== undefined,
      vectorized: inner % 4 === 0,
      weights: format,
    });
    const used = [
      x!,
      w!,
      ...(scales ? [scales] : []),
      ...(bias ? [bias] : []),
      ...(residual ? [residual] : []),
    ];
    return requireWebGpuPrograms().runWebGPUProgram(program, used, 'float32', [
      { type: 'float32', data: [attrs!.eps as number] },
      { type: 'int32', data: [stride] },
      { type: 'int32', data: [offset] },
    ]);
  },
});
