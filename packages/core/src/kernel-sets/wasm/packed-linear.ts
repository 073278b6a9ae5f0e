import * as tf from '@tensorflow/tfjs-core';
import type { Linear } from '../../transformer/linear.js';
import { kernelSetAllowed } from '../setting.js';
import { type ArenaMatrix, arenaTransposedLinear, isArenaMatrix } from './arena-matrix.js';
import { runOnThreads, threadRanges } from './kernel-threads.js';
import { prefetchChoice } from './prefetch-choice.js';
import { requireWasmKernels, wasmKernels } from './wasm-kernels.js';
import { copyRowsOut, requireArena, weightArena } from './weight-arena.js';

/**
 * A dense layer whose weight is kept as column panels for core's wasm matrix
 * product (layout in scripts/wasm-kernels.ts), in the weight arena, where
 * the kernel threads share it (weight-arena.ts, kernel-threads.ts). On wasm
 * it replaces tfjs's fused matmul for every row count: measured on this
 * machine's 2-core EPYC (GPT-2-small shapes, one thread), one row runs at
 * memory speed like XNNPACK's, 8 rows take 0.7 ms where XNNPACK takes
 * 1.0 ms, 512 rows 45 instead of 60 ms; two threads add 1.25× for one row
 * and up to 1.7× for several. It also replaces XNNPACK's hidden packed copy
 * (tfjs-wasm keeps one per weight it has multiplied by), so a model holds
 * its weights once.
 */
export interface PackedLinear {
  /** Arena offset of the panels, [ceil(outDim/8), inDim, 8] floats, zero-padded. */
  readonly panels: number;
  /** Arena offset of the bias, 8·ceil(outDim/8) floats, zero-padded; 0: none. */
  readonly bias: number;
  readonly inDim: number;
  readonly outDim: number;
}

export const PACKED_MATMUL = 'SpecstreamPackedMatMul';

/** Whether packLinear can run on the current backend. */
export function packedLinearSupported(): boolean {
  return wasmKernels() !== undefined && weightArena() !== undefined;
}

/**
 * Whether code that takes no kernel set (Whisper, the streaming encoder)
 * uses core's wasm kernels: where supported, unless SPECSTREAM_KERNELS
 * names another set (reference: tfjs's own kernels, for comparison).
 */
export function useWasmKernels(): boolean {
  return kernelSetAllowed('wasm') && packedLinearSupported();
}

/** Rows per tile of the product (MAX_TILE_ROWS in scripts/wasm-kernels.ts). */
const MAX_TILE_ROWS = 4;

/** Columns packed per step: a band of K × 128 floats is staged in the arena's scratch. */
const PACK_BAND = 128;

/**
 * Packs a weight given as floats, [inDim, outDim] or (transposed) [outDim, inDim],
 * into the arena. The caller's arrays are only read.
 */
export function packLinearValues(
  weight: Float32Array,
  shape: readonly [number, number],
  options: { transposed?: boolean; bias?: Float32Array } = {},
): PackedLinear {
  const transposed = options.transposed === true;
  const [rows, cols] = shape;
  const [inDim, outDim] = transposed ? [cols, rows] : [rows, cols];
  if (weight.length !== rows * cols) {
    throw new Error(`packLinear: ${weight.length} values for a [${rows}, ${cols}] weight`);
  }
  if (options.bias !== undefined && options.bias.length !== outDim) {
    throw new Error(`packLinear: a bias of ${options.bias.length} for ${outDim} outputs`);
  }
  const arena = requireArena();
  const padded = 8 * Math.ceil(outDim / 8);
  const panels = arena.alloc(4 * padded * Math.max(inDim, 1));
  let bias = 0;
  try {
    const band = arena.scratch(4 * PACK_BAND * inDim);
    for (let c0 = 0; c0 < outDim; c0 += PACK_BAND) {
      const width = Math.min(PACK_BAND, outDim - c0);
      const floats = arena.floats();
      if (transposed) floats.set(weight.subarray(c0 * inDim, (c0 + width) * inDim), band >> 2);
      else {
        for (let i = 0; i < inDim; i++) {
          floats.set(weight.subarray(i * outDim + c0, i * outDim + c0 + width), (band >> 2) + i * width);
        }
      }
      arena.exports.packPanels(band, inDim, width, transposed ? 1 : 0, panels + 4 * c0 * inDim);
    }
    if (options.bias !== undefined) {
      bias = arena.alloc(4 * padded);
      const floats = arena.floats();
      floats.fill(0, bias >> 2, (bias >> 2) + padded);
      floats.set(options.bias, bias >> 2);
    }
  } catch (error) {
    arena.free(panels);
    throw error;
  }
  const layer = { panels, bias, inDim, outDim };
  live.add(layer);
  return layer;
}

/** Packed layers not yet disposed (a second dispose is a no-op, not a double free). */
const live = new WeakSet<PackedLinear>();

/**
 * Packs a layer for the wasm product, taking ownership of its tensors: the
 * panels go to the weight arena and the tensors are freed. `transposed`:
 * `weight` is [out, in].
 */
export function packLinear(layer: Linear, options: { transposed?: boolean } = {}): PackedLinear {
  const k = requireWasmKernels();
  const shape = layer.weight.shape;
  try {
    // Read in place from the backend's heap: no host copy of the weight.
    const heap = k.heap();
    const at = k.offset(layer.weight) >> 2;
    const weight = heap.subarray(at, at + shape[0] * shape[1]);
    const bias = layer.bias && (layer.bias.dataSync() as Float32Array);
    return packLinearValues(weight, shape, { transposed: options.transposed, bias });
  } finally {
    layer.weight.dispose();
    layer.bias?.dispose();
  }
}

export function disposePackedLinear(layer: PackedLinear): void {
  if (!live.delete(layer)) return;
  const arena = requireArena();
  arena.free(layer.panels);
  if (layer.bias !== 0) arena.free(layer.bias);
}

/** The inputs and attributes of a PACKED_MATMUL kernel call (for callers that run kernels directly). */
export function packedMatMulCall(
  x: tf.Tensor,
  layer: PackedLinear,
): { inputs: tf.NamedTensorMap; attrs: tf.NamedAttrMap } {
  const columns = x.shape[x.shape.length - 1];
  if (x.rank < 1 || columns !== layer.inDim) {
    throw new Error(`packedLinear: x has ${columns} columns, the layer takes ${layer.inDim}`);
  }
  if (!live.has(layer)) throw new Error('packedLinear: the layer was disposed');
  const { panels, bias, inDim, outDim } = layer;
  return { inputs: { x }, attrs: { panels, bias, inDim, outDim } };
}

/** x [..., inDim] → [..., outDim]. */
export function packedLinear<T extends tf.Tensor>(x: T, layer: PackedLinear): T {
  const { inputs, attrs } = packedMatMulCall(x, layer);
  return tf.engine().runKernel(PACKED_MATMUL, inputs, attrs) as T;
}

/**
 * A dense layer whose weight is kept [out, in], one row per output (a tied
 * embedding used as the output head): multiplied by rows of dot products,
 * with no transposed or packed copy (for GPT-2's head that copy is 154 MB).
 * In the weight arena (an ArenaMatrix) the work is split over the kernel
 * threads; a tensor runs on this thread. No bias. Not owned: disposing the
 * layer is the weight owner's business.
 */
export interface TransposedLinear {
  readonly weightT: tf.Tensor2D | ArenaMatrix;
}

export const TRANSPOSED_MATMUL = 'SpecstreamTransposedMatMul';

/** Whether transposedLinear runs for this input width on the current backend. */
export function transposedLinearSupported(inDim: number): boolean {
  return inDim % 4 === 0 && wasmKernels() !== undefined;
}

/** x [rows, in] · weightTᵀ → [rows, out]. */
export function transposedLinear(x: tf.Tensor2D, layer: TransposedLinear): tf.Tensor2D {
  const { weightT } = layer;
  if (isArenaMatrix(weightT)) return arenaTransposedLinear(x, weightT);
  if (x.shape[1] !== weightT.shape[1]) {
    throw new Error(`transposedLinear: x has ${x.shape[1]} columns, the layer takes ${weightT.shape[1]}`);
  }
  return tf.engine().runKernel(TRANSPOSED_MATMUL, { x, weightT: weightT as tf.Tensor2D }) as tf.Tensor2D;
}

/** A thread's share is at least this many panels. */
const MIN_PANELS_PER_THREAD = 16;
/** Whether multi-row products load weight blocks into the cache first: decided by timing both. */
const productPrefetch = prefetchChoice();

tf.registerKernel({
  kernelName: PACKED_MATMUL,
  backendName: 'wasm',
  kernelFunc: ({ inputs, attrs }) => {
    const k = requireWasmKernels();
    const arena = requireArena();
    const x = inputs.x as tf.TensorInfo;
    const { panels, bias, inDim, outDim } = attrs as Record<string, number>;
    // Any rank: leading dimensions are rows (the streaming encoder's [1, rows, in] needs no reshape).
    const rows = x.shape.slice(0, -1).reduce((a, b) => a * b, 1);
    const out = k.backend.makeOutput([...x.shape.slice(0, -1), outDim], 'float32');
    if (rows === 0 || outDim === 0) return out;
    const padded = 8 * Math.ceil(outDim / 8);
    // Arena scratch: the rows as given, interleaved by tiles of up to 4 (one row is itself), the product.
    const size = rows * inDim;
    const scratch = arena.scratch(4 * (2 * size + rows * padded));
    const given = scratch;
    const interleaved = rows === 1 ? given : given + 4 * size;
    const product = given + 8 * size;
    const xAt = k.offset(x) >> 2;
    arena.floats().set(k.heap().subarray(xAt, xAt + size), given >> 2);
    if (rows > 1) {
      for (let row = 0; row < rows; row += MAX_TILE_ROWS) {
        const n = Math.min(MAX_TILE_ROWS, rows - row);
        arena.exports.interleave(given + 4 * row * inDim, inDim, n, interleaved + 4 * row * inDim);
      }
    }
    const total = padded / 8;
    const work = rows * inDim * outDim;
    const shape = `${inDim}x${outDim}`;
    const prefetch = productPrefetch.flag(rows, work, shape);
    const calls = threadRanges(total, MIN_PANELS_PER_THREAD, work).map(([p0, p1]) => [
      interleaved,
      rows,
      panels,
      bias,
      product,
      inDim,
      padded,
      p0,
      p1,
      prefetch,
    ]);
    const t0 = performance.now();
    runOnThreads(arena, 'product', calls);
    productPrefetch.record(prefetch, rows, work, performance.now() - t0, shape);
    copyRowsOut(arena, product, padded, k.heap().subarray(k.offset(out) >> 2), rows, outDim);
    return out;
  },
});

tf.registerKernel({
  kernelName: TRANSPOSED_MATMUL,
  backendName: 'wasm',
  kernelFunc: ({ inputs }) => {
    const k = requireWasmKernels();
    const { x, weightT } = inputs as Record<string, tf.TensorInfo>;
    const [rows, inDim] = x.shape;
    const outDim = weightT.shape[0];
    if (inDim % 4 !== 0) throw new Error(`transposedLinear: input width ${inDim} is not a multiple of 4`);
    const out = k.backend.makeOutput([rows, outDim], 'float32');
    // The whole product in one call (dotsProduct in scripts/wasm-kernels.ts blocks and tiles it).
    k.exports.dotsProduct(k.offset(x), k.offset(weightT), k.offset(out), inDim, rows, outDim, 0, outDim, 1);
    return out;
  },
});
