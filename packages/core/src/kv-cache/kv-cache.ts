import type * as tf from '@tensorflow/tfjs-core';

/**
 * Per-layer key/value storage. Slot index == position: row r's key for
 * position p lives in slot p, so a row's valid prefix is slots [0, length)
 * and attention masks by comparing slot and query position. Rollback is
 * therefore free (the state just lowers its lengths); stale slots past a
 * row's length are masked until they are overwritten.
 */
export interface KvCache {
  readonly kind: KvCacheKind;
  /** Slots the cache can hold per row. */
  readonly capacity: number;
  /**
   * Store one layer's new keys and values, [batch, kvHeads, steps, headDim],
   * at slots starts[r] .. starts[r]+steps-1 for each row r.
   */
  write(layer: number, keys: tf.Tensor4D, values: tf.Tensor4D, starts: ArrayLike<number>): void;
  /**
   * Keys and values of slots [0, L) for some L ≥ length (rounded up to the
   * strategy's granularity; block strategies may exceed capacity), [batch,
   * kvHeads, L, headDim]; slots past a row's length hold stale values to mask.
   * Call inside tf.tidy and do not dispose them yourself: some strategies
   * return tensors they still own. Valid until the next write.
   */
  read(layer: number, length: number): { keys: tf.Tensor4D; values: tf.Tensor4D };
  /**
   * The layer's own buffers, [batch, kvHeads, capacity, headDim], for kernels
   * that read only the slots they need in place (no copy of the prefix). Only
   * strategies that keep one position-major buffer have them. Never dispose
   * them; valid until the next write.
   */
  whole?(layer: number): { keys: tf.Tensor4D; values: tf.Tensor4D };
  /**
   * write() for keys and values still packed with other heads: heads
   * keys.head .. keys.head + kvHeads − 1 of keys.from [batch, steps, heads,
   * headDim] (a fused q|k|v projection, say), values likewise. Spares slicing
   * them out and transposing them. Only strategies whose backend can read the
   * packed layout in place have it (inplace on webgpu).
   */
  writeHeads?(
    layer: number,
    /** cosSin: rotate the keys by this [batch·steps, headDim] cos|sin table as they are written (rotate-half). */
    keys: { from: tf.Tensor4D; head: number; cosSin?: tf.Tensor2D },
    values: { from: tf.Tensor4D; head: number },
    /** Host values, or the same as an int32 tensor on the device (read there: see causalAttention's startsOnDevice). */
    starts: ArrayLike<number> | tf.TensorInfo,
  ): void;
  dispose(): void;
}

export interface KvCacheShape {
  batch: number;
  layers: number;
  kvHeads: number;
  headDim: number;
  /** Slots per row (the state's maxLength). */
  capacity: number;
}

/**
 * - inplace: one position-major buffer per layer allocated once; writes copy
 *   only the new steps straight into backend memory (cpu, wasm: host copies;
 *   webgpu: core's write program from the packed q|k|v product, or copy
 *   commands); reads copy the needed prefix (attention kernels read in place).
 *   Fastest where available.
 * - blocks: fixed-size block tensors; a write rebuilds only the blocks it
 *   touches, a read concatenates the needed prefix. Pure tfjs, any backend.
 * - concat: one tensor grown by concatenation; a write copies the whole
 *   current length. Pure tfjs, for comparison.
 * - static: a maxLength buffer rewritten and read whole each step: the
 *   classic trap, kept only as the benchmark's baseline.
 */
export type KvCacheKind = 'inplace' | 'blocks' | 'concat' | 'static';

export function roundUp(value: number, multiple: number): number {
  return Math.ceil(value / multiple) * multiple;
}
