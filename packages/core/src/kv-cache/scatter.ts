import * as tf from '@tensorflow/tfjs-core';

/**
 * Rewrites slots [from, from+size) of a [batch, heads, size, dim] window so
 * that row r's new steps (of `update`, [batch, heads, steps, dim]) land at
 * slots starts[r]..starts[r]+steps-1; slots outside the update keep `old`.
 * Pure tfjs: a batched gather moves the new steps into place and a mask
 * picks old or new per slot.
 * Cost is O(size) per call, so callers keep the window small.
 */
export function scatterSteps(
  old: tf.Tensor4D,
  update: tf.Tensor4D,
  starts: ArrayLike<number>,
  from: number,
): tf.Tensor4D {
  const [batch, heads, size, dim] = old.shape;
  const steps = update.shape[2];
  // For each slot of the window, which new step lands there; `steps` points at an appended zero row.
  const source = new Int32Array(batch * size).fill(steps);
  const written = new Uint8Array(batch * size);
  for (let r = 0; r < batch; r++) {
    for (let s = 0; s < steps; s++) {
      const slot = starts[r] + s - from;
      if (slot < 0 || slot >= size) continue;
      source[r * size + slot] = s;
      written[r * size + slot] = 1;
    }
  }
  // Flat row index into the padded update viewed as [batch·heads·(steps+1), dim].
  const rows = new Int32Array(batch * heads * size);
  for (let r = 0; r < batch; r++) {
    for (let h = 0; h < heads; h++) {
      const base = (r * heads + h) * (steps + 1);
      for (let slot = 0; slot < size; slot++)
        rows[(r * heads + h) * size + slot] = base + source[r * size + slot];
    }
  }
  return tf.tidy(() => {
    const padded = tf.reshape(tf.concat([update, tf.zeros([batch, heads, 1, dim])], 2), [-1, dim]);
    const moved = tf.reshape(tf.gather(padded, rows), [batch, heads, size, dim]);
    // where, not a blend by multiplication: 0·NaN in a stale slot would leak.
    const mask = tf.tensor4d(written, [batch, 1, size, 1], 'bool');
    return tf.where(mask, moved, old) as tf.Tensor4D;
  });
}
