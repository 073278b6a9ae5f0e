import { disposeLinear, type Linear } from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';

/**
 * Whisper's attention pieces that core's decoder-only transformer has no
 * use for: weights fused for one matmul, and attention over keys that need
 * no mask (the encoder's bidirectional self-attention, the decoder's
 * cross-attention over the whole encoder output).
 */

/**
 * Linear layers with the same input concatenated along their outputs, each
 * output block multiplied by its factor (so the attention scale can live in
 * q's weights and bias: transformers scales q_proj's output, bias included).
 * A missing bias (k_proj) becomes zeros. Disposes the originals.
 */
export function fuseLinears(parts: ReadonlyArray<{ layer: Linear; factor?: number }>): Linear {
  const fused = tf.tidy(() => {
    const scaled = <T extends tf.Tensor>(t: T, factor = 1) => (factor === 1 ? t : (tf.mul(t, factor) as T));
    const weight = tf.concat(
      parts.map(({ layer, factor }) => scaled(layer.weight, factor)),
      1,
    ) as tf.Tensor2D;
    const bias = tf.concat(
      parts.map(({ layer, factor }) =>
        layer.bias ? scaled(layer.bias, factor) : tf.zeros([layer.weight.shape[1]]),
      ),
      0,
    ) as tf.Tensor1D;
    return { weight, bias };
  });
  for (const { layer } of parts) disposeLinear(layer);
  return fused;
}

/** q alone, scaled like fuseLinears does. */
export function scaleLinear(layer: Linear, factor: number): Linear {
  const scaled = tf.tidy(() => ({
    weight: tf.mul(layer.weight, factor) as tf.Tensor2D,
    bias: layer.bias && (tf.mul(layer.bias, factor) as tf.Tensor1D),
  }));
  disposeLinear(layer);
  return scaled.bias ? scaled : { weight: scaled.weight };
}

/**
 * [batch·steps, heads·headDim] → [batch, heads, steps, headDim]: the layout
 * core's cachedAttention takes keys and values in.
 */
export function headsFirst(x: tf.Tensor, batch: number, heads: number): tf.Tensor4D {
  const width = x.shape[x.rank - 1];
  const reshaped = tf.reshape(x, [batch, -1, heads, width / heads]);
  return tf.transpose(reshaped, [0, 2, 1, 3]) as tf.Tensor4D;
}

/**
 * An additive mask of zero: cachedAttention adds its mask to the scores, and
 * a scalar broadcasts, so attention over every key costs one cheap add
 * rather than a copy of core's attention without the mask.
 */
export function noMask(): tf.Tensor {
  return tf.scalar(0);
}
