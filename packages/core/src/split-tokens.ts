import * as tf from '@tensorflow/tfjs-core';
import type { SplitTokens } from './decoder.js';

/** Whether `ids` is the split form (first column on the host, the rest on the device). */
export function isSplitTokens(ids: unknown): ids is SplitTokens {
  return typeof ids === 'object' && ids !== null && 'first' in ids && 'rest' in ids;
}

/** Split ids as one int32 tensor [batch, steps] (uploads the first column). */
export function joinSplitTokens({ first, rest }: SplitTokens): tf.Tensor2D {
  return tf.tidy(() =>
    tf.concat([tf.tensor2d(Int32Array.from(first), [rest.shape[0], 1], 'int32'), rest], 1),
  ) as tf.Tensor2D;
}
