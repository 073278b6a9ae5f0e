import * as tf from '@tensorflow/tfjs-core';
import { type CausalLm, type CausalLmConfig, type CausalLmWeights, createCausalLm } from './causal-lm.js';
import type { Linear } from './transformer/linear.js';
import type { NormWeights } from './transformer/norm.js';

export interface RandomWeightsOptions {
  seed?: number;
  /** Standard deviation of matrix entries (GPT-2 initialises with 0.02). */
  std?: number;
  /** Give every projection a bias (as Qwen's q/k/v and GPT-2's layers have). */
  biases?: boolean;
}

/**
 * Seeded random weights for a CausalLmConfig: tests compose the building
 * blocks into small decoders with them, benchmarks into realistic shapes.
 */
export function randomCausalLmWeights(
  config: CausalLmConfig,
  options: RandomWeightsOptions = {},
): CausalLmWeights {
  let seed = options.seed ?? 1;
  const std = options.std ?? 0.02;
  const normal = (shape: number[], s = std) => tf.randomNormal(shape, 0, s, 'float32', seed++);
  const matrix = (rows: number, cols: number): Linear => {
    const weight = normal([rows, cols]) as tf.Tensor2D;
    return options.biases ? { weight, bias: normal([cols]) as tf.Tensor1D } : { weight };
  };
  const norm = (): NormWeights => {
    // Not all ones: a norm whose weight is 1 would hide a missing multiplication.
    const weight = tf.tidy(() => tf.add(1, normal([config.hiddenSize], 0.1))) as tf.Tensor1D;
    return config.norm === 'layer'
      ? { weight, bias: normal([config.hiddenSize], 0.1) as tf.Tensor1D }
      : { weight };
  };
  const { hiddenSize: d, heads, kvHeads, headDim } = config;
  const ff = 4 * d;
  return {
    embedTokens: normal([config.vocabSize, d], 1) as tf.Tensor2D,
    embedPositions:
      config.positions.kind === 'learned'
        ? (normal([config.positions.maxPositions, d], 0.5) as tf.Tensor2D)
        : undefined,
    layers: Array.from({ length: config.layers }, () => ({
      attnNorm: norm(),
      q: matrix(d, heads * headDim),
      k: matrix(d, kvHeads * headDim),
      v: matrix(d, kvHeads * headDim),
      o: matrix(heads * headDim, d),
      mlpNorm: norm(),
      gate: config.gatedMlp ? matrix(d, ff) : undefined,
      up: matrix(d, ff),
      down: matrix(ff, d),
    })),
    finalNorm: norm(),
    lmHead: normal([d, config.vocabSize]) as tf.Tensor2D,
  };
}

export function randomCausalLm(config: CausalLmConfig, options: RandomWeightsOptions = {}): CausalLm {
  return createCausalLm(config, randomCausalLmWeights(config, options));
}

/**
 * A tiny Llama-style decoder (GQA, rotary, RMSNorm, gated SiLU MLP) for tests
 * and examples: 2 layers, hidden 32, vocab 97. Spread it to vary a field.
 */
export const TINY_LLAMA_SHAPE: CausalLmConfig = {
  vocabSize: 97,
  hiddenSize: 32,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  headDim: 8,
  norm: 'rms',
  normEps: 1e-6,
  activation: 'silu',
  gatedMlp: true,
  positions: { kind: 'rotary', rotary: { theta: 10000 } },
};

/**
 * Applies `f` to every tensor of a weights object (any nesting of objects and
 * arrays), returning the same structure: clones, perturbed copies, casts.
 */
export function mapWeightTensors<T>(value: T, f: (t: tf.Tensor) => tf.Tensor): T {
  if (value instanceof tf.Tensor) return f(value) as T;
  if (Array.isArray(value)) return value.map((v) => mapWeightTensors(v, f)) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, mapWeightTensors(v, f)])) as T;
  }
  return value;
}

/** GPT-2 small's shape (124M parameters), used by benchmarks and the demo. */
export const GPT2_SMALL_SHAPE: CausalLmConfig = {
  vocabSize: 50257,
  hiddenSize: 768,
  layers: 12,
  heads: 12,
  kvHeads: 12,
  headDim: 64,
  norm: 'layer',
  normEps: 1e-5,
  activation: 'gelu_tanh',
  gatedMlp: false,
  positions: { kind: 'learned', maxPositions: 4096 },
};
