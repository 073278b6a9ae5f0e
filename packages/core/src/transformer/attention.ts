import * as tf from '@tensorflow/tfjs-core';

/** Added to masked scores: large enough that exp underflows to exactly 0, finite so no NaN appears. */
const MASKED = -1e9;

/**
 * Additive mask [batch, 1, 1, steps, length]: the query of row r at window
 * step s (position starts[r]+s) sees slots 0..starts[r]+s, or only the last
 * `window` of them. Slot == position, so this one comparison also hides
 * stale slots past a row's length.
 */
export function causalMask(
  starts: ArrayLike<number>,
  steps: number,
  length: number,
  window = Number.POSITIVE_INFINITY,
): tf.Tensor {
  const batch = starts.length;
  const mask = new Float32Array(batch * steps * length);
  for (let r = 0; r < batch; r++) {
    for (let s = 0; s < steps; s++) {
      const row = (r * steps + s) * length;
      const seen = starts[r] + s + 1;
      if (seen > window) mask.fill(MASKED, row, row + seen - window);
      mask.fill(MASKED, row + seen, row + length);
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
  if (q.shape[1] >= PER_HEAD_MIN_STEPS && tf.getBackend() === 'wasm')
    return perHeadAttention(q, keys, values, mask);
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

/**
 * From this many new steps on, wasm computes attention head by head. Its
 * BatchMatMul runs products with batch dimensions or a transposed operand in
 * a scalar loop, while a plain 2-D product goes to XNNPACK: measured on a
 * GPT-2-small 512-token chunk at context 1024, attention took 9.4 s of 13.3 s
 * the batched way; per head, a 512-token chunk at context 512 took 5.5 s
 * instead of 10.0 s, 64 steps 692 instead of 926 ms. The per-head path
 * dispatches ~6 more kernels per head, which loses below ~32 steps (8 steps:
 * 167 against 135 ms), so short windows keep the batched form.
 */
export const PER_HEAD_MIN_STEPS = 32;

/** cachedAttention with only plain 2-D matmuls, the cache as left operand. */
function perHeadAttention(
  q: tf.Tensor4D,
  keys: tf.Tensor4D,
  values: tf.Tensor4D,
  mask: tf.Tensor,
): tf.Tensor2D {
  const [batch, steps, heads, headDim] = q.shape;
  const [, kvHeads, length] = keys.shape;
  const group = heads / kvHeads;
  // [batch·heads] of [headDim, steps]: one transpose for all heads.
  const queriesT = tf.unstack(tf.reshape(tf.transpose(q, [0, 2, 3, 1]), [batch * heads, headDim, steps]));
  const keyRows = tf.unstack(tf.reshape(keys, [batch * kvHeads, length, headDim]));
  const valueRows = tf.unstack(tf.reshape(values, [batch * kvHeads, length, headDim]));
  // The mask broadcasts as in the batched path: one value (no masking), or anything that
  // broadcasts to [batch, 1, 1, steps, length].
  const broadcast = () =>
    mask.size === batch * steps * length ? mask : tf.broadcastTo(mask, [batch, 1, 1, steps, length]);
  const masks =
    mask.size === 1
      ? new Array<tf.Tensor>(batch).fill(tf.reshape(mask, []))
      : tf.unstack(tf.reshape(broadcast(), [batch, steps, length]));
  const outs: tf.Tensor[] = [];
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const kv = b * kvHeads + Math.floor(h / group);
      // scoresᵀ = K·qᵀ: the small operand on the right, as XNNPACK prefers.
      const scores = tf.add(tf.transpose(tf.matMul(keyRows[kv], queriesT[b * heads + h])), masks[b]);
      outs.push(tf.matMul(tf.softmax(scores), valueRows[kv]));
    }
  }
  // [batch, heads, steps, headDim] → [batch·steps, heads·headDim]
  const stacked = tf.reshape(tf.stack(outs), [batch, heads, steps, headDim]);
  return tf.reshape(tf.transpose(stacked, [0, 2, 1, 3]), [batch * steps, heads * headDim]) as tf.Tensor2D;
}
