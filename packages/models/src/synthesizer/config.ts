import { checkPositiveInteger, InvalidArgumentError, type KvCacheKind } from '@specstream/core';

/**
 * Shape of the reference synthesizer (see reference.ts): a causal text
 * encoder, then an autoregressive decoder over mel frames with
 * cross-attention to the encoded text, emitting `framesPerStep` frames and
 * one stop logit per step.
 */
export interface ReferenceSynthesizerConfig {
  /** Text token ids are in [0, vocabSize) (the presets use bytes: 256). */
  vocabSize: number;
  hiddenSize: number;
  /** headDim = hiddenSize / heads, even (rotary positions). */
  heads: number;
  textLayers: number;
  decoderLayers: number;
  /** MLP hidden width. */
  ffSize: number;
  /** Width of the prenet's hidden layer (Tacotron: 256). */
  prenetSize: number;
  nMels: number;
  /** Reduction factor r: frames emitted per decoder step. */
  framesPerStep: number;
  /** The audio the frames describe (for pairing with a vocoder). */
  sampleRate: number;
  hop: number;
  /**
   * Streaming text policy (wait-k): decoder step s attends to the first
   * min(textLength, textLookahead + ⌊s·textTokensPerStep⌋) text tokens.
   * Infinity: every step sees the whole text (nothing runs before endText).
   */
  textLookahead: number;
  textTokensPerStep: number;
  /** A row stops at the first step that sees all its text whose stop probability exceeds this. */
  stopThreshold: number;
  /** Default text capacity of a state. */
  maxTextTokens: number;
  normEps: number;
  rotaryTheta: number;
  /** KV cache strategy; default: the fastest the backend supports. */
  kvCache?: KvCacheKind;
}

/** For tests: every code path, ≈ 35 k parameters, 16 kHz audio. */
export const TINY_SYNTHESIZER_CONFIG: ReferenceSynthesizerConfig = {
  vocabSize: 32,
  hiddenSize: 32,
  heads: 2,
  textLayers: 1,
  decoderLayers: 2,
  ffSize: 64,
  prenetSize: 16,
  nMels: 20,
  framesPerStep: 2,
  sampleRate: 16000,
  hop: 64,
  textLookahead: 2,
  textTokensPerStep: 0.5,
  stopThreshold: 0.5,
  maxTextTokens: 64,
  normEps: 1e-5,
  rotaryTheta: 10000,
};

/**
 * A small model of realistic layout (≈ 6.8 M parameters, byte-level text,
 * 80 mels of 22.05 kHz audio with hop 256, 4 frames a step).
 */
export const DEFAULT_SYNTHESIZER_CONFIG: ReferenceSynthesizerConfig = {
  vocabSize: 256,
  hiddenSize: 256,
  heads: 4,
  textLayers: 3,
  decoderLayers: 4,
  ffSize: 1024,
  prenetSize: 256,
  nMels: 80,
  framesPerStep: 4,
  sampleRate: 22050,
  hop: 256,
  textLookahead: 6,
  textTokensPerStep: 0.5,
  stopThreshold: 0.5,
  maxTextTokens: 1024,
  normEps: 1e-5,
  rotaryTheta: 10000,
};

export function checkSynthesizerConfig(config: ReferenceSynthesizerConfig): void {
  const integers = [
    'vocabSize',
    'hiddenSize',
    'heads',
    'textLayers',
    'decoderLayers',
    'ffSize',
    'prenetSize',
    'nMels',
    'framesPerStep',
    'sampleRate',
    'hop',
    'maxTextTokens',
  ] as const;
  for (const key of integers) checkPositiveInteger(key, config[key]);
  const headDim = config.hiddenSize / config.heads;
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) {
    throw new InvalidArgumentError(
      `hiddenSize (${config.hiddenSize}) / heads (${config.heads}) must be an even integer (rotary positions)`,
    );
  }
  const lookahead = config.textLookahead;
  if (!(lookahead === Number.POSITIVE_INFINITY || (Number.isInteger(lookahead) && lookahead >= 1))) {
    throw new InvalidArgumentError(`textLookahead must be a positive integer or Infinity, got ${lookahead}`);
  }
  if (!(Number.isFinite(config.textTokensPerStep) && config.textTokensPerStep >= 0)) {
    throw new InvalidArgumentError(`textTokensPerStep must be >= 0, got ${config.textTokensPerStep}`);
  }
  if (!(config.stopThreshold > 0 && config.stopThreshold < 1)) {
    throw new InvalidArgumentError(`stopThreshold must be in (0, 1), got ${config.stopThreshold}`);
  }
  if (!(config.normEps > 0) || !(config.rotaryTheta > 0)) {
    throw new InvalidArgumentError('normEps and rotaryTheta must be positive');
  }
}
