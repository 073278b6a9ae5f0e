import { type Activation, InvalidArgumentError } from '@specstream/core';
import { WHISPER_SAMPLE_RATE } from '../audio/mel-filter-bank.js';
import { checkStreamingEncoderConfig, type StreamingEncoderConfig } from '../streaming-encoder/config.js';

/** `model_type` of a streaming CTC recognizer folder (tools/train/speech_models.py, CtcRecognizer). */
export const SPEECH_RECOGNIZER_MODEL_TYPE = 'specstream-ctc';

/** A recognizer folder's config.json, checked and in the encoder's terms. */
export interface SpeechRecognizerConfig {
  /** The architecture: conv subsampling ×4, transformer, CTC head (blank 0). */
  encoder: StreamingEncoderConfig;
  /** Output frames (40 ms each) of history each output frame attends to: the model was trained with it. */
  leftContext: number;
  /** Front end: Whisper's log-mel (periodic Hann of nFft, hop, encoder.nMels bins), raw (not max-normalised). */
  sampleRate: number;
  nFft: number;
  hop: number;
  /** Log-mel frames per encoder call that the model is meant to stream with (32: 320 ms). */
  chunkFrames: number;
  /** Text of each CTC label; index 0 is the blank (its text is ignored). */
  vocabulary: readonly string[];
  /** The text a character LM for beam search is trained on, relative to the folder (`lm_text`, default lm-text.txt; may be absent). */
  lmText: string;
  /**
   * Weight files of an ensemble of recognizers of this architecture, relative to the folder
   * (`ensemble`, two or more, distinct): their outputs are averaged (ensembleStreamingEncoder).
   * Absent: the folder's model.safetensors (or sharded index) alone.
   */
  ensemble?: readonly string[];
}

/** The LM text's name when config.json names none. */
export const DEFAULT_RECOGNIZER_LM_TEXT = 'lm-text.txt';

const ACTIVATIONS: readonly Activation[] = ['gelu', 'gelu_tanh', 'silu', 'relu'];

/**
 * Checks a parsed config.json (`path` names it in errors) and maps it onto
 * the encoder's config. Every problem is an InvalidArgumentError naming the
 * file and the field.
 */
export function speechRecognizerConfig(json: unknown, path: string): SpeechRecognizerConfig {
  const bad = (message: string) => new InvalidArgumentError(`${path}: ${message}`);
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw bad('is not a JSON object');
  const raw = json as Record<string, unknown>;
  if (raw.model_type !== SPEECH_RECOGNIZER_MODEL_TYPE) {
    throw bad(
      `model_type is ${JSON.stringify(raw.model_type)}, not "${SPEECH_RECOGNIZER_MODEL_TYPE}" (a streaming CTC recognizer)`,
    );
  }
  const integer = (key: string, min: number): number => {
    const value = raw[key];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
      throw bad(`${key} must be an integer >= ${min}, got ${JSON.stringify(value)}`);
    }
    return value;
  };
  const positive = (key: string): number => {
    const value = raw[key];
    if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) {
      throw bad(`${key} must be a positive number, got ${JSON.stringify(value)}`);
    }
    return value;
  };
  const activation = raw.activation as Activation;
  if (!ACTIVATIONS.includes(activation)) {
    throw bad(`activation must be one of ${ACTIVATIONS.join(', ')}, got ${JSON.stringify(raw.activation)}`);
  }
  const encoder: StreamingEncoderConfig = {
    nMels: integer('n_mels', 1),
    convChannels: integer('conv_channels', 1),
    dModel: integer('d_model', 1),
    layers: integer('layers', 1),
    heads: integer('heads', 1),
    ffDim: integer('ff_dim', 1),
    vocabSize: integer('vocab_size', 2),
    normEps: positive('norm_eps'),
    activation,
    positions: { kind: 'rotary', theta: positive('rotary_theta') },
  };
  try {
    checkStreamingEncoderConfig(encoder);
  } catch (error) {
    throw bad((error as Error).message);
  }
  const config: SpeechRecognizerConfig = {
    encoder,
    leftContext: integer('left_context', 0),
    sampleRate: integer('sample_rate', 1),
    nFft: integer('n_fft', 4),
    hop: integer('hop', 1),
    chunkFrames: integer('chunk_frames', 1),
    vocabulary: vocabularyOf(raw.vocabulary, encoder.vocabSize, bad),
    lmText: lmTextOf(raw.lm_text, bad),
    ...(raw.ensemble === undefined ? {} : { ensemble: ensembleOf(raw.ensemble, bad) }),
  };
  // The log-mel front end (melFilterBank) is Whisper's: 16 kHz, 80 or 128 bins.
  if (config.sampleRate !== WHISPER_SAMPLE_RATE) {
    throw bad(
      `sample_rate must be ${WHISPER_SAMPLE_RATE} (the log-mel front end's), got ${config.sampleRate}`,
    );
  }
  if (encoder.nMels !== 80 && encoder.nMels !== 128) {
    throw bad(`n_mels must be 80 or 128 (the log-mel front end's), got ${encoder.nMels}`);
  }
  return config;
}

function vocabularyOf(
  value: unknown,
  vocabSize: number,
  bad: (message: string) => InvalidArgumentError,
): string[] {
  if (!Array.isArray(value) || value.some((label) => typeof label !== 'string')) {
    throw bad('vocabulary must be an array of strings (index 0: the CTC blank)');
  }
  if (value.length !== vocabSize) {
    throw bad(`vocabulary has ${value.length} labels but vocab_size is ${vocabSize}`);
  }
  return value as string[];
}

function ensembleOf(value: unknown, bad: (message: string) => InvalidArgumentError): string[] {
  const fileName = (name: unknown) =>
    typeof name === 'string' && name !== '' && !name.includes('/') && !name.includes('\\') && name !== '..';
  if (!Array.isArray(value) || value.length < 2 || !value.every(fileName)) {
    throw bad(`ensemble must list two or more weight files in the folder, got ${JSON.stringify(value)}`);
  }
  if (new Set(value).size !== value.length) {
    throw bad(`ensemble lists a weight file twice: ${JSON.stringify(value)}`);
  }
  return value as string[];
}

function lmTextOf(value: unknown, bad: (message: string) => InvalidArgumentError): string {
  if (value === undefined) return DEFAULT_RECOGNIZER_LM_TEXT;
  if (typeof value !== 'string' || value === '') {
    throw bad(`lm_text must be a file name in the folder, got ${JSON.stringify(value)}`);
  }
  return value;
}
