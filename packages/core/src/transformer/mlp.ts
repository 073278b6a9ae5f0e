import * as tf from '@tensorflow/tfjs-core';
import { activateRows, activationSupported } from '../kernel-sets/webgpu/activation.js';
import { type ConstantOf, plainNumber } from './constants.js';
import { type DenseLayer, linear } from './linear.js';

/**
 * Activation of the MLP's hidden layer.
 * - silu: x·σ(x) (Llama family, gated)
 * - gelu_tanh: GPT-2's gelu_new. 0.5·x·(1 + tanh(z)) equals x·σ(2z), which
 *   costs fewer ops than the tanh form and is the same function; 2z is
 *   written x·(a + b·x²), without pow (whose exponent would be one more
 *   scalar operand).
 * - gelu: exact erf form (Whisper)
 * - relu
 */
export type Activation = 'silu' | 'gelu_tanh' | 'gelu' | 'relu';

const GELU_A = 2 * Math.sqrt(2 / Math.PI);
const GELU_B = GELU_A * 0.044715;

/** The scalar operands `activate(kind, ·)` uses, for createConstants. */
export function activationConstants(kind: Activation): number[] {
  if (kind === 'gelu_tanh') return [GELU_A, GELU_B];
  if (kind === 'gelu') return [0.5, Math.SQRT1_2, 1];
  return [];
}

export function activate(kind: Activation, x: tf.Tensor, constant: ConstantOf = plainNumber): tf.Tensor {
  switch (kind) {
    case 'silu':
      return tf.mul(x, tf.sigmoid(x));
    case 'gelu_tanh': {
      const twiceZ = tf.mul(x, tf.add(constant(GELU_A), tf.mul(tf.square(x), constant(GELU_B))));
      return tf.mul(x, tf.sigmoid(twiceZ));
    }
    case 'gelu':
      return tf.mul(tf.mul(x, constant(0.5)), tf.add(tf.erf(tf.mul(x, constant(Math.SQRT1_2))), constant(1)));
    case 'relu':
      return tf.relu(x);
  }
}

export interface MlpWeights {
  /**
   * Gated: [hidden, 2·ff] with gate columns first, then up (one matmul for both).
   * Plain: [hidden, ff].
   */
  up: DenseLayer;
  down: DenseLayer;
}

/** x: [rows, hidden] → [rows, hidden]. */
export function mlp(
  x: tf.Tensor2D,
  weights: MlpWeights,
  activation: Activation,
  gated: boolean,
  constant: ConstantOf = plainNumber,
): tf.Tensor2D {
  const hidden = linear(x, weights.up);
  if (activationSupported()) return linear(activateRows(activation, hidden, gated), weights.down);
  if (!gated) return linear(activate(activation, hidden, constant) as tf.Tensor2D, weights.down);
  const [gate, up] = tf.split(hidden, 2, 1) as [tf.Tensor2D, tf.Tensor2D];
  return linear(tf.mul(activate(activation, gate, constant), up) as tf.Tensor2D, weights.down);
}
