import * as tf from '@tensorflow/tfjs-core';

/** Added to masked scores: large enough that exp underflows to exactly 0, finite so no NaN appears. */
const MASKED = -1e9;

/**
 * Additive mask [batch, 1, 1, steps, length]: the query of row r at window
 * step s (position starts[r]+s) sees slots 0..starts[r]+s. Slot == position,
 * so this one comparison also hides stale slots past a row's length.
 */
export function causalMask(starts: ArrayLike<number>, steps: number, length: number): tf.Tensor {
  const batch = starts.length;
  const mask = new Float32Array(batch * steps * length);
  for (let r = 0; r < batch; r++) {
    for (let s = 0; s < steps; s++) {
      const row = (r * steps + s) * length;
      mask.fill(MASKED, row + starts[r] + s + 1, row + length);
    }
  }
  return tf.tensor(mask, [batch, 1, 1, steps, length]);
}

/**
 * Attention of new steps over cached keys/values, with grouped KV heads.
 * q: [batch, steps, heads, headDim], already scaled and position-encoded.
 * keys/values: [batch, kvHeads, length, headDim]. mask: from causalMask.
 * Returns [batch·steps, heads·headDim].
 *
 * Query heads that share a KV head (h = kv·group + j, as in transformers'
 * repeat_kv) are stacked into one matrix per KV head, so GQA/MQA need no
 * copy of the keys.
 */
export function cachedAttention(
  q: tf.Tensor4D,
  keys: tf.Tensor4D,
  values: tf.Tensor4D,
  mask: tf.Tensor,
): tf.Tensor2D {
  const [batch, steps, heads, headDim] = q.shape;
  const [, kvHeads, length] = keys.shape;
  const group = heads / kvHeads;
  // [batch, kvHeads, group·steps, headDim]; for one step no transpose is needed.
  const grouped =
    steps === 1
      ? tf.reshape(q, [batch, kvHeads, group, headDim])
      : tf.reshape(tf.transpose(tf.reshape(q, [batch, steps, kvHeads, group, headDim]), [0, 2, 3, 1, 4]), [
          batch,
          kvHeads,
          group * steps,
          headDim,
        ]);
  const scores = tf.reshape(tf.matMul(grouped, keys, false, true), [batch, kvHeads, group, steps, length]);
  const probs = tf.reshape(tf.softmax(tf.add(scores, mask)), [batch, kvHeads, group * steps, length]);
  const out = tf.matMul(probs, values);
  if (steps === 1) return tf.reshape(out, [batch, heads * headDim]);
  return tf.reshape(tf.transpose(tf.reshape(out, [batch, kvHeads, group, steps, headDim]), [0, 3, 1, 2, 4]), [
    batch * steps,
    heads * headDim,
  ]);
}
