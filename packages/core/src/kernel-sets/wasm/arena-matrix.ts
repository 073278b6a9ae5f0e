import * as tf from '@tensorflow/tfjs-core';
import { runOnThreads, threadRanges } from './kernel-threads.js';
import { prefetchChoice } from './prefetch-choice.js';
import { requireWasmKernels } from './wasm-kernels.js';
import { requireArena } from './weight-arena.js';

/**
 * A float matrix [rows, cols] kept row by row in the weight arena: a token
 * embedding that is also the tied output head. Rows are gathered out of it
 * (embedding lookup) and it multiplies as [out, in] (arenaTransposedLinear)
 * with the work split over the kernel threads: GPT-2's head is a third of
 * its weights, read once per decode step.
 */
export interface ArenaMatrix {
  /** Byte offset in the arena. */
  readonly at: number;
  readonly rows: number;
  readonly cols: number;
}

const live = new WeakSet<ArenaMatrix>();

export function isArenaMatrix(value: unknown): value is ArenaMatrix {
  return typeof value === 'object' && value !== null && live.has(value as ArenaMatrix);
}

/**
 * Copies a matrix into the arena: from host floats, or from a tensor, which
 * is then disposed (ownership passes).
 */
export function arenaMatrix(
  source: tf.Tensor2D | { values: Float32Array; shape: readonly [number, number] },
): ArenaMatrix {
  const arena = requireArena();
  const [rows, cols] = source.shape;
  let values: Float32Array;
  if (source instanceof tf.Tensor) {
    const k = requireWasmKernels();
    const from = k.offset(source) >> 2;
    values = k.heap().subarray(from, from + rows * cols);
  } else values = source.values;
  if (values.length !== rows * cols)
    throw new Error(`arenaMatrix: ${values.length} values for [${rows}, ${cols}]`);
  try {
    const at = arena.alloc(4 * rows * cols);
    arena.floats().set(values, at >> 2);
    const matrix = { at, rows, cols };
    live.add(matrix);
    return matrix;
  } finally {
    if (source instanceof tf.Tensor) source.dispose();
  }
}

/**
 * A matrix filled from consecutive chunks of its values (row-major), e.g.
 * read from a checkpoint piece by piece, so no whole host copy exists. On
 * a failed read or a wrong count the matrix is freed and the error thrown.
 */
export async function arenaMatrixFromChunks(
  shape: readonly [number, number],
  chunks: AsyncIterable<Float32Array>,
): Promise<ArenaMatrix> {
  const arena = requireArena();
  const [rows, cols] = shape;
  const at = arena.alloc(4 * rows * cols);
  let filled = 0;
  try {
    for await (const chunk of chunks) {
      if (filled + chunk.length > rows * cols) {
        filled = -1; // more values than the shape holds
        break;
      }
      // Re-read the view per chunk: the arena may have grown while the read was pending.
      arena.floats().set(chunk, (at >> 2) + filled);
      filled += chunk.length;
    }
    if (filled !== rows * cols) throw new Error(`arenaMatrix: chunks do not hold [${rows}, ${cols}] values`);
  } catch (error) {
    arena.free(at);
    throw error;
  }
  const matrix = { at, rows, cols };
  live.add(matrix);
  return matrix;
}

export function disposeArenaMatrix(matrix: ArenaMatrix): void {
  if (live.delete(matrix)) requireArena().free(matrix.at);
}

export const ARENA_GATHER = 'SpecstreamArenaGather';
export const ARENA_TRANSPOSED_MATMUL = 'SpecstreamArenaTransposedMatMul';

/** Rows `ids` of the matrix → [ids.length, cols]. */
export function arenaGather(matrix: ArenaMatrix, ids: Int32Array | tf.Tensor): tf.Tensor2D {
  if (!live.has(matrix)) throw new Error('arenaGather: the matrix was disposed');
  return tf.tidy(() => {
    const flat = ids instanceof tf.Tensor ? tf.reshape(ids, [-1]) : tf.tensor1d(ids, 'int32');
    const { at, rows, cols } = matrix;
    return tf.engine().runKernel(ARENA_GATHER, { ids: flat }, { at, rows, cols }) as tf.Tensor2D;
  });
}

/** x [n, cols] · matrixᵀ → [n, rows]. */
export function arenaTransposedLinear(x: tf.Tensor2D, matrix: ArenaMatrix): tf.Tensor2D {
  if (!live.has(matrix)) throw new Error('transposedLinear: the weight was disposed');
  if (x.shape[1] !== matrix.cols) {
    throw new Error(`transposedLinear: x has ${x.shape[1]} columns, the layer takes ${matrix.cols}`);
  }
  const { at, rows } = matrix;
  return tf.engine().runKernel(ARENA_TRANSPOSED_MATMUL, { x }, { at, rows }) as tf.Tensor2D;
}

tf.registerKernel({
  kernelName: ARENA_GATHER,
  backendName: 'wasm',
  kernelFunc: ({ inputs, attrs }) => {
    const k = requireWasmKernels();
    const arena = requireArena();
    const ids = inputs.ids as tf.TensorInfo;
    const { at, rows, cols } = attrs as Record<string, number>;
    const n = ids.shape[0];
    const out = k.backend.makeOutput([n, cols], 'float32');
    const idsAt = k.offset(ids) >> 2;
    const outAt = k.offset(out) >> 2;
    const floats = arena.floats();
    const heap = k.heap();
    const idHeap = k.heap32();
    for (let i = 0; i < n; i++) {
      const id = idHeap[idsAt + i];
      if (!(id >= 0 && id < rows)) {
        k.backend.disposeData(out.dataId);
        throw new Error(`arenaGather: id ${id} is outside [0, ${rows})`);
      }
      const from = (at >> 2) + id * cols;
      heap.set(floats.subarray(from, from + cols), outAt + i * cols);
    }
    return out;
  },
});

/** A thread's share of output rows is at least this many (GPT-2's head: 50257 rows, 768 wide). */
const MIN_ROWS_PER_THREAD = 256;
/** Whether multi-row head products load weight rows into the cache first: decided by timing both. */
const dotsPrefetch = prefetchChoice();

tf.registerKernel({
  kernelName: ARENA_TRANSPOSED_MATMUL,
  backendName: 'wasm',
  kernelFunc: ({ inputs, attrs }) => {
    const k = requireWasmKernels();
    const arena = requireArena();
    const x = inputs.x as tf.TensorInfo;
    const { at, rows: outDim } = attrs as Record<string, number>;
    const [rows, inDim] = x.shape;
    if (inDim % 4 !== 0) throw new Error(`transposedLinear: input width ${inDim} is not a multiple of 4`);
    const out = k.backend.makeOutput([rows, outDim], 'float32');
    if (rows === 0 || outDim === 0) return out;
    const scratch = arena.scratch(4 * rows * (inDim + outDim));
    const product = scratch + 4 * rows * inDim;
    const xAt = k.offset(x) >> 2;
    arena.floats().set(k.heap().subarray(xAt, xAt + rows * inDim), scratch >> 2);
    const work = rows * inDim * outDim;
    const shape = `${inDim}x${outDim}`;
    const prefetch = dotsPrefetch.flag(rows, work, shape);
    const calls = threadRanges(outDim, MIN_ROWS_PER_THREAD, work).map(([v0, v1]) => [
      scratch,
      at,
      product,
      inDim,
      rows,
      outDim,
      v0,
      v1,
      prefetch,
    ]);
    const t0 = performance.now();
    runOnThreads(arena, 'dotsProduct', calls);
    dotsPrefetch.record(prefetch, rows, work, performance.now() - t0, shape);
    const outAt = k.offset(out) >> 2;
    k.heap().set(arena.floats().subarray(product >> 2, (product >> 2) + rows * outDim), outAt);
    return out;
  },
});
