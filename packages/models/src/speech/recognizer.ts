import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError, readAndDispose } from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { rawLogMelFrames } from '../audio/log-mel.js';
import { assertFiniteSamples, assertReflectable } from '../audio/options.js';
import { type Checkpoint, openCheckpoint } from '../safetensors/checkpoint.js';
import { createStreamingEncoder, type StreamingEncoder } from '../streaming-encoder/encoder.js';
import { ensembleStreamingEncoder } from '../streaming-encoder/ensemble.js';
import { disposeStreamingEncoderWeights } from '../streaming-encoder/weights.js';
import { type CharNgramLm, type CharNgramLmOptions, loadCharNgramLm } from './char-ngram-lm.js';
import { type CtcEmissions, type CtcWord, clampWordTimes, ctcText, ctcWords } from './ctc.js';
import { type CtcDecoder, startCtcDecoding } from './ctc-beam.js';
import { type SpeechRecognizerConfig, speechRecognizerConfig } from './recognizer-config.js';
import { checkRecognizerTensors, readRecognizerWeights } from './recognizer-weights.js';
import { RECOGNIZER_TAIL_PADDING_SECONDS, withTailPadding } from './tail-padding.js';

/**
 * A streaming CTC speech recognizer: raw log-mel frames (the front end's
 * `rawLogMelFrames(audio, { padTo: false })` or the streaming `logMelFrames`)
 * in, CTC logits out through `encoder`; greedy decoding (ctc.ts) or a beam
 * search (ctc-beam.ts) turns them into text. Stream with
 * `encoder.createState({ batch: 1, leftContext: config.leftContext, maxLength })`:
 * the model was trained with that context.
 */
export interface SpeechRecognizer {
  readonly config: SpeechRecognizerConfig;
  readonly encoder: StreamingEncoder;
  /** config.vocabulary: the text of each label, index 0 the blank. */
  readonly vocabulary: readonly string[];
  /** Frees the weights. States must be disposed by their owners. */
  dispose(): void;
}

/** A transcript: its text, the labels it came from and its words with their times. */
export interface CtcTranscript {
  text: string;
  emissions: CtcEmissions;
  words: CtcWord[];
}

/**
 * Loads a recognizer folder: config.json (model_type "specstream-ctc") and
 * model.safetensors (F32 or F16, CtcRecognizer.export_state()'s names and
 * shapes), or the weight files config.json's `ensemble` lists, run as one
 * (ensembleStreamingEncoder). Everything is checked before the first tensor is read: a missing
 * folder or config.json, or a bad field, is an InvalidArgumentError naming
 * it; a missing weights file, or a missing, extra, non-float or mis-shaped
 * tensor, a SafetensorsError naming the tensor. A load that fails part-way
 * frees every tensor it had made.
 */
export async function loadSpeechRecognizer(
  dir: string,
  options: LoadSpeechRecognizerOptions = {},
): Promise<SpeechRecognizer> {
  const config = await readSpeechRecognizerConfig(dir);
  if (options.member !== undefined && !(config.ensemble ?? []).includes(options.member)) {
    throw new InvalidArgumentError(
      `speech recognizer folder ${dir} has no ensemble member ${JSON.stringify(options.member)} (config.json's ensemble: ${JSON.stringify(config.ensemble ?? [])})`,
    );
  }
  const files = options.member !== undefined ? [options.member] : config.ensemble;
  const locations = files?.map((file) => join(dir, file)) ?? [dir];
  const checkpoints: Checkpoint[] = [];
  try {
    for (const location of locations) {
      if (files !== undefined && !(await stat(location).catch(() => undefined))?.isFile()) {
        throw new InvalidArgumentError(
          `speech recognizer folder ${dir}: ensemble member ${location} is not a file (config.json's ensemble)`,
        );
      }
      const checkpoint = await openCheckpoint(location);
      checkpoints.push(checkpoint);
      checkRecognizerTensors(checkpoint, config, location);
    }
    const members: StreamingEncoder[] = [];
    try {
      for (const checkpoint of checkpoints)
        members.push(encoderOf(await readRecognizerWeights(checkpoint, config), config));
      const encoder = members.length === 1 ? members[0] : ensembleStreamingEncoder(members);
      return { config, encoder, vocabulary: config.vocabulary, dispose: () => encoder.dispose() };
    } catch (error) {
      for (const member of members) member.dispose();
      throw error;
    }
  } finally {
    await Promise.all(checkpoints.map((checkpoint) => checkpoint.close()));
  }
}

export interface LoadSpeechRecognizerOptions {
  /** One weight file of config.json's ensemble, loaded alone (to check or compare the members). */
  member?: string;
}

function encoderOf(
  weights: Awaited<ReturnType<typeof readRecognizerWeights>>,
  config: SpeechRecognizerConfig,
) {
  try {
    return createStreamingEncoder(config.encoder, weights);
  } catch (error) {
    // createStreamingEncoder throws before taking the weights.
    disposeStreamingEncoderWeights(weights);
    throw error;
  }
}

/** A recognizer folder's config.json, checked (see loadSpeechRecognizer). */
export async function readSpeechRecognizerConfig(dir: string): Promise<SpeechRecognizerConfig> {
  const info = await stat(dir).catch(() => undefined);
  if (info === undefined) throw new InvalidArgumentError(`speech recognizer folder ${dir} does not exist`);
  if (!info.isDirectory()) throw new InvalidArgumentError(`speech recognizer folder ${dir} is not a folder`);
  const path = join(dir, 'config.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new InvalidArgumentError(`speech recognizer folder ${dir} has no config.json`);
    }
    throw error;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new InvalidArgumentError(`${path} is not valid JSON (${(error as Error).message})`);
  }
  return speechRecognizerConfig(json, path);
}

/**
 * The CTC logits of raw log-mel `frames` ([frames × nMels], frame-major) in
 * one encoder pass, [outputFrames × vocabSize]: the offline reference a
 * stream of the same frames reproduces.
 */
export async function recognizerLogits(
  recognizer: SpeechRecognizer,
  frames: Float32Array,
): Promise<Float32Array> {
  const { nMels } = recognizer.config.encoder;
  const count = frames.length / nMels;
  if (!Number.isInteger(count)) {
    throw new InvalidArgumentError(
      `log-mel frames must be a multiple of ${nMels} values, got ${frames.length}`,
    );
  }
  if (count === 0) return new Float32Array(0);
  const { encoder } = recognizer;
  const state = encoder.createState({
    batch: 1,
    maxLength: count,
    leftContext: recognizer.config.leftContext,
  });
  try {
    const input = tf.tensor3d(frames, [1, count, nMels]);
    try {
      return (await readAndDispose(encoder.extendStep(state, input).outputs)) as Float32Array;
    } finally {
      input.dispose();
    }
  } finally {
    encoder.disposeState(state);
  }
}

export interface RecognizeOptions {
  /** How the logits become labels (default 'greedy'; see ctc-beam.ts for the beam search). */
  decoder?: CtcDecoder;
}

/** Transcript of raw log-mel frames, offline (one encoder pass). */
export async function recognizeLogMel(
  recognizer: SpeechRecognizer,
  frames: Float32Array,
  options: RecognizeOptions = {},
): Promise<CtcTranscript> {
  const logits = await recognizerLogits(recognizer, frames);
  const decoding = startCtcDecoding(options.decoder ?? 'greedy', recognizer.config.encoder.vocabSize);
  decoding.push(logits);
  return transcriptOf(recognizer, decoding.finish());
}

export interface RecognizeAudioOptions extends RecognizeOptions {
  /** Seconds of faint noise appended before the log-mel (default RECOGNIZER_TAIL_PADDING_SECONDS; see tail-padding.ts). */
  tailPaddingSeconds?: number;
}

/**
 * Transcript of mono audio at config.sampleRate (16 kHz), offline: its whole log-mel in one pass,
 * after the tail padding that lets the causal encoder emit the last word (word times end at the
 * audio's end at the latest).
 */
export async function recognizeAudio(
  recognizer: SpeechRecognizer,
  samples: Float32Array,
  options: RecognizeAudioOptions = {},
): Promise<CtcTranscript> {
  const { nFft, hop, encoder, sampleRate } = recognizer.config;
  const { tailPaddingSeconds = RECOGNIZER_TAIL_PADDING_SECONDS, ...rest } = options;
  // Audio too short for a frame of its own is refused before any padding, as a stream refuses it.
  assertFiniteSamples(samples, 'audio');
  assertReflectable(samples.length, nFft, 'audio');
  const padded = withTailPadding(samples, tailPaddingSeconds, sampleRate);
  const frames = rawLogMelFrames(padded, { padTo: false, nMels: encoder.nMels, nFft, hop });
  const transcript = await recognizeLogMel(recognizer, frames, rest);
  return { ...transcript, words: clampWordTimes(transcript.words, samples.length / sampleRate) };
}

/**
 * The character LM of a recognizer folder, for beam search: trained now (~0.75 s, order 8, the shipped 1.18 MB) on the text
 * config.json's lm_text names (default lm-text.txt); undefined when the folder has no such file.
 */
export async function loadSpeechRecognizerLm(
  dir: string,
  config: SpeechRecognizerConfig,
  options: CharNgramLmOptions = {},
): Promise<CharNgramLm | undefined> {
  const path = join(dir, config.lmText);
  if (!(await stat(path).catch(() => undefined))?.isFile()) return undefined;
  return loadCharNgramLm(path, config.vocabulary, options);
}

/** The text and words of what a decoder emitted. */
export function transcriptOf(recognizer: SpeechRecognizer, emissions: CtcEmissions): CtcTranscript {
  const { vocabulary, config } = recognizer;
  return {
    text: ctcText(emissions.labels, vocabulary),
    emissions,
    words: ctcWords(emissions, vocabulary, config),
  };
}
