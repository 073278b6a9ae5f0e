import * as tf from '@tensorflow/tfjs-core';
import { standardizeRows, standardizeRowsSupported } from '../kernels/standardize.js';
import { type ConstantOf, plainNumber } from './constants.js';

export type NormKind = 'rms' | 'layer';

export interface NormWeights {
  weight: tf.Tensor1D;
  /** LayerNorm only. */
  bias?: tf.Tensor1D;
}

/** RMSNorm over the last axis: x / sqrt(mean(x²) + eps) · weight (Llama, Qwen, Mistral). */
export function rmsNorm(x: tf.Tensor, norm: NormWeights, eps: number, constant = plainNumber): tf.Tensor {
  const meanSquare = tf.mean(tf.square(x), -1, true);
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(meanSquare, constant(eps)))), norm.weight);
}

/** LayerNorm over the last axis (GPT-2, Whisper). */
export function layerNorm(x: tf.Tensor, norm: NormWeights, eps: number, constant = plainNumber): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  const scaled = tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, constant(eps)))), norm.weight);
  return norm.bias === undefined ? scaled : tf.add(scaled, norm.bias);
}

/**
 * The norm without its affine part: x / rms(x) for RMSNorm, (x − mean) /
 * std(x) for LayerNorm. For norms whose weight and bias were folded into the
 * linear layer that follows (foldNormIntoLinear).
 */
export function standardize(kind: NormKind, x: tf.Tensor, eps: number, constant = plainNumber): tf.Tensor {
  if (standardizeRowsSupported(x.size / x.shape[x.shape.length - 1]))
    return standardizeRows(x, eps, kind === 'layer');
  if (kind === 'rms') return tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), constant(eps))));
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, constant(eps))));
}

/**
 * A norm's affine part moved into the linear layer after it:
 * (z·γ + β)·W + b = z·(γ ⊙ W) + (β·W + b), z the standardized input.
 * Takes ownership of both: they are disposed, the folded layer is returned.
 */
export function foldNormIntoLinear(norm: NormWeights, layer: { weight: tf.Tensor2D; bias?: tf.Tensor1D }) {
  const folded = tf.tidy(() => {
    const weight = tf.mul(tf.reshape(norm.weight, [-1, 1]), layer.weight) as tf.Tensor2D;
    // β·W as a column sum rather than a [1, n] matmul reshaped: tfjs-wasm's fused matmul
    // rejects a bias that is a reshaped view of a batched matmul's output ("rank 3").
    let bias = norm.bias
      ? (tf.sum(tf.mul(tf.reshape(norm.bias, [-1, 1]), layer.weight), 0) as tf.Tensor1D)
      : undefined;
    if (layer.bias) bias = bias ? (tf.add(bias, layer.bias) as tf.Tensor1D) : layer.bias.clone();
    return bias ? { weight, bias } : { weight };
  });
  disposeNorm(norm);
  layer.weight.dispose();
  layer.bias?.dispose();
  return folded;
}

/**
 * foldNormIntoLinear for a weight stored [out, in] (RowLinear): each row
 * scaled by γ, the bias β·Wᵀ added. Takes ownership of both.
 */
export function foldNormIntoRows(norm: NormWeights, layer: { weightRows: tf.Tensor2D; bias?: tf.Tensor1D }) {
  const folded = tf.tidy(() => {
    const weightRows = tf.mul(layer.weightRows, norm.weight) as tf.Tensor2D;
    let bias = norm.bias ? (tf.sum(tf.mul(layer.weightRows, norm.bias), 1) as tf.Tensor1D) : undefined;
    if (layer.bias) bias = bias ? (tf.add(bias, layer.bias) as tf.Tensor1D) : layer.bias.clone();
    return bias ? { weightRows, bias } : { weightRows };
  });
  disposeNorm(norm);
  layer.weightRows.dispose();
  layer.bias?.dispose();
  return folded;
}

/** Frees a norm's weight and (LayerNorm) bias. */
export function disposeNorm(norm: NormWeights): void {
  norm.weight.dispose();
  norm.bias?.dispose();
}

export function applyNorm(
  kind: NormKind,
  x: tf.Tensor,
  norm: NormWeights,
  eps: number,
  constant: ConstantOf = plainNumber,
): tf.Tensor {
  // Where the standardization is one kernel, the affine part is two more (tfjs composes it of 7–9).
  if (standardizeRowsSupported(x.size / x.shape[x.shape.length - 1])) {
    return tf.tidy(() => {
      const scaled = tf.mul(standardizeRows(x, eps, kind === 'layer'), norm.weight);
      return norm.bias === undefined ? scaled : tf.add(scaled, norm.bias);
    });
  }
  return kind === 'rms' ? rmsNorm(x, norm, eps, constant) : layerNorm(x, norm, eps, constant);
}
