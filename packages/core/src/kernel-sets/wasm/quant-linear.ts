import * as tf from '@tensorflow/tfjs-core';
import { runOnThreads, type ThreadFunction, threadRanges } from './kernel-threads.js';
import { isQuantMatrix, QUANT_BLOCK, type QuantMatrix } from './quant-matrix.js';
import { requireWasmKernels, wasmKernels } from './wasm-kernels.js';
import { copyRowsOut, requireArena, weightArena } from './weight-arena.js';

/**
 * y = x·W + b for a quantized W (quant-matrix.ts) on the wasm backend, in
 * core's quantized kernels (quantKernelsWat in scripts/wasm-kernels.ts).
 * The activations are quantized per block of 32 to int8 (d = amax/127, as
 * llama.cpp does for its Q8_0/Q4_0 products), each block's product summed
 * exactly in integers and scaled by both scales into an f32 total; the work
 * is split by column quads over the kernel threads. Against x·W in exact
 * arithmetic the error is at most Σ_b (dx_b/2)·Σ_{i∈b} |W_ij| (the
 * activations' rounding, dx_b the row's block scale) plus the f32 sum of
 * in/32 block terms.
 */

export const QUANT_MATMUL = 'SpecstreamQuantMatMul';

/** Whether quantLinear can run on the current backend. */
export function quantLinearSupported(): boolean {
  return wasmKernels() !== undefined && weightArena() !== undefined;
}

/** Whether the q4 product on relaxed SIMD's dot product is loaded (quant-kernels.ts decides). */
export function quantRelaxedAvailable(): boolean {
  return weightArena()?.quant.relaxed === true;
}

export interface QuantLinearOptions {
  /**
   * q4 only: use the relaxed-SIMD kernel (default: where loaded). Both give
   * the same results, bit for bit; this is for tests and benchmarks.
   */
  relaxed?: boolean;
}

/** x [..., inDim] → [..., outDim]. */
export function quantLinear<T extends tf.Tensor>(
  x: T,
  matrix: QuantMatrix,
  options: QuantLinearOptions = {},
): T {
  if (!isQuantMatrix(matrix)) throw new Error('quantLinear: the quantized matrix was disposed');
  const columns = x.shape[x.shape.length - 1];
  if (x.rank < 1 || columns !== matrix.inDim) {
    throw new Error(`quantLinear: x has ${columns} columns, the matrix takes ${matrix.inDim}`);
  }
  if (x.dtype !== 'float32') throw new Error(`quantLinear: x is ${x.dtype}, not float32`);
  const relaxed = options.relaxed ?? true;
  if (options.relaxed === true && !quantRelaxedAvailable()) {
    throw new Error('quantLinear: the relaxed-SIMD kernels are not loaded here');
  }
  const { at, bias, inDim, outDim, quads, format } = matrix;
  const kernel: ThreadFunction =
    format === 'q8' ? 'quantq8' : relaxed && quantRelaxedAvailable() ? 'quantq4r' : 'quantq4';
  return tf.engine().runKernel(QUANT_MATMUL, { x }, { at, bias, inDim, outDim, quads, kernel }) as T;
}

/** A thread's share is at least this many quads (one column block of the kernels). */
const MIN_QUADS_PER_THREAD = 16;

const align16 = (n: number) => Math.ceil(n / 16) * 16;

tf.registerKernel({
  kernelName: QUANT_MATMUL,
  backendName: 'wasm',
  kernelFunc: ({ inputs, attrs }) => {
    const k = requireWasmKernels();
    const arena = requireArena();
    const x = inputs.x as tf.TensorInfo;
    const { at, bias, inDim, outDim, quads } = attrs as Record<string, number>;
    const kernel = (attrs as Record<string, unknown>).kernel as ThreadFunction;
    const rows = x.shape.slice(0, -1).reduce((a, b) => a * b, 1);
    const out = k.backend.makeOutput([...x.shape.slice(0, -1), outDim], 'float32');
    if (rows === 0) return out;
    const padded = 4 * quads;
    const size = rows * inDim;
    // Arena scratch: x as given; its quantized blocks (scales, sums, i16, i8: quantizeRows); the product.
    const actBytes = align16((8 * size) / QUANT_BLOCK + 3 * size);
    const scratch = arena.scratch(4 * size + actBytes + 4 * rows * padded);
    const act = scratch + 4 * size;
    const product = act + actBytes;
    const xAt = k.offset(x) >> 2;
    arena.floats().set(k.heap().subarray(xAt, xAt + size), scratch >> 2);
    arena.quant.exports.quantizeRows(scratch, rows, inDim, act);
    const work = rows * inDim * outDim;
    const calls = threadRanges(quads, MIN_QUADS_PER_THREAD, work).map(([q0, q1]) => [
      act,
      rows,
      at,
      bias,
      product,
      inDim,
      padded,
      q0,
      q1,
    ]);
    runOnThreads(arena, kernel, calls);
    copyRowsOut(arena, product, padded, k.heap().subarray(k.offset(out) >> 2), rows, outDim);
    return out;
  },
});
