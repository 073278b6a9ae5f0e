import type * as tf from '@tensorflow/tfjs-core';
import { greedyRows } from './kernel-sets/webgpu/greedy-rows.js';
import { candidateLogits, topKRows } from './kernel-sets/webgpu/top-k-rows.js';

/** What a pass's logits are read back as: all of them, each row's argmax, or its top-k candidates. */
export type PickRead = { kind: 'logits' } | { kind: 'argmax' } | { kind: 'top-k'; k: number };

/**
 * A pass's logits on the host, or, where the picks run on the device
 * (webgpu), less: each row's argmax when greedy (4 bytes a row instead of a
 * vocabulary of floats), or its top-k candidates when sampling with top-k
 * (8 bytes a candidate). −1 in argmax marks a row greedyToken would refuse
 * (NaN or +Infinity, or nothing above −Infinity); for top-k, `rowLogits`
 * gives each row as the sampler reads it (−Infinity but the candidates).
 * Where a row cannot be given that way the logits are read too, so the
 * caller's sampler raises its own error. Disposes `logits`.
 */
export async function readPicks(
  logits: tf.Tensor,
  read: PickRead | boolean,
): Promise<{ values?: Float32Array; argmax?: Int32Array; rowLogits?: (row: number) => Float32Array }> {
  const how: PickRead = typeof read === 'boolean' ? { kind: read ? 'argmax' : 'logits' } : read;
  try {
    if (how.kind === 'logits') return { values: (await logits.data()) as Float32Array };
    if (how.kind === 'argmax') {
      const ids = greedyRows(logits);
      const argmax = (await ids.data().finally(() => ids.dispose())) as Int32Array;
      return argmax.includes(-1) ? { argmax, values: (await logits.data()) as Float32Array } : { argmax };
    }
    const vocab = logits.shape[logits.shape.length - 1];
    // A k of the whole vocabulary limits nothing: the sampler reads every logit.
    if (how.k >= vocab) return { values: (await logits.data()) as Float32Array };
    const picked = topKRows(logits, how.k);
    const output = (await picked.data().finally(() => picked.dispose())) as Int32Array;
    const rows = output.length / picked.shape[1];
    const given = Array.from({ length: rows }, (_, r) => candidateLogits(output, r, how.k, vocab));
    const values = given.includes(undefined) ? ((await logits.data()) as Float32Array) : undefined;
    return {
      values,
      rowLogits: (r) => given[r] ?? values!.subarray(r * vocab, (r + 1) * vocab),
    };
  } finally {
    logits.dispose();
  }
}
