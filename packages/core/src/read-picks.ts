import type * as tf from '@tensorflow/tfjs-core';
import { greedyRows } from './kernel-sets/webgpu/greedy-rows.js';

/**
 * A pass's logits on the host, or, where greedy picks run on the device
 * (webgpu: `onDevice`), only each row's argmax: 4 bytes a row instead of a
 * vocabulary of floats. −1 marks a row greedyToken would refuse (NaN or
 * +Infinity, or nothing above −Infinity); the logits are then read too, so
 * the caller's sampler raises its own error. Disposes `logits`.
 */
export async function readPicks(
  logits: tf.Tensor,
  onDevice: boolean,
): Promise<{ values?: Float32Array; argmax?: Int32Array }> {
  try {
    if (!onDevice) return { values: (await logits.data()) as Float32Array };
    const ids = greedyRows(logits);
    const argmax = (await ids.data().finally(() => ids.dispose())) as Int32Array;
    return argmax.includes(-1) ? { argmax, values: (await logits.data()) as Float32Array } : { argmax };
  } finally {
    logits.dispose();
  }
}
