import * as tf from '@tensorflow/tfjs-core';
import type { Decoder, DecoderState, PrefillBuckets } from './decoder.js';
import { CacheOverflowError, InvalidArgumentError } from './errors.js';

/** Chunk sizes for prompts: few distinct shapes, so GPU backends compile few shaders. */
export const DEFAULT_PREFILL_BUCKETS: readonly number[] = [512, 64, 8, 1];

/** The longest chunk a prompt is fed in: bounds a pass's attention scores ([chunk, context] per head). */
export const MAX_PREFILL_CHUNK = 512;

export function checkBuckets(buckets: readonly number[]): number[] {
  if (buckets.length === 0 || buckets.some((b) => !Number.isInteger(b) || b < 1)) {
    throw new InvalidArgumentError(`prefill buckets must be positive integers, got [${buckets.join(', ')}]`);
  }
  return [...new Set(buckets)].sort((a, b) => b - a);
}

/**
 * Splits a prompt of `length` tokens into chunk sizes from `buckets`, largest
 * first (1501 with {512, 64, 8, 1}: 2×512, 7×64, 3×8, 5×1). Without a bucket
 * of 1 the last chunk is the smallest bucket, padded; prefill rolls the
 * padding back.
 */
export function planPrefillChunks(
  length: number,
  buckets: PrefillBuckets = DEFAULT_PREFILL_BUCKETS,
): number[] {
  if (buckets === 'any') {
    // Kernels that take any row count: full chunks, then the rest as it is (no padding).
    const plan = new Array<number>(Math.floor(length / MAX_PREFILL_CHUNK)).fill(MAX_PREFILL_CHUNK);
    if (length % MAX_PREFILL_CHUNK > 0) plan.push(length % MAX_PREFILL_CHUNK);
    return plan;
  }
  const sizes = checkBuckets(buckets);
  const plan: number[] = [];
  let left = length;
  for (const size of sizes) {
    while (left >= size) {
      plan.push(size);
      left -= size;
    }
  }
  if (left > 0) plan.push(sizes[sizes.length - 1]);
  return plan;
}

export interface PrefillOptions {
  /** Default: the model's prefillBuckets, else DEFAULT_PREFILL_BUCKETS. */
  buckets?: PrefillBuckets;
  /** Fills rows shorter than the longest prompt (and a padded last chunk); rolled back afterwards. */
  padToken?: number;
}

/**
 * Feeds each row's prompt into the state in bucketed chunks and returns the
 * logits of each row's last prompt token, [batch, 1, vocab]. Prompts may
 * differ in length: shorter rows are padded at the end, which causal
 * attention keeps from influencing the real tokens, and then rolled back.
 */
export function prefill<S extends DecoderState>(
  model: Decoder<S>,
  state: S,
  prompts: ReadonlyArray<ArrayLike<number>>,
  options: PrefillOptions = {},
): tf.Tensor3D {
  if (prompts.length !== state.batch) {
    throw new InvalidArgumentError(
      `prefill needs one prompt per row: expected ${state.batch}, got ${prompts.length}`,
    );
  }
  prompts.forEach((p, r) => {
    if (p.length === 0) throw new InvalidArgumentError(`prompt of row ${r} is empty`);
  });
  const longest = Math.max(...prompts.map((p) => p.length));
  const plan = planPrefillChunks(longest, options.buckets ?? model.prefillBuckets ?? DEFAULT_PREFILL_BUCKETS);
  const padded = plan.reduce((a, b) => a + b, 0);
  const starts = Array.from(state.lengths);
  starts.forEach((start, r) => {
    if (start + padded > state.maxLength) {
      throw new CacheOverflowError(
        `row ${r}: prompt of ${prompts[r].length} tokens (${padded} with bucket padding) from position ${start} exceeds maxLength ${state.maxLength}`,
      );
    }
  });
  const pad = options.padToken ?? 0;
  const rowLogits: (tf.Tensor | undefined)[] = new Array(state.batch);
  try {
    let offset = 0;
    for (const size of plan) {
      const tokens = prompts.map((p) =>
        Array.from({ length: size }, (_, i) => (offset + i < p.length ? p[offset + i] : pad)),
      );
      // Each row's last real token, if it falls in this chunk.
      const last = prompts.map((p) => p.length - 1 - offset);
      const endsHere = last.map((i) => i >= 0 && i < size);
      // Chunks where no row ends project nothing onto the vocabulary.
      const { logits } = model.extendStep(state, tokens, {
        logits: endsHere.some(Boolean) ? last.map((i) => Math.min(Math.max(i, 0), size - 1)) : 'none',
      });
      endsHere.forEach((ends, r) => {
        if (ends) rowLogits[r] = tf.slice(logits, [r, 0, 0], [1, 1, -1]);
      });
      logits.dispose();
      offset += size;
    }
    return tf.concat(rowLogits as tf.Tensor[], 0) as tf.Tensor3D;
  } finally {
    tf.dispose(rowLogits.filter((t): t is tf.Tensor => t !== undefined));
    model.rollback(
      state,
      starts.map((start, r) => Math.min(start + prompts[r].length, state.lengths[r])),
    );
  }
}
