import {
  type Activation,
  checkPositiveInteger,
  InvalidArgumentError,
  type KvCacheKind,
} from '@specstream/core';
import { field, type HfConfig } from '../architectures/hf-config.js';

/** The shape of a WhisperForConditionalGeneration checkpoint, read from its config.json. */
export interface WhisperConfig {
  vocabSize: number;
  /** Width of every hidden state (d_model). */
  dModel: number;
  /** Mel bins per input frame: the encoder's input width. */
  numMelBins: number;
  encoderLayers: number;
  encoderHeads: number;
  encoderFfnDim: number;
  decoderLayers: number;
  decoderHeads: number;
  decoderFfnDim: number;
  /** Encoder output steps of a full window; the window takes twice as many input frames (conv2 has stride 2). */
  maxSourcePositions: number;
  /** Rows of the decoder's learned position table: the longest token sequence. */
  maxTargetPositions: number;
  activation: Activation;
  /** Token embeddings multiplied by √dModel (the tied output head is not). */
  scaleEmbedding: boolean;
  /** torch.nn.LayerNorm's default; Whisper's config has no field for it. */
  normEps: number;
  decoderStartTokenId: number;
  eosTokenId: number;
  /** Decoder self-attention cache strategy; default: the fastest the backend supports. */
  kvCache?: KvCacheKind;
}

const ACTIVATIONS: Record<string, Activation> = {
  gelu: 'gelu',
  gelu_new: 'gelu_tanh',
  gelu_pytorch_tanh: 'gelu_tanh',
  relu: 'relu',
};

export function whisperConfig(config: HfConfig, kvCache?: KvCacheKind): WhisperConfig {
  const act = field<string>(config, 'activation_function', 'gelu');
  const activation = ACTIVATIONS[act];
  if (!activation) throw new InvalidArgumentError(`Whisper activation "${act}" is not supported`);
  const parsed: WhisperConfig = {
    vocabSize: field(config, 'vocab_size'),
    dModel: field(config, 'd_model'),
    numMelBins: field(config, 'num_mel_bins'),
    encoderLayers: field(config, 'encoder_layers'),
    encoderHeads: field(config, 'encoder_attention_heads'),
    encoderFfnDim: field(config, 'encoder_ffn_dim'),
    decoderLayers: field(config, 'decoder_layers'),
    decoderHeads: field(config, 'decoder_attention_heads'),
    decoderFfnDim: field(config, 'decoder_ffn_dim'),
    maxSourcePositions: field(config, 'max_source_positions'),
    maxTargetPositions: field(config, 'max_target_positions'),
    activation,
    scaleEmbedding: field(config, 'scale_embedding', false),
    normEps: 1e-5,
    decoderStartTokenId: field(config, 'decoder_start_token_id'),
    eosTokenId: field(config, 'eos_token_id'),
    kvCache,
  };
  checkShape(parsed);
  return parsed;
}

function checkShape(config: WhisperConfig): void {
  const sizes = [
    'vocabSize',
    'dModel',
    'numMelBins',
    'encoderLayers',
    'encoderHeads',
    'encoderFfnDim',
    'decoderLayers',
    'decoderHeads',
    'decoderFfnDim',
    'maxSourcePositions',
    'maxTargetPositions',
  ] as const;
  for (const key of sizes) checkPositiveInteger(key, config[key]);
  for (const key of ['encoderHeads', 'decoderHeads'] as const) {
    if (config.dModel % config[key] !== 0) {
      throw new InvalidArgumentError(
        `d_model (${config.dModel}) must be a multiple of ${key} (${config[key]})`,
      );
    }
  }
}
