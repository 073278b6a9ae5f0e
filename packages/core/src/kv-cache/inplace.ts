import * as tf from '@tensorflow/tfjs-core';
import { type KvCache, type KvCacheShape, roundUp } from './kv-cache.js';

/**
 * Direct access to a tensor's float32 storage on backends that keep it in
 * host memory. tfjs tensors are immutable by contract; the cache breaks that
 * only for buffers it allocated itself and never hands out, which is what
 * makes a write cost O(new steps) instead of O(capacity).
 */
type HostMemory = (t: tf.Tensor) => Float32Array;

function hostMemory(): HostMemory | undefined {
  const backend = tf.backend() as unknown as Record<string, any>;
  const name = tf.getBackend();
  if (name === 'cpu') return (t) => backend.data.get(t.dataId).values as Float32Array;
  if (name === 'wasm') {
    return (t) => {
      const { memoryOffset } = backend.dataIdMap.get(t.dataId);
      // HEAPF32 is re-read each time: the wasm heap may have grown and been replaced.
      const heap = backend.wasm.HEAPF32 as Float32Array;
      return heap.subarray(memoryOffset / 4, memoryOffset / 4 + t.size);
    };
  }
  return undefined;
}

export function inplaceSupported(): boolean {
  return hostMemory() !== undefined;
}

/** Granularity of read lengths: bounds the number of distinct attention shapes. */
const READ_BUCKET = 64;

export function createInplaceCache(shape: KvCacheShape): KvCache {
  const memory = hostMemory();
  if (memory === undefined)
    throw new Error(`inplace KV cache is not available on backend '${tf.getBackend()}'`);
  const { batch, kvHeads, headDim, capacity } = shape;
  const dims: [number, number, number, number] = [batch, kvHeads, capacity, headDim];
  const keys = Array.from({ length: shape.layers }, () => tf.zeros(dims) as tf.Tensor4D);
  const values = Array.from({ length: shape.layers }, () => tf.zeros(dims) as tf.Tensor4D);

  function copySteps(target: tf.Tensor4D, source: tf.Tensor4D, starts: ArrayLike<number>): void {
    const steps = source.shape[2];
    const chunk = steps * headDim;
    // Read the source first: on wasm, reading target memory after may see a grown heap.
    const src = memory!(source);
    const dst = memory!(target);
    for (let r = 0; r < batch; r++) {
      for (let h = 0; h < kvHeads; h++) {
        const from = (r * kvHeads + h) * chunk;
        dst.set(src.subarray(from, from + chunk), ((r * kvHeads + h) * capacity + starts[r]) * headDim);
      }
    }
  }

  // tf.slice of a prefix along the slot axis costs O(capacity) on cpu and wasm
  // (measured: 11 ms at capacity 4096 vs 0.02 ms at 256 on cpu), so the read
  // copies the needed rows itself: O(size) whatever the capacity.
  function readPrefix(source: tf.Tensor4D, size: number): tf.Tensor4D {
    const src = memory!(source);
    const out = new Float32Array(batch * kvHeads * size * headDim);
    const chunk = size * headDim;
    for (let i = 0; i < batch * kvHeads; i++) {
      const from = i * capacity * headDim;
      out.set(src.subarray(from, from + chunk), i * chunk);
    }
    return tf.tensor4d(out, [batch, kvHeads, size, headDim]);
  }

  return {
    kind: 'inplace',
    capacity,
    write(layer, k, v, starts) {
      copySteps(keys[layer], k, starts);
      copySteps(values[layer], v, starts);
    },
    read(layer, length) {
      const size = Math.min(roundUp(length, READ_BUCKET), capacity);
      return { keys: readPrefix(keys[layer], size), values: readPrefix(values[layer], size) };
    },
    dispose() {
      for (const t of [...keys, ...values]) t.dispose();
    },
  };
}
