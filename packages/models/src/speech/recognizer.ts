import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError, readAndDispose } from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { rawLogMelFrames } from '../audio/log-mel.js';
import { openCheckpoint } from '../safetensors/checkpoint.js';
import { createStreamingEncoder, type StreamingEncoder } from '../streaming-encoder/encoder.js';
import { disposeStreamingEncoderWeights } from '../streaming-encoder/weights.js';
import {
  CTC_GREEDY_START,
  type CtcEmissions,
  type CtcWord,
  ctcGreedyChunk,
  ctcText,
  ctcWords,
} from './ctc.js';
import { type SpeechRecognizerConfig, speechRecognizerConfig } from './recognizer-config.js';
import { checkRecognizerTensors, readRecognizerWeights } from './recognizer-weights.js';

/**
 * A streaming CTC speech recognizer: raw log-mel frames (the front end's
 * `rawLogMelFrames(audio, { padTo: false })` or the streaming `logMelFrames`)
 * in, CTC logits out through `encoder`; greedy decoding (ctc.ts) turns them
 * into text. Stream with `encoder.createState({ batch: 1, leftContext:
 * config.leftContext, maxLength })`: the model was trained with that context.
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
 * shapes). Everything is checked before the first tensor is read: a missing
 * folder or config.json, or a bad field, is an InvalidArgumentError naming
 * it; a missing weights file, or a missing, extra, non-float or mis-shaped
 * tensor, a SafetensorsError naming the tensor. A load that fails part-way
 * frees every tensor it had made.
 */
export async function loadSpeechRecognizer(dir: string): Promise<SpeechRecognizer> {
  const config = await readSpeechRecognizerConfig(dir);
  const checkpoint = await openCheckpoint(dir);
  try {
    checkRecognizerTensors(checkpoint, config, dir);
    const weights = await readRecognizerWeights(checkpoint, config);
    let encoder: StreamingEncoder;
    try {
      encoder = createStreamingEncoder(config.encoder, weights);
    } catch (error) {
      // createStreamingEncoder throws before taking the weights.
      disposeStreamingEncoderWeights(weights);
      throw error;
    }
    return {
      config,
      encoder,
      vocabulary: config.vocabulary,
      dispose: () => encoder.dispose(),
    };
  } finally {
    await checkpoint.close();
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

/** Greedy transcript of raw log-mel frames, offline (one encoder pass). */
export async function recognizeLogMel(
  recognizer: SpeechRecognizer,
  frames: Float32Array,
): Promise<CtcTranscript> {
  const logits = await recognizerLogits(recognizer, frames);
  const { emitted } = ctcGreedyChunk(CTC_GREEDY_START, logits, recognizer.config.encoder.vocabSize);
  return transcriptOf(recognizer, emitted);
}

/** Greedy transcript of mono audio at config.sampleRate (16 kHz), offline: its whole log-mel in one pass. */
export async function recognizeAudio(
  recognizer: SpeechRecognizer,
  samples: Float32Array,
): Promise<CtcTranscript> {
  const { nFft, hop, encoder } = recognizer.config;
  return recognizeLogMel(
    recognizer,
    rawLogMelFrames(samples, { padTo: false, nMels: encoder.nMels, nFft, hop }),
  );
}

/** The text and words of what a greedy decode emitted. */
export function transcriptOf(recognizer: SpeechRecognizer, emissions: CtcEmissions): CtcTranscript {
  const { vocabulary, config } = recognizer;
  return {
    text: ctcText(emissions.labels, vocabulary),
    emissions,
    words: ctcWords(emissions, vocabulary, config),
  };
}
