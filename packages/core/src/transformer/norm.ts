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
  return standardizeComposed(kind, x, eps, constant);
}

/** standardize of tfjs's own ops (the reference kernel set's). */
export function standardizeComposed(
  kind: NormKind,
  x: tf.Tensor,
  eps: number,
  constant = plainNumber,
): tf.Tensor {
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
  return foldNorm(norm, layer.weight, layer.bias, {
    scale: (w, gamma) => tf.mul(tf.reshape(gamma, [-1, 1]), w) as tf.Tensor2D,
    // β·W as a column sum rather than a [1, n] matmul reshaped: tfjs-wasm's fused matmul
    // rejects a bias that is a reshaped view of a batched matmul's output ("rank 3").
    betaTerm: (w, beta) => tf.sum(tf.mul(tf.reshape(beta, [-1, 1]), w), 0) as tf.Tensor1D,
  });
}

/**
 * foldNormIntoLinear for a weight stored [out, in] (RowLinear): each row
 * scaled by γ, the bias β·Wᵀ added. Takes ownership of both.
 */
export function foldNormIntoRows(norm: NormWeights, layer: { weightRows: tf.Tensor2D; bias?: tf.Tensor1D }) {
  const { weight: weightRows, bias } = foldNorm(norm, layer.weightRows, layer.bias, {
    scale: (w, gamma) => tf.mul(w, gamma) as tf.Tensor2D,
    betaTerm: (w, beta) => tf.sum(tf.mul(w, beta), 1) as tf.Tensor1D,
  });
  return bias ? { weightRows, bias } : { weightRows };
}

/** The fold for either layout: γ scales the weight, β's term joins the layer's bias; the inputs are freed. */
function foldNorm(
  norm: NormWeights,
  weight: tf.Tensor2D,
  bias: tf.Tensor1D | undefined,
  layout: {
    scale: (w: tf.Tensor2D, gamma: tf.Tensor1D) => tf.Tensor2D;
    betaTerm: (w: tf.Tensor2D, beta: tf.Tensor1D) => tf.Tensor1D;
  },
): { weight: tf.Tensor2D; bias?: tf.Tensor1D } {
  const folded = tf.tidy(() => {
    const scaled = layout.scale(weight, norm.weight);
    let b = norm.bias ? layout.betaTerm(weight, norm.bias) : undefined;
    if (bias) b = b ? (tf.add(b, bias) as tf.Tensor1D) : bias.clone();
    return b ? { weight: scaled, bias: b } : { weight: scaled };
  });
  disposeNorm(norm);
  weight.dispose();
  bias?.dispose();
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
