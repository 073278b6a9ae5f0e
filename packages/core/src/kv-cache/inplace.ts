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

  return {
    kind: 'inplace',
    capacity,
    write(layer, k, v, starts) {
      copySteps(keys[layer], k, starts);
      copySteps(values[layer], v, starts);
    },
    read(layer, length) {
      const size = Math.min(roundUp(length, READ_BUCKET), capacity);
      const begin = [0, 0, 0, 0];
      const extent = [batch, kvHeads, size, headDim];
      return { keys: tf.slice(keys[layer], begin, extent), values: tf.slice(values[layer], begin, extent) };
    },
    dispose() {
      for (const t of [...keys, ...values]) t.dispose();
    },
  };
}
