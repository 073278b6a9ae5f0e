import type * as tf from '@tensorflow/tfjs-core';
import { requireArena } from './weight-arena.js';

/**
 * Quantized weight matrices [in, out] in the weight arena, for the quantized
 * products of quant-linear.ts (kernels: quantKernelsWat in
 * scripts/wasm-kernels.ts).
 *
 * Formats, with GGUF's semantics: each output column is cut along `in` into
 * blocks of 32, each block with one f16 scale d.
 * - q8 (GGUF Q8_0): w = d·q, q an int8 (−127…127 when quantized here).
 * - q4 (GGUF Q4_0): w = d·(q − 8), q in 0…15.
 *
 * Arena layout. Output columns go in quads of 4 (the last one padded with
 * zero columns); quad after quad, each quad is a record of its nb = in/32
 * blocks in pairs: the quants of blocks 2g and 2g + 1, 128 (q8) or 64 (q4)
 * bytes each, then their scales, 2 × 4 f16 (one per column, column order;
 * a lone last block: its quants, its 4 scales, 8 bytes of padding). So a
 * one-row product reads the matrix as one stream. (Scales kept apart, at
 * the end of each quad, made a second stream that the hardware prefetcher
 * did not follow where a quad's scales are many lines long: with in = 3072
 * such products ran at half the speed they reach with in = 768.) Within a block,
 * bytes go [group][column][4 inputs]:
 * - q8: byte 16g + 4c + m holds q of column c, input 32b + 4g + m (g < 8);
 * - q4: byte 16g + 4c + m holds, low nibble, q of input 32b + 4g + m and,
 *   high nibble, of input 32b + 16 + 4g + m (g < 4): GGUF's Q4_0 byte 4g + m
 *   of that column's block, as it is.
 * So one 16-byte load gives 4 inputs × 4 columns, which a splat of a row's
 * 4 activations lines up with, products landing in per-column lanes. A
 * GGUF block's quants move over in 4-byte groups and its scale unchanged.
 * Bytes per weight: q8 1.0625, q4 0.5625 (plus padding: ≤ 8 bytes per
 * quad of scales, ≤ 3 columns per matrix).
 *
 * Quantizing here: scales are rounded up (in magnitude) to f16, so no value
 * is clipped and every weight is within d/2 of its quantized value:
 * - q8: d = amax/127 (GGUF's), q = round(w/d);
 * - q4: GGUF's d = −max/8 (max: the value of largest magnitude), enlarged
 *   where the block's largest value of the other sign would otherwise fall
 *   more than d/2 outside the grid: |d| = max(|max|/8, |other|/7.5), then
 *   q = clamp(round(w/d) + 8, 0, 15). Where |other| ≤ 0.9375·|max| (nearly
 *   always), d is GGUF's; GGUF would clip the rest at an error up to |d|.
 */
export type QuantFormat = 'q8' | 'q4';

/** Inputs per block. */
export const QUANT_BLOCK = 32;
/** Bytes of quants per block of a quad (4 columns). */
const BLOCK_BYTES: Record<QuantFormat, number> = { q8: 128, q4: 64 };
/** Bytes of one column's block in GGUF (f16 scale, then quants). */
export const GGUF_BLOCK_BYTES: Record<QuantFormat, number> = { q8: 34, q4: 18 };

export interface QuantMatrix {
  readonly format: QuantFormat;
  /** Arena offset of the quad records. */
  readonly at: number;
  /** Arena offset of the bias, 4·quads floats, zero-padded; 0: none. */
  readonly bias: number;
  readonly inDim: number;
  readonly outDim: number;
  /** ceil(outDim / 4). */
  readonly quads: number;
  /**
   * Products made from blocks quantized elsewhere (QuantBlocks: a GGUF file's) only: what
   * the float path folds into the weights before quantizing — a norm's affine part, a
   * column scale (q's attention scale) — which blocks cannot take without being quantized
   * again, applied around the product instead. quantLinear does not apply it; the wasm
   * kernel set's linear step does (the only one such products are prepared for).
   */
  readonly around?: QuantAround;
}

/** y = ((x·inputScale + inputShift)·W + b)·outputScale, each part optional; owned by its matrix. */
export interface QuantAround {
  /** [inDim]: a norm's weight γ, multiplying the standardized input. */
  readonly inputScale?: tf.Tensor1D;
  /** [inDim]: a LayerNorm's bias β, added after γ. */
  readonly inputShift?: tf.Tensor1D;
  /** [outDim]: multiplies each output column, bias included. */
  readonly outputScale?: tf.Tensor1D;
}

/**
 * A weight already quantized, as GGUF stores it and not yet in the arena: outDim rows, one
 * per output, of inDim/32 blocks — Q8_0's 34 bytes (f16 d, 32 int8) for q8, Q4_0's 18 (f16
 * d, 16 bytes of nibbles) for q4. Loaders hand a file's blocks to the wasm kernel set in this
 * form (a product's weight, the embedding, the head) so they reach the quantized products as
 * they are (quantMatrixFromBlocks), never through f32.
 */
export interface QuantBlocks {
  readonly format: QuantFormat;
  readonly inDim: number;
  readonly outDim: number;
  readonly data: Uint8Array;
}

/** A product [in, out] whose weight is already quantized (QuantBlocks); the bias stays float. */
export interface BlocksLinear {
  weight: QuantBlocks;
  bias?: tf.Tensor1D;
}

export function isQuantBlocks(value: unknown): value is QuantBlocks {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Partial<QuantBlocks>;
  return v.data instanceof Uint8Array && (v.format === 'q8' || v.format === 'q4');
}

/** Checks a QuantBlocks' shape and byte length; returns the bytes of one row (output). */
export function checkQuantBlocks(blocks: QuantBlocks, what = 'blocks'): number {
  checkShape(blocks.format, blocks.inDim, blocks.outDim);
  const rowBytes = (blocks.inDim / QUANT_BLOCK) * GGUF_BLOCK_BYTES[blocks.format];
  if (blocks.data.length !== blocks.outDim * rowBytes) {
    throw new Error(
      `${what}: ${blocks.data.length} bytes for ${blocks.outDim} rows of ${blocks.inDim / QUANT_BLOCK} ${ggufTypeName(blocks.format)} blocks of ${GGUF_BLOCK_BYTES[blocks.format]}`,
    );
  }
  return rowBytes;
}

const ggufTypeName = (format: QuantFormat) => (format === 'q8' ? 'Q8_0' : 'Q4_0');

/** Matrices not yet disposed (a second dispose is a no-op, not a double free). */
const live = new WeakSet<QuantMatrix>();

export function isQuantMatrix(value: unknown): value is QuantMatrix {
  return typeof value === 'object' && value !== null && live.has(value as QuantMatrix);
}

/** Offset of block b's quants in its quad's record. */
function blockOffset(format: QuantFormat, b: number): number {
  return (b >> 1) * (2 * BLOCK_BYTES[format] + 16) + (b & 1) * BLOCK_BYTES[format];
}

/** Offset of block b's 4 scales in its quad's record (blocks in pairs, the pair's scales after its quants). */
function scaleOffset(format: QuantFormat, b: number, blocks: number): number {
  const pair = b & ~1;
  return (
    (b >> 1) * (2 * BLOCK_BYTES[format] + 16) + Math.min(2, blocks - pair) * BLOCK_BYTES[format] + 8 * (b & 1)
  );
}

/** Bytes of one quad's record. */
export function quantQuadBytes(format: QuantFormat, inDim: number): number {
  const blocks = inDim / QUANT_BLOCK;
  return blocks * BLOCK_BYTES[format] + 16 * Math.ceil(blocks / 2);
}

/** Arena bytes of a matrix's quants and scales (the bias not counted). */
export function quantMatrixBytes(format: QuantFormat, inDim: number, outDim: number): number {
  return Math.ceil(outDim / 4) * quantQuadBytes(format, inDim);
}

/** The value of f16 bits. */
export function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 31) return mantissa === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * 2 ** (exponent - 15) * (1 + mantissa / 1024);
}

/** The bits of the least f16 ≥ value (value ≥ 0, finite); an error past f16's largest, 65504. */
export function halfAtLeast(value: number): number {
  if (!(value >= 0) || !Number.isFinite(value)) throw new Error(`quantize: cannot scale by ${value}`);
  if (value <= 2 ** -14) return Math.ceil(value / 2 ** -24); // subnormal (1024: the least normal)
  let exponent = Math.floor(Math.log2(value));
  if (2 ** exponent > value) exponent--;
  if (2 ** (exponent + 1) <= value) exponent++;
  let mantissa = Math.ceil((value / 2 ** exponent - 1) * 1024);
  if (mantissa === 1024) {
    exponent++;
    mantissa = 0;
  }
  if (exponent + 15 >= 31) {
    throw new Error(`quantize: a block scale of ${value} is past f16's range (weights above ~8e6)`);
  }
  return ((exponent + 15) << 10) | mantissa;
}

/**
 * Quantizes 32 values into a GGUF block's quants (q8: 32 int8 bytes; q4: 16
 * bytes, byte i holding q_i low and q_{i+16} high); returns the scale's f16 bits.
 */
export function quantizeBlock(format: QuantFormat, values: ArrayLike<number>, quants: Uint8Array): number {
  let max = 0;
  let top = 0;
  for (let i = 0; i < QUANT_BLOCK; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) throw new Error(`quantize: a weight is ${v}`);
    if (Math.abs(v) > max) {
      max = Math.abs(v);
      top = v;
    }
  }
  if (format === 'q8') {
    const bits = halfAtLeast(max / 127);
    const d = halfToFloat(bits);
    for (let i = 0; i < QUANT_BLOCK; i++) {
      const q = d === 0 ? 0 : Math.max(-127, Math.min(127, Math.round(values[i] / d)));
      quants[i] = q & 0xff;
    }
    return bits;
  }
  let other = 0;
  for (let i = 0; i < QUANT_BLOCK; i++) {
    if (values[i] * top < 0) other = Math.max(other, Math.abs(values[i]));
  }
  // d = −sign(top)·|d|: top's side reaches 8|d|, the other side 7|d|.
  const bits = halfAtLeast(Math.max(max / 8, other / 7.5)) | (top > 0 ? 0x8000 : 0);
  const d = halfToFloat(bits);
  const q = (v: number) => (d === 0 ? 8 : Math.max(0, Math.min(15, Math.round(v / d) + 8)));
  for (let i = 0; i < 16; i++) quants[i] = q(values[i]) | (q(values[i + 16]) << 4);
  return bits;
}

function checkShape(format: QuantFormat, inDim: number, outDim: number): void {
  if (format !== 'q8' && format !== 'q4') throw new Error(`quantize: unknown format ${format}`);
  if (!Number.isInteger(inDim) || inDim <= 0 || inDim % QUANT_BLOCK !== 0) {
    throw new Error(`quantize: the input dimension ${inDim} is not a positive multiple of ${QUANT_BLOCK}`);
  }
  if (!Number.isInteger(outDim) || outDim <= 0) {
    throw new Error(`quantize: the output dimension ${outDim} is not a positive integer`);
  }
}

/**
 * Allocates a matrix in the arena and fills it column block by column
 * block: `fill(column, block, quants)` writes a GGUF block's quants and
 * returns its scale's f16 bits. On an error the arena memory is freed.
 */
function buildMatrix(
  format: QuantFormat,
  inDim: number,
  outDim: number,
  bias: ArrayLike<number> | undefined,
  fill: (column: number, block: number, quants: Uint8Array) => number,
  around?: QuantAround,
): QuantMatrix {
  checkShape(format, inDim, outDim);
  if (bias !== undefined && bias.length !== outDim) {
    throw new Error(`quantize: a bias of ${bias.length} for ${outDim} outputs`);
  }
  const arena = requireArena();
  const quads = Math.ceil(outDim / 4);
  const quadBytes = quantQuadBytes(format, inDim);
  const blocks = inDim / QUANT_BLOCK;
  const blockBytes = BLOCK_BYTES[format];
  const groups = blockBytes / 16;
  const at = arena.alloc(quads * quadBytes);
  let biasAt = 0;
  try {
    if (bias !== undefined) biasAt = arena.alloc(16 * quads);
    // No allocation from here on: the views stay valid.
    const floats = arena.floats();
    const bytes = new Uint8Array(floats.buffer);
    bytes.fill(0, at, at + quads * quadBytes);
    if (bias !== undefined) {
      floats.fill(0, biasAt >> 2, (biasAt >> 2) + 4 * quads);
      for (let j = 0; j < outDim; j++) floats[(biasAt >> 2) + j] = bias[j];
    }
    const quants = new Uint8Array(QUANT_BLOCK);
    for (let column = 0; column < outDim; column++) {
      const quad = at + (column >> 2) * quadBytes;
      const c = column & 3;
      for (let b = 0; b < blocks; b++) {
        const scale = fill(column, b, quants);
        if ((scale & 0x7c00) === 0x7c00)
          throw new Error(`quantize: column ${column} block ${b}'s scale is not finite`);
        const base = quad + blockOffset(format, b) + 4 * c;
        for (let g = 0; g < groups; g++) {
          const to = base + 16 * g;
          bytes[to] = quants[4 * g];
          bytes[to + 1] = quants[4 * g + 1];
          bytes[to + 2] = quants[4 * g + 2];
          bytes[to + 3] = quants[4 * g + 3];
        }
        const scaleAt = quad + scaleOffset(format, b, blocks) + 2 * c;
        bytes[scaleAt] = scale & 0xff;
        bytes[scaleAt + 1] = scale >> 8;
      }
    }
  } catch (error) {
    arena.free(at);
    if (biasAt !== 0) arena.free(biasAt);
    throw error;
  }
  const matrix: QuantMatrix = around
    ? { format, at, bias: biasAt, inDim, outDim, quads, around }
    : { format, at, bias: biasAt, inDim, outDim, quads };
  live.add(matrix);
  return matrix;
}

export interface QuantizeOptions {
  /** The values are [out, in] (one row per output: a tied embedding as the head), not [in, out]. */
  transposed?: boolean;
  /** Added to each output, outDim values. */
  bias?: ArrayLike<number>;
}

/**
 * Quantizes a float weight, [in, out] (or [out, in] with `transposed`), into
 * the arena. The caller's values are only read.
 */
export function quantizeMatrixValues(
  format: QuantFormat,
  weight: ArrayLike<number>,
  shape: readonly [number, number],
  options: QuantizeOptions = {},
): QuantMatrix {
  const transposed = options.transposed === true;
  const [rows, cols] = shape;
  const [inDim, outDim] = transposed ? [cols, rows] : [rows, cols];
  if (weight.length !== rows * cols) {
    throw new Error(`quantize: ${weight.length} values for a [${rows}, ${cols}] weight`);
  }
  const values = new Float64Array(QUANT_BLOCK);
  return buildMatrix(format, inDim, outDim, options.bias, (column, block, quants) => {
    const first = block * QUANT_BLOCK;
    for (let i = 0; i < QUANT_BLOCK; i++) {
      values[i] = transposed ? weight[column * inDim + first + i] : weight[(first + i) * outDim + column];
    }
    return quantizeBlock(format, values, quants);
  });
}

/**
 * Quantizes a float weight tensor, [in, out] (or [out, in] with
 * `transposed`), and an optional bias into the arena. The tensors are only
 * read: disposing them stays the caller's business.
 */
export function quantizeMatrix(
  format: QuantFormat,
  weight: tf.Tensor2D,
  options: { transposed?: boolean; bias?: tf.Tensor1D } = {},
): QuantMatrix {
  if (weight.rank !== 2) throw new Error(`quantize: the weight has rank ${weight.rank}, not 2`);
  const values = weight.dataSync() as Float32Array;
  const bias = options.bias?.dataSync() as Float32Array | undefined;
  return quantizeMatrixValues(format, values, weight.shape, { transposed: options.transposed, bias });
}

/**
 * A matrix from GGUF tensor data of type Q8_0 (format q8) or Q4_0 (q4): a
 * weight with ne0 = inDim (contiguous) and ne1 = outDim, so outDim rows of
 * inDim/32 blocks of 34 (Q8_0: f16 d, 32 int8) or 18 bytes (Q4_0: f16 d, 16
 * bytes, byte i holding q_i low and q_{i+16} high). Blocks move over without
 * requantizing: the products give the values GGUF's dequantization gives.
 */
export function quantMatrixFromGguf(
  format: QuantFormat,
  data: Uint8Array,
  inDim: number,
  outDim: number,
  options: { bias?: ArrayLike<number>; around?: QuantAround } = {},
): QuantMatrix {
  checkShape(format, inDim, outDim);
  const blocks = inDim / QUANT_BLOCK;
  const blockBytes = GGUF_BLOCK_BYTES[format];
  if (data.length !== outDim * blocks * blockBytes) {
    throw new Error(
      `quantMatrixFromGguf: ${data.length} bytes for ${outDim}×${blocks} ${ggufTypeName(format)} blocks of ${blockBytes}`,
    );
  }
  return quantMatrixFromBlocks([{ format, inDim, outDim, data }], options);
}

/**
 * One matrix of `parts` side by side (their outputs in order: q|k|v, gate|up), each
 * QuantBlocks of the same format and input width, its blocks moved over as they are
 * (quantMatrixFromGguf's layout). On an error the arena memory is freed.
 */
export function quantMatrixFromBlocks(
  parts: readonly QuantBlocks[],
  options: { bias?: ArrayLike<number>; around?: QuantAround } = {},
): QuantMatrix {
  if (parts.length === 0) throw new Error('quantMatrixFromBlocks: no parts');
  const { format, inDim } = parts[0];
  const owner: number[] = [];
  const firstColumn: number[] = [];
  for (const [i, part] of parts.entries()) {
    checkQuantBlocks(part, `quantMatrixFromBlocks part ${i}`);
    if (part.format !== format || part.inDim !== inDim) {
      throw new Error(
        `quantMatrixFromBlocks: part ${i} is ${part.format} of input width ${part.inDim}, part 0 ${format} of ${inDim}`,
      );
    }
    for (let c = 0; c < part.outDim; c++) {
      owner.push(i);
      firstColumn.push(owner.length - 1 - c);
    }
  }
  const blocks = inDim / QUANT_BLOCK;
  const blockBytes = GGUF_BLOCK_BYTES[format];
  const n = format === 'q8' ? 32 : 16;
  return buildMatrix(
    format,
    inDim,
    owner.length,
    options.bias,
    (column, block, quants) => {
      const { data } = parts[owner[column]];
      const from = ((column - firstColumn[column]) * blocks + block) * blockBytes;
      for (let i = 0; i < n; i++) quants[i] = data[from + 2 + i];
      return data[from] | (data[from + 1] << 8);
    },
    options.around,
  );
}

/**
 * Quantizes a float weight [inDim, outDim] (row-major) into GGUF's blocks (QuantBlocks),
 * with this module's quantizer (quantizeBlock): for a product fused with parts that are
 * blocks already.
 */
export function quantBlocksFromValues(
  format: QuantFormat,
  weight: ArrayLike<number>,
  inDim: number,
  outDim: number,
): QuantBlocks {
  checkShape(format, inDim, outDim);
  if (weight.length !== inDim * outDim) {
    throw new Error(`quantize: ${weight.length} values for a [${inDim}, ${outDim}] weight`);
  }
  const blocks = inDim / QUANT_BLOCK;
  const blockBytes = GGUF_BLOCK_BYTES[format];
  const data = new Uint8Array(outDim * blocks * blockBytes);
  const values = new Float64Array(QUANT_BLOCK);
  const quants = new Uint8Array(QUANT_BLOCK);
  for (let column = 0; column < outDim; column++) {
    for (let b = 0; b < blocks; b++) {
      for (let i = 0; i < QUANT_BLOCK; i++) values[i] = weight[(b * QUANT_BLOCK + i) * outDim + column];
      const bits = quantizeBlock(format, values, quants);
      const at = (column * blocks + b) * blockBytes;
      data[at] = bits & 0xff;
      data[at + 1] = bits >> 8;
      data.set(quants.subarray(0, blockBytes - 2), at + 2);
    }
  }
  return { format, inDim, outDim, data };
}

/**
 * `blocks` with every block scale multiplied by `scale`, where each product is an f16
 * exactly (a power of two, away from f16's subnormals): the weights times `scale` with no
 * rounding at all. Undefined where any block's would round.
 */
export function scaleQuantBlocks(blocks: QuantBlocks, scale: number): QuantBlocks | undefined {
  if (!(Number.isFinite(scale) && scale > 0)) return undefined;
  const rowBytes = checkQuantBlocks(blocks, 'scaleQuantBlocks');
  const blockBytes = GGUF_BLOCK_BYTES[blocks.format];
  const data = blocks.data.slice();
  const count = (blocks.outDim * rowBytes) / blockBytes;
  for (let b = 0; b < count; b++) {
    const at = b * blockBytes;
    const bits = data[at] | (data[at + 1] << 8);
    if ((bits & 0x7c00) === 0x7c00) return undefined;
    const target = Math.abs(halfToFloat(bits)) * scale;
    let scaled: number;
    try {
      scaled = halfAtLeast(target);
    } catch {
      return undefined;
    }
    if (halfToFloat(scaled) !== target) return undefined;
    const signed = scaled | (bits & 0x8000);
    data[at] = signed & 0xff;
    data[at + 1] = signed >> 8;
  }
  return { ...blocks, data };
}

function requireLive(matrix: QuantMatrix, what: string): void {
  if (!live.has(matrix)) throw new Error(`${what}: the quantized matrix was disposed`);
}

/** The block scales, [outDim, in/32] (column by column). */
export function quantScales(matrix: QuantMatrix): Float32Array {
  requireLive(matrix, 'quantScales');
  const { format, at, inDim, outDim } = matrix;
  const blocks = inDim / QUANT_BLOCK;
  const quadBytes = quantQuadBytes(format, inDim);
  const bytes = new Uint8Array(requireArena().floats().buffer);
  const scales = new Float32Array(outDim * blocks);
  for (let column = 0; column < outDim; column++) {
    const from = at + (column >> 2) * quadBytes + 2 * (column & 3);
    for (let b = 0; b < blocks; b++) {
      const scaleAt = from + scaleOffset(format, b, blocks);
      scales[column * blocks + b] = halfToFloat(bytes[scaleAt] | (bytes[scaleAt + 1] << 8));
    }
  }
  return scales;
}

/** The weight the matrix stands for, [inDim, outDim] floats (tests, checks). */
export function dequantizeMatrix(matrix: QuantMatrix): Float32Array {
  requireLive(matrix, 'dequantizeMatrix');
  const { inDim, outDim } = matrix;
  const columns = dequantizeColumns(
    matrix,
    Int32Array.from({ length: outDim }, (_, c) => c),
  );
  const out = new Float32Array(inDim * outDim);
  for (let c = 0; c < outDim; c++)
    for (let i = 0; i < inDim; i++) out[i * outDim + c] = columns[c * inDim + i];
  return out;
}

/**
 * Columns `columns` of the weight, [columns.length, inDim]: for a tied head
 * quantized from the embedding ([vocab, hidden] transposed), the embedding
 * rows of those token ids, so lookups need no float copy of the table.
 */
export function dequantizeColumns(matrix: QuantMatrix, columns: ArrayLike<number>): Float32Array {
  requireLive(matrix, 'dequantizeColumns');
  const { format, at, inDim, outDim } = matrix;
  const blocks = inDim / QUANT_BLOCK;
  const quadBytes = quantQuadBytes(format, inDim);
  const bytes = new Uint8Array(requireArena().floats().buffer);
  const out = new Float32Array(columns.length * inDim);
  for (let n = 0; n < columns.length; n++) {
    const column = columns[n];
    if (!(Number.isInteger(column) && column >= 0 && column < outDim)) {
      throw new Error(`dequantizeColumns: column ${column} is not in [0, ${outDim})`);
    }
    const quad = at + (column >> 2) * quadBytes;
    for (let b = 0; b < blocks; b++) {
      const scaleAt = quad + 2 * (column & 3) + scaleOffset(format, b, blocks);
      const d = halfToFloat(bytes[scaleAt] | (bytes[scaleAt + 1] << 8));
      const block = quad + 4 * (column & 3) + blockOffset(format, b);
      const to = n * inDim + b * QUANT_BLOCK;
      for (let i = 0; i < QUANT_BLOCK; i++) {
        let q: number;
        if (format === 'q8') {
          const byte = bytes[block + 16 * (i >> 2) + (i & 3)];
          q = byte > 127 ? byte - 256 : byte;
        } else {
          const j = i & 15;
          const byte = bytes[block + 16 * (j >> 2) + (j & 3)];
          q = (i < 16 ? byte & 15 : byte >> 4) - 8;
        }
        out[to + i] = d * q;
      }
    }
  }
  return out;
}

export function disposeQuantMatrix(matrix: QuantMatrix): void {
  if (!live.delete(matrix)) return;
  const arena = requireArena();
  arena.free(matrix.at);
  if (matrix.bias !== 0) arena.free(matrix.bias);
  matrix.around?.inputScale?.dispose();
  matrix.around?.inputShift?.dispose();
  matrix.around?.outputScale?.dispose();
}
