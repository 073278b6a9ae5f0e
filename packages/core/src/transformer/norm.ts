import * as tf from '@tensorflow/tfjs-core';

export type NormKind = 'rms' | 'layer';

export interface NormWeights {
  weight: tf.Tensor1D;
  /** LayerNorm only. */
  bias?: tf.Tensor1D;
}

/** RMSNorm over the last axis: x / sqrt(mean(x²) + eps) · weight (Llama, Qwen, Mistral). */
export function rmsNorm(x: tf.Tensor, norm: NormWeights, eps: number): tf.Tensor {
  const meanSquare = tf.mean(tf.square(x), -1, true);
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(meanSquare, eps))), norm.weight);
}

/** LayerNorm over the last axis (GPT-2, Whisper). */
export function layerNorm(x: tf.Tensor, norm: NormWeights, eps: number): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  const scaled = tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), norm.weight);
  return norm.bias === undefined ? scaled : tf.add(scaled, norm.bias);
}

/** Frees a norm's weight and (LayerNorm) bias. */
export function disposeNorm(norm: NormWeights): void {
  norm.weight.dispose();
  norm.bias?.dispose();
}

export function applyNorm(kind: NormKind, x: tf.Tensor, norm: NormWeights, eps: number): tf.Tensor {
  return kind === 'rms' ? rmsNorm(x, norm, eps) : layerNorm(x, norm, eps);
}
