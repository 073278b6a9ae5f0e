import type { Linear, NormWeights, TransformerLayerWeights } from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import type { ReferenceSynthesizerConfig } from './config.js';

/** Weights as checkpoints would store them, every matrix [in, out]. */
export type SynthesizerTextLayerWeights = TransformerLayerWeights;

export interface SynthesizerDecoderLayerWeights {
  selfNorm: NormWeights;
  q: Linear;
  k: Linear;
  v: Linear;
  o: Linear;
  crossNorm: NormWeights;
  crossQ: Linear;
  crossK: Linear;
  crossV: Linear;
  crossO: Linear;
  mlpNorm: NormWeights;
  up: Linear;
  down: Linear;
}

export interface ReferenceSynthesizerWeights {
  /** [vocab, hidden]. */
  embedTokens: tf.Tensor2D;
  textLayers: SynthesizerTextLayerWeights[];
  /** Applied to the text encoder's output before the cross-attention projections. */
  textNorm: NormWeights;
  /** nMels → prenetSize → hidden, ReLU after each. */
  prenet: [Linear, Linear];
  decoderLayers: SynthesizerDecoderLayerWeights[];
  finalNorm: NormWeights;
  /** hidden → framesPerStep·nMels (frame-major within the step). */
  frameHead: Linear;
  /** hidden → 1: the stop logit. */
  stopHead: Linear;
}

export interface RandomSynthesizerOptions {
  /**
   * Bias of the stop logit. Random weights carry no notion of when speech
   * ends, so the default (-4) makes a row almost never stop (generation
   * then ends at maxFrames); tests pass a large value to stop at the first
   * step that sees all the text.
   */
  stopBias?: number;
  /** Bias of the frame head: the mean log10 mel power of the output (default -1). */
  frameBias?: number;
}

/**
 * Seeded random weights. Matrices are N(0, 1/fan_in)·gain so activations
 * keep their scale through the layers; norms are not all ones (a missing
 * multiplication would hide behind a weight of 1).
 */
export function randomSynthesizerWeights(
  config: ReferenceSynthesizerConfig,
  seed = 1,
  options: RandomSynthesizerOptions = {},
): ReferenceSynthesizerWeights {
  let next = seed;
  const { hiddenSize: d, ffSize: ff, nMels, framesPerStep: r, prenetSize } = config;
  const normal = (shape: number[], std: number) => tf.randomNormal(shape, 0, std, 'float32', next++);
  const linear = (rows: number, cols: number, gain = 1): Linear => ({
    weight: normal([rows, cols], gain / Math.sqrt(rows)) as tf.Tensor2D,
    bias: normal([cols], 0.02) as tf.Tensor1D,
  });
  const norm = (): NormWeights => ({
    weight: tf.tidy(() => tf.add(1, normal([d], 0.1))) as tf.Tensor1D,
    bias: normal([d], 0.05) as tf.Tensor1D,
  });
  const constantBias = (layer: Linear, value: number): Linear => {
    layer.bias?.dispose();
    return { weight: layer.weight, bias: tf.fill([layer.weight.shape[1]], value) as tf.Tensor1D };
  };
  return {
    embedTokens: normal([config.vocabSize, d], 1) as tf.Tensor2D,
    textLayers: Array.from({ length: config.textLayers }, () => ({
      attnNorm: norm(),
      q: linear(d, d),
      k: linear(d, d),
      v: linear(d, d),
      o: linear(d, d, 0.5),
      mlpNorm: norm(),
      up: linear(d, ff),
      down: linear(ff, d, 0.5),
    })),
    textNorm: norm(),
    prenet: [linear(nMels, prenetSize, 1.5), linear(prenetSize, d, 1.5)],
    decoderLayers: Array.from({ length: config.decoderLayers }, () => ({
      selfNorm: norm(),
      q: linear(d, d),
      k: linear(d, d),
      v: linear(d, d),
      o: linear(d, d, 0.5),
      crossNorm: norm(),
      crossQ: linear(d, d),
      crossK: linear(d, d),
      crossV: linear(d, d),
      crossO: linear(d, d, 0.5),
      mlpNorm: norm(),
      up: linear(d, ff),
      down: linear(ff, d, 0.5),
    })),
    finalNorm: norm(),
    frameHead: constantBias(linear(d, r * nMels, 0.5), options.frameBias ?? -1),
    stopHead: constantBias(linear(d, 1, 0.3), options.stopBias ?? -4),
  };
}
