import { join } from 'node:path';
import { InvalidArgumentError, type KvCacheKind } from '@specstream/core';
import { readHfConfig } from '../load-model.js';
import { checkSynthesizerConfig, type ReferenceSynthesizerConfig } from '../synthesizer/config.js';
import type { GriffinLimOptions } from '../synthesizer/griffin-lim.js';

export const SPEECH_SYNTHESIZER_MODEL_TYPE = 'specstream-synthesizer';

/**
 * A speech synthesizer folder's config.json (written by tools/train/train_speech.py): the
 * reference synthesizer's shape in snake_case, plus the front end the frames belong to.
 */
export interface SpeechSynthesizerConfig {
  /** The model, as createReferenceSynthesizer takes it. */
  model: ReferenceSynthesizerConfig;
  /** Text id i is symbols[i]; id 0 is padding (never produced from text), every other one a character. */
  symbols: readonly string[];
  /** The Griffin-Lim vocoder that turns the frames back into audio. */
  vocoder: GriffinLimOptions;
  /** The floor of the training targets' mel power: log10(melFloor) is silence to this model. */
  melFloor: number;
}

/** Reads and checks `dir/config.json` before any weight is read, naming the file and field at fault. */
export async function readSpeechSynthesizerConfig(
  dir: string,
  kvCache?: KvCacheKind,
): Promise<SpeechSynthesizerConfig> {
  const path = join(dir, 'config.json');
  const raw = (await readHfConfig(dir)) as unknown as Record<string, unknown>;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new InvalidArgumentError(`${path} is not a JSON object`);
  }
  if (raw.model_type !== SPEECH_SYNTHESIZER_MODEL_TYPE) {
    throw new InvalidArgumentError(
      `${path} holds a ${JSON.stringify(raw.model_type ?? '(no model_type)')} model, not ${SPEECH_SYNTHESIZER_MODEL_TYPE}`,
    );
  }
  try {
    return speechSynthesizerConfig(raw, kvCache);
  } catch (error) {
    if (error instanceof InvalidArgumentError) throw new InvalidArgumentError(`${path}: ${error.message}`);
    throw error;
  }
}

/** config.json's fields → the model's, the vocoder's and the symbols; throws InvalidArgumentError. */
export function speechSynthesizerConfig(
  raw: Record<string, unknown>,
  kvCache?: KvCacheKind,
): SpeechSynthesizerConfig {
  const num = (key: string): number => {
    const value = raw[key];
    if (typeof value !== 'number')
      throw new InvalidArgumentError(`${key} must be a number, got ${show(value)}`);
    return value;
  };
  const model: ReferenceSynthesizerConfig = {
    vocabSize: num('vocab_size'),
    hiddenSize: num('hidden_size'),
    heads: num('heads'),
    textLayers: num('text_layers'),
    decoderLayers: num('decoder_layers'),
    ffSize: num('ff_size'),
    prenetSize: num('prenet_size'),
    nMels: num('n_mels'),
    framesPerStep: num('frames_per_step'),
    sampleRate: num('sample_rate'),
    hop: num('hop'),
    textLookahead: num('text_lookahead'),
    textTokensPerStep: num('text_tokens_per_step'),
    stopThreshold: num('stop_threshold'),
    maxTextTokens: num('max_text_tokens'),
    normEps: num('norm_eps'),
    rotaryTheta: num('rotary_theta'),
    ...(kvCache === undefined ? {} : { kvCache }),
  };
  checkSynthesizerConfig(model);
  const melFloor = num('mel_floor');
  if (!(melFloor > 0)) throw new InvalidArgumentError(`mel_floor must be positive, got ${melFloor}`);
  const symbols = checkSymbols(raw.symbols, model.vocabSize);
  const vocoderFields = raw.vocoder as Record<string, unknown> | undefined;
  if (typeof vocoderFields !== 'object' || vocoderFields === null) {
    throw new InvalidArgumentError(
      `vocoder must be an object { iterations, lookahead }, got ${show(vocoderFields)}`,
    );
  }
  const vocoderNumber = (key: string): number => {
    const value = vocoderFields[key];
    if (typeof value !== 'number') {
      throw new InvalidArgumentError(`vocoder.${key} must be a number, got ${show(value)}`);
    }
    return value;
  };
  const vocoder: GriffinLimOptions = {
    sampleRate: model.sampleRate,
    nFft: num('n_fft'),
    hop: model.hop,
    nMels: model.nMels,
    iterations: vocoderNumber('iterations'),
    lookahead: vocoderNumber('lookahead'),
    // The mel bank the training targets were analysed with (speech_models.mel_filters).
    minHz: 0,
    maxHz: Math.min(8000, model.sampleRate / 2),
  };
  return { model, symbols, vocoder, melFloor };
}

/** One string per id: id 0 the padding, the others single characters, no two alike. */
function checkSymbols(value: unknown, vocabSize: number): string[] {
  if (!Array.isArray(value) || value.some((s) => typeof s !== 'string')) {
    throw new InvalidArgumentError(`symbols must be an array of strings, got ${show(value)}`);
  }
  if (value.length !== vocabSize) {
    throw new InvalidArgumentError(`symbols has ${value.length} entries, vocab_size is ${vocabSize}`);
  }
  const seen = new Set<string>();
  value.forEach((symbol: string, id) => {
    if (id > 0 && [...symbol].length !== 1) {
      throw new InvalidArgumentError(`symbol ${id} must be one character, got ${JSON.stringify(symbol)}`);
    }
    if (seen.has(symbol)) throw new InvalidArgumentError(`symbol ${JSON.stringify(symbol)} appears twice`);
    seen.add(symbol);
  });
  return value;
}

function show(value: unknown): string {
  return value === undefined ? 'nothing' : JSON.stringify(value);
}
