import * as tf from '@tensorflow/tfjs-core';

/**
 * Rewrites slots [from, from+size) of a [batch, heads, size, dim] window so
 * that row r's new steps (of `update`, [batch, heads, steps, dim]) land at
 * slots starts[r]..starts[r]+steps-1; slots outside the update keep `old`.
 * Pure tfjs: a one-hot [size, steps] placement matrix per row moves the new
 * steps (a small batched matmul) and a mask picks old or new per slot.
 * Cost is O(size) per call, so callers keep the window small.
 */
export function scatterSteps(
  old: tf.Tensor4D,
  update: tf.Tensor4D,
  starts: ArrayLike<number>,
  from: number,
): tf.Tensor4D {
  const [batch, , size] = old.shape;
  const steps = update.shape[2];
  const placement = new Float32Array(batch * size * steps);
  const written = new Float32Array(batch * size);
  for (let r = 0; r < batch; r++) {
    for (let s = 0; s < steps; s++) {
      const slot = starts[r] + s - from;
      if (slot < 0 || slot >= size) continue;
      placement[(r * size + slot) * steps + s] = 1;
      written[r * size + slot] = 1;
    }
  }
  return tf.tidy(() => {
    const place = tf.tensor4d(placement, [batch, 1, size, steps]);
    // Explicit broadcast over heads: tfjs matMul does not broadcast inner batch dims correctly.
    const moved = tf.matMul(tf.broadcastTo(place, [batch, update.shape[1], size, steps]), update);
    // where, not a blend by multiplication: 0·NaN in a stale slot would leak.
    const mask = tf.tensor4d(Uint8Array.from(written), [batch, 1, size, 1], 'bool');
    return tf.where(mask, moved, old) as tf.Tensor4D;
  });
}
