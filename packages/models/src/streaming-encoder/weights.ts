import type { Linear, NormWeights, TransformerLayerWeights } from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { CONV_KERNEL, checkStreamingEncoderConfig, type StreamingEncoderConfig } from './config.js';

/** A causal convolution as tf.conv1d takes it. */
export interface StreamingConvWeights {
  /** [kernel, in, out]; tap 0 applies to the oldest of the kernel's frames. */
  filter: tf.Tensor3D;
  bias: tf.Tensor1D;
}

/** One pre-LayerNorm layer; every matrix stored [in, out]. */
export type StreamingEncoderLayerWeights = TransformerLayerWeights;

export interface StreamingEncoderWeights {
  /** nMels → convChannels. */
  conv1: StreamingConvWeights;
  /** convChannels → dModel. */
  conv2: StreamingConvWeights;
  layers: StreamingEncoderLayerWeights[];
  finalNorm: NormWeights;
  /** [dModel, vocabSize]: CTC logits, blank id 0. */
  ctcHead: Linear;
}

/**
 * Seeded random weights for a config (no trained checkpoint exists yet).
 * Matrices are N(0, 1/fanIn) so activations keep unit scale through the
 * layers and attention scores are O(1): attention is far from uniform, which
 * tests need to see masks at work. Norm weights are 1 + N(0, 0.1) (a weight
 * of exactly 1 would hide a missing multiplication), biases N(0, 0.02²).
 * The same config and seed give the same weights.
 */
export function randomStreamingEncoderWeights(
  config: StreamingEncoderConfig,
  seed = 1,
): StreamingEncoderWeights {
  checkStreamingEncoderConfig(config);
  let next = seed;
  const normal = (shape: number[], std: number) => tf.randomNormal(shape, 0, std, 'float32', next++);
  const bias = (size: number) => normal([size], 0.02) as tf.Tensor1D;
  const matrix = (rows: number, cols: number): Linear => ({
    weight: normal([rows, cols], 1 / Math.sqrt(rows)) as tf.Tensor2D,
    bias: bias(cols),
  });
  const norm = (size: number): NormWeights => ({
    weight: tf.tidy(() => tf.add(1, normal([size], 0.1))) as tf.Tensor1D,
    bias: normal([size], 0.1) as tf.Tensor1D,
  });
  const conv = (input: number, output: number): StreamingConvWeights => ({
    filter: normal([CONV_KERNEL, input, output], 1 / Math.sqrt(CONV_KERNEL * input)) as tf.Tensor3D,
    bias: bias(output),
  });
  const { nMels, convChannels, dModel: d, ffDim: ff } = config;
  return {
    conv1: conv(nMels, convChannels),
    conv2: conv(convChannels, d),
    layers: Array.from({ length: config.layers }, () => ({
      attnNorm: norm(d),
      q: matrix(d, d),
      k: matrix(d, d),
      v: matrix(d, d),
      o: matrix(d, d),
      mlpNorm: norm(d),
      up: matrix(d, ff),
      down: matrix(ff, d),
    })),
    finalNorm: norm(d),
    ctcHead: matrix(d, config.vocabSize),
  };
}

/** Frees every tensor of a weights object that was not handed to createStreamingEncoder. */
export function disposeStreamingEncoderWeights(weights: StreamingEncoderWeights): void {
  const parts: Array<Linear | NormWeights | StreamingConvWeights> = [
    weights.conv1,
    weights.conv2,
    ...weights.layers.flatMap((l) => [l.attnNorm, l.q, l.k, l.v, l.o, l.mlpNorm, l.up, l.down]),
    weights.finalNorm,
    weights.ctcHead,
  ];
  for (const part of parts) {
    if ('filter' in part) tf.dispose([part.filter, part.bias]);
    else tf.dispose(part.bias ? [part.weight, part.bias] : [part.weight]);
  }
}
