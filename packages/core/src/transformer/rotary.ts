import * as tf from '@tensorflow/tfjs-core';

/** Rope scaling as in transformers' `rope_scaling` / `rope_parameters` (types we support). */
export type RopeScaling =
  | { type: 'default' }
  | { type: 'linear'; factor: number }
  | {
      type: 'llama3';
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositions: number;
    };

export interface RotaryConfig {
  theta: number;
  headDim: number;
  scaling?: RopeScaling;
}

const f32 = Math.fround;

/**
 * Inverse frequencies θ^(-2i/d), i < d/2, rounded through float32 at each step
 * the way transformers computes them in torch.float32, so positions far into a
 * long context get the same angles as the reference.
 */
export function rotaryInverseFrequencies(config: RotaryConfig): Float32Array {
  const half = config.headDim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) inv[i] = f32(1 / f32(config.theta ** f32((2 * i) / config.headDim)));
  const scaling = config.scaling ?? { type: 'default' };
  if (scaling.type === 'linear') for (let i = 0; i < half; i++) inv[i] = f32(inv[i] / scaling.factor);
  if (scaling.type === 'llama3') applyLlama3Scaling(inv, scaling);
  return inv;
}

/** Llama 3.1: long wavelengths slowed by `factor`, short ones kept, a smooth blend between. */
function applyLlama3Scaling(inv: Float32Array, s: Extract<RopeScaling, { type: 'llama3' }>): void {
  const lowFreqWavelength = s.originalMaxPositions / s.lowFreqFactor;
  const highFreqWavelength = s.originalMaxPositions / s.highFreqFactor;
  for (let i = 0; i < inv.length; i++) {
    const wavelength = (2 * Math.PI) / inv[i];
    if (wavelength < highFreqWavelength) continue;
    if (wavelength > lowFreqWavelength) {
      inv[i] = f32(inv[i] / s.factor);
      continue;
    }
    const smooth =
      (s.originalMaxPositions / wavelength - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    inv[i] = f32((1 - smooth) * (inv[i] / s.factor) + smooth * inv[i]);
  }
}

/**
 * cos and sin tables for the given positions, [positions.length, headDim],
 * each angle repeated for both halves (the rotate-half layout of HF models).
 */
export function rotaryTables(
  inv: Float32Array,
  positions: ArrayLike<number>,
): { cos: Float32Array; sin: Float32Array } {
  const half = inv.length;
  const dim = half * 2;
  const cos = new Float32Array(positions.length * dim);
  const sin = new Float32Array(positions.length * dim);
  for (let p = 0; p < positions.length; p++) {
    for (let i = 0; i < half; i++) {
      const angle = f32(positions[p] * inv[i]);
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[p * dim + i] = c;
      cos[p * dim + half + i] = c;
      sin[p * dim + i] = s;
      sin[p * dim + half + i] = s;
    }
  }
  return { cos, sin };
}

/**
 * The same angles packed for the webgpu rotary kernel: [positions.length,
 * headDim], each position's cos of its half-dimension angles, then their sin.
 */
export function rotaryCosSin(inv: Float32Array, positions: ArrayLike<number>): Float32Array {
  const half = inv.length;
  const table = new Float32Array(positions.length * 2 * half);
  for (let p = 0; p < positions.length; p++) {
    for (let i = 0; i < half; i++) {
      const angle = f32(positions[p] * inv[i]);
      table[2 * p * half + i] = Math.cos(angle);
      table[(2 * p + 1) * half + i] = Math.sin(angle);
    }
  }
  return table;
}

/**
 * rotate_half(x) = [-x₂, x₁] written as x·R, so applying rotary costs one
 * small matmul instead of two slices, a negation and a concat.
 */
export function rotateHalfMatrix(headDim: number): tf.Tensor2D {
  const half = headDim / 2;
  const r = new Float32Array(headDim * headDim);
  for (let i = 0; i < half; i++) {
    r[(i + half) * headDim + i] = -1;
    r[i * headDim + i + half] = 1;
  }
  return tf.tensor2d(r, [headDim, headDim]);
}

/**
 * x: [batch, steps, heads, headDim]; cos/sin: [batch, steps, 1, headDim].
 * Returns x·cos + rotate_half(x)·sin.
 */
export function applyRotary(
  x: tf.Tensor4D,
  cos: tf.Tensor,
  sin: tf.Tensor,
  rotateHalf: tf.Tensor2D,
): tf.Tensor4D {
  const headDim = x.shape[3];
  const rotated = tf.reshape(tf.matMul(tf.reshape(x, [-1, headDim]), rotateHalf), x.shape);
  return tf.add(tf.mul(x, cos), tf.mul(rotated, sin));
}
