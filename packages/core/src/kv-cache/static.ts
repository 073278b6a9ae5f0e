import * as tf from '@tensorflow/tfjs-core';
import type { KvCache, KvCacheShape } from './kv-cache.js';
import { scatterSteps } from './scatter.js';

/**
 * A maxLength buffer per layer, rewritten whole on every write and read whole
 * by attention: each step costs O(maxLength) whatever the actual length. This
 * is the trap the other strategies avoid; it exists as the benchmark baseline.
 */
export function createStaticCache(shape: KvCacheShape): KvCache {
  const { batch, kvHeads, headDim, capacity } = shape;
  const dims: [number, number, number, number] = [batch, kvHeads, capacity, headDim];
  const keys = Array.from({ length: shape.layers }, () => tf.zeros(dims) as tf.Tensor4D);
  const values = Array.from({ length: shape.layers }, () => tf.zeros(dims) as tf.Tensor4D);

  function store(list: tf.Tensor4D[], layer: number, update: tf.Tensor4D, starts: ArrayLike<number>) {
    const next = tf.keep(scatterSteps(list[layer], update, starts, 0));
    list[layer].dispose();
    list[layer] = next;
  }

  return {
    kind: 'static',
    capacity,
    write(layer, k, v, starts) {
      store(keys, layer, k, starts);
      store(values, layer, v, starts);
    },
    read(layer) {
      return { keys: keys[layer], values: values[layer] };
    },
    dispose() {
      for (const t of [...keys, ...values]) t.dispose();
    },
  };
}
