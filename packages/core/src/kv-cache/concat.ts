import * as tf from '@tensorflow/tfjs-core';
import type { KvCache, KvCacheShape } from './kv-cache.js';
import { scatterSteps } from './scatter.js';

/**
 * One tensor per layer, grown to the longest row by concatenation. Writes
 * copy the whole current length (tensors are immutable), reads are free.
 * Kept for the benchmark's comparison with the other strategies.
 */
export function createConcatCache(shape: KvCacheShape): KvCache {
  const { batch, kvHeads, headDim, capacity } = shape;
  const keys: (tf.Tensor4D | undefined)[] = new Array(shape.layers).fill(undefined);
  const values: (tf.Tensor4D | undefined)[] = new Array(shape.layers).fill(undefined);

  function append(
    current: tf.Tensor4D | undefined,
    update: tf.Tensor4D,
    starts: ArrayLike<number>,
  ): tf.Tensor4D {
    const steps = update.shape[2];
    const length = current?.shape[2] ?? 0;
    let end = 0;
    let aligned = true;
    for (let r = 0; r < batch; r++) {
      end = Math.max(end, starts[r] + steps);
      aligned &&= starts[r] === length;
    }
    // Common case: every row continues at the end, a plain concatenation.
    if (aligned) return tf.keep(current === undefined ? update.clone() : tf.concat([current, update], 2));
    const grown =
      current === undefined
        ? tf.zeros([batch, kvHeads, end, headDim])
        : end > length
          ? tf.concat([current, tf.zeros([batch, kvHeads, end - length, headDim])], 2)
          : current;
    return tf.keep(scatterSteps(grown as tf.Tensor4D, update, starts, 0));
  }

  function store(
    list: (tf.Tensor4D | undefined)[],
    layer: number,
    update: tf.Tensor4D,
    starts: ArrayLike<number>,
  ) {
    const next = append(list[layer], update, starts);
    list[layer]?.dispose();
    list[layer] = next;
  }

  return {
    kind: 'concat',
    capacity,
    write(layer, k, v, starts) {
      store(keys, layer, k, starts);
      store(values, layer, v, starts);
    },
    read(layer) {
      return { keys: keys[layer]!, values: values[layer]! };
    },
    dispose() {
      for (const t of [...keys, ...values]) t?.dispose();
      keys.fill(undefined);
      values.fill(undefined);
    },
  };
}
