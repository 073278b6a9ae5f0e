import { type Activation, checkPositiveInteger, InvalidArgumentError } from '@specstream/core';

/**
 * A causal streaming encoder for CTC speech recognition:
 *
 *   log-mel frames [batch, steps, nMels] (10 ms hop)
 *   → causal conv1d (kernel 3, stride 2) + activation → causal conv1d (kernel 3, stride 2) + activation
 *     (subsampling by 4: one output frame per 40 ms)
 *   → `layers` pre-LayerNorm transformer layers, causal self-attention over the
 *     frames before (optionally only the last `leftContext` of them), rotary or no positions
 *   → final LayerNorm → linear CTC head [dModel, vocabSize] (blank id 0): logits.
 */
export interface StreamingEncoderConfig {
  /** Mel bins per input frame (the encoder's inputDim). */
  nMels: number;
  /** Channels between the two subsampling convolutions. */
  convChannels: number;
  dModel: number;
  layers: number;
  heads: number;
  /** Hidden width of each layer's MLP. */
  ffDim: number;
  /** CTC vocabulary including the blank (id 0): the encoder's outputDim. */
  vocabSize: number;
  normEps: number;
  /** Activation after each convolution and inside the MLPs. */
  activation: Activation;
  /** Rotary positions (relative: any stream length), or none (the causal convolutions carry order). */
  positions: { kind: 'rotary'; theta: number } | { kind: 'none' };
}

/** Input frames per output frame. */
export const STREAMING_ENCODER_SUBSAMPLING = 4;
/** Kernel size and stride of both subsampling convolutions. */
export const CONV_KERNEL = 3;
export const CONV_STRIDE = 2;
/** Blank label of the CTC head. */
export const STREAMING_ENCODER_BLANK_ID = 0;

/**
 * Benchmark shape: 10.3 M parameters (d 320, 8 layers, 4 heads of 80, MLP 1280,
 * 80 mel bins, vocabulary 256).
 */
export const STREAMING_ENCODER_10M: StreamingEncoderConfig = {
  nMels: 80,
  convChannels: 320,
  dModel: 320,
  layers: 8,
  heads: 4,
  ffDim: 1280,
  vocabSize: 256,
  normEps: 1e-5,
  activation: 'gelu',
  positions: { kind: 'rotary', theta: 10000 },
};

/** Test shape: a few thousand parameters, every code path of the large one. */
export const STREAMING_ENCODER_TINY: StreamingEncoderConfig = {
  nMels: 8,
  convChannels: 12,
  dModel: 16,
  layers: 2,
  heads: 2,
  ffDim: 32,
  vocabSize: 10,
  normEps: 1e-5,
  activation: 'gelu',
  positions: { kind: 'rotary', theta: 10000 },
};

/** Parameters of a config's weights (convolutions, layers, norms, CTC head, biases included). */
export function streamingEncoderParameterCount(config: StreamingEncoderConfig): number {
  const { nMels, convChannels: c, dModel: d, ffDim: ff, vocabSize: v } = config;
  const conv = CONV_KERNEL * nMels * c + c + CONV_KERNEL * c * d + d;
  const layer = 2 * (2 * d) + 4 * (d * d + d) + (d * ff + ff) + (ff * d + d);
  return conv + config.layers * layer + 2 * d + d * v + v;
}

/**
 * Output frames produced once `inputFrames` frames have been consumed. The
 * front end's output frame j reads input frames 4j−3 … 4j+3 (frames before 0
 * are zeros); attention adds only earlier frames. So output frame j depends
 * on input frames ≤ 4j+3 alone and appears as soon as frame 4j+3 has arrived:
 * floor(inputFrames / 4) frames in all, whatever the chunking.
 */
export function streamingEncoderOutputFrames(inputFrames: number): number {
  return Math.floor(inputFrames / STREAMING_ENCODER_SUBSAMPLING);
}

export function checkStreamingEncoderConfig(config: StreamingEncoderConfig): void {
  for (const key of ['nMels', 'convChannels', 'dModel', 'layers', 'heads', 'ffDim', 'vocabSize'] as const) {
    checkPositiveInteger(`config.${key}`, config[key]);
  }
  if (config.dModel % config.heads !== 0) {
    throw new InvalidArgumentError(
      `config.dModel (${config.dModel}) must be a multiple of config.heads (${config.heads})`,
    );
  }
  const headDim = config.dModel / config.heads;
  if (config.positions.kind === 'rotary' && headDim % 2 !== 0) {
    throw new InvalidArgumentError(`rotary positions need an even head size, got ${headDim}`);
  }
  if (!(config.normEps > 0)) {
    throw new InvalidArgumentError(`config.normEps must be positive, got ${config.normEps}`);
  }
}
