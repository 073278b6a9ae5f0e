import * as tf from '@tensorflow/tfjs-core';
import type { Linear } from '../transformer/linear.js';
import { requireWasmKernels, wasmKernels } from './wasm-kernels.js';

/**
 * A dense layer whose weight is kept as column panels for core's wasm matrix
 * product (layout in scripts/wasm-kernels.ts). On wasm it replaces tfjs's
 * fused matmul for every row count: measured on this machine's 2-core EPYC
 * (GPT-2-small shapes), one row runs at memory speed like XNNPACK's, 8 rows
 * take 0.7 ms where XNNPACK takes 1.0 ms, 512 rows 45 instead of 60 ms. It
 * also replaces XNNPACK's hidden packed copy (tfjs-wasm keeps one per weight
 * it has multiplied by), so a model holds its weights once.
 */
export interface PackedLinear {
  /** [ceil(outDim/8), inDim, 8], zero-padded. */
  readonly panels: tf.Tensor3D;
  /** [8·ceil(outDim/8)], zero-padded. */
  readonly bias?: tf.Tensor1D;
  readonly inDim: number;
  readonly outDim: number;
}

export const PACKED_MATMUL = 'SpecstreamPackedMatMul';
const PACK_PANELS = 'SpecstreamPackPanels';

/** Whether packLinear can run on the current backend. */
export function packedLinearSupported(): boolean {
  return wasmKernels() !== undefined;
}

/**
 * Whether models built now pack their weights: where supported, unless
 * SPECSTREAM_WASM_KERNELS=off (which benchmarks use to compare with tfjs's
 * own kernels).
 */
export function useWasmKernels(): boolean {
  return globalThis.process?.env?.SPECSTREAM_WASM_KERNELS !== 'off' && packedLinearSupported();
}

/**
 * Packs a layer for the wasm product, taking ownership of its tensors. When
 * outDim is a multiple of 8 (no padding) and nothing else shares the
 * weight's data, the panels are written over the weight's own memory
 * (through a temporary buffer of one matrix), so packing a model needs no
 * second copy of its weights. `transposed`: `weight` is [out, in].
 */
export function packLinear(layer: Linear, options: { transposed?: boolean } = {}): PackedLinear {
  const transposed = options.transposed === true;
  const [rows, cols] = layer.weight.shape;
  const [inDim, outDim] = transposed ? [cols, rows] : [rows, cols];
  const padded = 8 * Math.ceil(outDim / 8);
  const k = requireWasmKernels();
  let panels: tf.Tensor3D;
  if (!transposed && padded === outDim && k.backend.dataIdMap.get(layer.weight.dataId)?.refCount === 1) {
    const bytes = 4 * inDim * outDim;
    const weightAt = k.offset(layer.weight);
    const temp = k.backend.wasm._malloc(bytes) >>> 0;
    try {
      k.exports.packPanels(weightAt, inDim, outDim, 0, temp);
      k.heap().copyWithin(weightAt >> 2, temp >> 2, (temp + bytes) >> 2);
    } finally {
      k.backend.wasm._free(temp);
    }
    panels = tf.reshape(layer.weight, [outDim / 8, inDim, 8]);
  } else {
    panels = tf.engine().runKernel(PACK_PANELS, { weight: layer.weight }, { transposed }) as tf.Tensor3D;
  }
  layer.weight.dispose();
  const bias = layer.bias && tf.tidy(() => tf.pad(layer.bias!, [[0, padded - outDim]]) as tf.Tensor1D);
  layer.bias?.dispose();
  return bias ? { panels, bias, inDim, outDim } : { panels, inDim, outDim };
}

/**
 * A layer as the current backend multiplies fastest: packed for core's wasm
 * product where models pack (useWasmKernels; ownership of `layer` passes to
 * the result), else `layer` itself.
 */
export function denseForBackend(layer: Linear): Linear | PackedLinear {
  return useWasmKernels() ? packLinear(layer) : layer;
}

export function disposePackedLinear(layer: PackedLinear): void {
  layer.panels.dispose();
  layer.bias?.dispose();
}

/** x [..., inDim] → [..., outDim]. */
export function packedLinear<T extends tf.Tensor>(x: T, layer: PackedLinear): T {
  const columns = x.shape[x.shape.length - 1];
  if (x.rank < 1 || columns !== layer.inDim) {
    throw new Error(`packedLinear: x has ${columns} columns, the layer takes ${layer.inDim}`);
  }
  const inputs: tf.NamedTensorMap = layer.bias
    ? { x, panels: layer.panels, bias: layer.bias }
    : { x, panels: layer.panels };
  return tf.engine().runKernel(PACKED_MATMUL, inputs, { outDim: layer.outDim }) as T;
}

/**
 * A dense layer whose weight is kept [out, in], one row per output (a tied
 * embedding used as the output head): multiplied by rows of dot products,
 * with no transposed or packed copy (for GPT-2's head that copy is 154 MB).
 * No bias. Not owned: disposing the layer is the weight owner's business.
 */
export interface TransposedLinear {
  readonly weightT: tf.Tensor2D;
}

export const TRANSPOSED_MATMUL = 'SpecstreamTransposedMatMul';

/** Whether transposedLinear runs for this input width on the current backend. */
export function transposedLinearSupported(inDim: number): boolean {
  return inDim % 4 === 0 && wasmKernels() !== undefined;
}

/** x [rows, in] · weightTᵀ → [rows, out]. */
export function transposedLinear(x: tf.Tensor2D, layer: TransposedLinear): tf.Tensor2D {
  if (x.shape[1] !== layer.weightT.shape[1]) {
    throw new Error(
      `transposedLinear: x has ${x.shape[1]} columns, the layer takes ${layer.weightT.shape[1]}`,
    );
  }
  return tf.engine().runKernel(TRANSPOSED_MATMUL, { x, weightT: layer.weightT }) as tf.Tensor2D;
}

tf.registerKernel({
  kernelName: PACK_PANELS,
  backendName: 'wasm',
  kernelFunc: ({ inputs, attrs }) => {
    const k = requireWasmKernels();
    const weight = inputs.weight as tf.TensorInfo;
    const transposed = attrs?.transposed === true;
    const [rows, cols] = weight.shape;
    const [inDim, outDim] = transposed ? [cols, rows] : [rows, cols];
    const out = k.backend.makeOutput([Math.ceil(outDim / 8), inDim, 8], 'float32');
    k.exports.packPanels(k.offset(weight), inDim, outDim, transposed ? 1 : 0, k.offset(out));
    return out;
  },
});

/**
 * Rows go in tiles of 4 (one remainder tile); columns in blocks of
 * COLUMN_BLOCK panels, each block's weights (8·K·COLUMN_BLOCK floats, 393 KB
 * at K = 768) staying in L2 while every row tile passes over it.
 */
const COLUMN_BLOCK = 16;
const TILE_ROWS = 4;

tf.registerKernel({
  kernelName: PACKED_MATMUL,
  backendName: 'wasm',
  kernelFunc: ({ inputs, attrs }) => {
    const k = requireWasmKernels();
    const { x, panels, bias } = inputs as Record<string, tf.TensorInfo>;
    const outDim = attrs!.outDim as number;
    // Any rank: leading dimensions are rows (the streaming encoder's [1, rows, in] needs no reshape).
    const inDim = x.shape[x.shape.length - 1];
    const rows = x.shape.slice(0, -1).reduce((a, b) => a * b, 1);
    const out = k.backend.makeOutput([...x.shape.slice(0, -1), outDim], 'float32');
    if (rows === 0 || outDim === 0) return out;
    const tiles: { at: number; row: number; rows: number }[] = [];
    // Interleaved left operand for every tile, then 8 columns per row for the last, partial panel.
    const interleavedBytes = 4 * rows * inDim;
    const scratch = k.scratch(interleavedBytes + 4 * 8 * TILE_ROWS);
    const xOffset = k.offset(x);
    for (let row = 0, at = scratch; row < rows; row += TILE_ROWS) {
      const n = Math.min(TILE_ROWS, rows - row);
      // One row interleaved is itself.
      if (n === 1) tiles.push({ at: xOffset + 4 * row * inDim, row, rows: n });
      else {
        k.exports.interleave(xOffset + 4 * row * inDim, inDim, n, at);
        tiles.push({ at, row, rows: n });
      }
      at += 4 * n * inDim;
    }
    const edge = scratch + interleavedBytes;
    const fullPanels = Math.floor(outDim / 8);
    const panelsOffset = k.offset(panels);
    const biasOffset = bias ? k.offset(bias) : 0;
    const outOffset = k.offset(out);
    const tile = [k.exports.tile1, k.exports.tile2, k.exports.tile3, k.exports.tile4];
    for (let p0 = 0; p0 < fullPanels; p0 += COLUMN_BLOCK) {
      const p1 = Math.min(fullPanels, p0 + COLUMN_BLOCK);
      for (const t of tiles) {
        tile[t.rows - 1](
          t.at,
          panelsOffset,
          biasOffset,
          outOffset + 4 * t.row * outDim,
          inDim,
          outDim,
          p0,
          p1,
        );
      }
    }
    const rest = outDim - 8 * fullPanels;
    if (rest > 0) {
      const panel = panelsOffset + 32 * inDim * fullPanels;
      const panelBias = bias ? biasOffset + 32 * fullPanels : 0;
      for (const t of tiles) {
        tile[t.rows - 1](t.at, panel, panelBias, edge, inDim, 8, 0, 1);
        const heap = k.heap();
        for (let r = 0; r < t.rows; r++) {
          const from = edge / 4 + 8 * r;
          heap.copyWithin((outOffset >> 2) + (t.row + r) * outDim + 8 * fullPanels, from, from + rest);
        }
      }
    }
    return out;
  },
});

/**
 * Output rows per block: 64 rows of a 768-wide weight (196 KB) stay in L2
 * while every tile of input rows passes over them. Up to 2 input rows read
 * each weight row as one stream (dots{n}seq: memory-bound, as fast as the
 * packed product: GPT-2's head 5.5 against 5.2 ms for one row); more rows
 * go 4 at a time against 2 weight rows (dots4x2: arithmetic-bound, 8 rows
 * 22 against 12 ms packed, where tfjs's transposed product took 195 ms).
 */
const ROW_BLOCK = 64;

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
    const e = k.exports as unknown as Record<string, (...args: number[]) => void>;
    const xAt = k.offset(x);
    const wAt = k.offset(weightT);
    const outAt = k.offset(out);
    for (let v0 = 0; v0 < outDim; v0 += ROW_BLOCK) {
      const v1 = Math.min(outDim, v0 + ROW_BLOCK);
      const tileRows = rows <= 2 ? 2 : TILE_ROWS;
      for (let row = 0; row < rows; row += tileRows) {
        const n = Math.min(tileRows, rows - row);
        const [xRow, cRow] = [xAt + 4 * row * inDim, outAt + 4 * row * outDim];
        if (rows <= 2) {
          e[`dots${n}seq`](xRow, wAt, cRow, inDim, outDim, v0, v1);
          continue;
        }
        const even = v1 - ((v1 - v0) % 2);
        if (even > v0) e[`dots${n}x2`](xRow, wAt, cRow, inDim, outDim, v0, even);
        if (even < v1) e[`dots${n}x1`](xRow, wAt, cRow, inDim, outDim, even, v1);
      }
    }
    return out;
  },
});
