import * as tf from '@tensorflow/tfjs-core';
import type { KvCache, KvCacheShape } from './kv-cache.js';
import { scatterSteps } from './scatter.js';

/**
 * Fixed-size blocks of slots, allocated as rows reach them. A write rebuilds
 * only the blocks its new steps land in (O(block) each); a read concatenates
 * the blocks covering the requested prefix (O(length)). Works on any backend.
 */
export function createBlockCache(shape: KvCacheShape, blockSize = 64): KvCache {
  const { batch, kvHeads, headDim, capacity } = shape;
  const keys: tf.Tensor4D[][] = Array.from({ length: shape.layers }, () => []);
  const values: tf.Tensor4D[][] = Array.from({ length: shape.layers }, () => []);

  function writeInto(blocks: tf.Tensor4D[], update: tf.Tensor4D, starts: ArrayLike<number>): void {
    const steps = update.shape[2];
    const touched = new Set<number>();
    for (let r = 0; r < batch; r++) {
      for (let b = Math.floor(starts[r] / blockSize); b * blockSize < starts[r] + steps; b++) touched.add(b);
    }
    for (const b of touched) {
      while (blocks.length <= b) blocks.push(tf.keep(tf.zeros([batch, kvHeads, blockSize, headDim])));
      const rebuilt = tf.keep(scatterSteps(blocks[b], update, starts, b * blockSize));
      blocks[b].dispose();
      blocks[b] = rebuilt;
    }
  }

  function readPrefix(blocks: tf.Tensor4D[], length: number): tf.Tensor4D {
    const count = Math.ceil(length / blockSize);
    // A single block is returned as is: owned by the cache, the caller must not dispose it.
    return count === 1 ? blocks[0] : tf.concat(blocks.slice(0, count), 2);
  }

  return {
    kind: 'blocks',
    capacity,
    write(layer, k, v, starts) {
      writeInto(keys[layer], k, starts);
      writeInto(values[layer], v, starts);
    },
    read(layer, length) {
      return { keys: readPrefix(keys[layer], length), values: readPrefix(values[layer], length) };
    },
    dispose() {
      for (const t of [...keys.flat(), ...values.flat()]) t.dispose();
      for (const list of [...keys, ...values]) list.length = 0;
    },
  };
}
