import * as tf from '@tensorflow/tfjs-core';
import { type Linear, linear } from './linear.js';

/**
 * Activation of the MLP's hidden layer.
 * - silu: x·σ(x) (Llama family, gated)
 * - gelu_tanh: GPT-2's gelu_new. 0.5·x·(1 + tanh(z)) equals x·σ(2z), which
 *   costs fewer ops than the tanh form and is the same function.
 * - gelu: exact erf form (Whisper)
 * - relu
 */
export type Activation = 'silu' | 'gelu_tanh' | 'gelu' | 'relu';

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

export function activate(kind: Activation, x: tf.Tensor): tf.Tensor {
  switch (kind) {
    case 'silu':
      return tf.mul(x, tf.sigmoid(x));
    case 'gelu_tanh': {
      const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), 2 * SQRT_2_OVER_PI);
      return tf.mul(x, tf.sigmoid(inner));
    }
    case 'gelu':
      return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
    case 'relu':
      return tf.relu(x);
  }
}

export interface MlpWeights {
  /**
   * Gated: [hidden, 2·ff] with gate columns first, then up (one matmul for both).
   * Plain: [hidden, ff].
   */
  up: Linear;
  down: Linear;
}

/** x: [rows, hidden] → [rows, hidden]. */
export function mlp(
  x: tf.Tensor2D,
  weights: MlpWeights,
  activation: Activation,
  gated: boolean,
): tf.Tensor2D {
  const hidden = linear(x, weights.up);
  if (!gated) return linear(activate(activation, hidden) as tf.Tensor2D, weights.down);
  const [gate, up] = tf.split(hidden, 2, 1) as [tf.Tensor2D, tf.Tensor2D];
  return linear(tf.mul(activate(activation, gate), up) as tf.Tensor2D, weights.down);
}
