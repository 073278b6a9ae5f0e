import * as tf from '@tensorflow/tfjs-core';
import type { Linear } from '../transformer/linear.js';
import { type WasmKernels, wasmKernels } from './wasm-kernels.js';

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
 * Packs a layer's weight (and pads its bias) for the wasm product. The
 * layer's tensors are left to the caller. `transposed`: `weight` is
 * [out, in], as a tied embedding is when used as the output head.
 */
export function packLinear(layer: Linear, options: { transposed?: boolean } = {}): PackedLinear {
  const transposed = options.transposed === true;
  const [rows, cols] = layer.weight.shape;
  const [inDim, outDim] = transposed ? [cols, rows] : [rows, cols];
  const padded = 8 * Math.ceil(outDim / 8);
  const panels = tf.engine().runKernel(PACK_PANELS, { weight: layer.weight }, { transposed }) as tf.Tensor3D;
  const bias = layer.bias && tf.tidy(() => tf.pad(layer.bias!, [[0, padded - outDim]]) as tf.Tensor1D);
  return bias ? { panels, bias, inDim, outDim } : { panels, inDim, outDim };
}

export function disposePackedLinear(layer: PackedLinear): void {
  layer.panels.dispose();
  layer.bias?.dispose();
}

/** x [rows, inDim] → [rows, outDim]. */
export function packedLinear(x: tf.Tensor2D, layer: PackedLinear): tf.Tensor2D {
  if (x.shape[1] !== layer.inDim) {
    throw new Error(`packedLinear: x has ${x.shape[1]} columns, the layer takes ${layer.inDim}`);
  }
  const inputs: tf.NamedTensorMap = layer.bias
    ? { x, panels: layer.panels, bias: layer.bias }
    : { x, panels: layer.panels };
  return tf.engine().runKernel(PACKED_MATMUL, inputs, { outDim: layer.outDim }) as tf.Tensor2D;
}

function kernelsOrThrow(): WasmKernels {
  const kernels = wasmKernels();
  if (kernels === undefined) throw new Error('core wasm kernels are unavailable on this backend');
  return kernels;
}

tf.registerKernel({
  kernelName: PACK_PANELS,
  backendName: 'wasm',
  kernelFunc: ({ inputs, attrs }) => {
    const k = kernelsOrThrow();
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
    const k = kernelsOrThrow();
    const { x, panels, bias } = inputs as Record<string, tf.TensorInfo>;
    const outDim = attrs!.outDim as number;
    const [rows, inDim] = x.shape;
    const out = k.backend.makeOutput([rows, outDim], 'float32');
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
