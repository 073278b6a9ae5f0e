import { checkPositiveInteger } from '@specstream/core';
import {
  CTC_GREEDY_START,
  type CtcEmissions,
  type CtcWord,
  ctcGreedyChunk,
  ctcText,
  ctcWords,
  type SpeechRecognizer,
} from '@specstream/models';
import { Observable, type OperatorFunction, tap } from 'rxjs';
import { streamingEncode } from './encode.js';
import { logMelFrames } from './log-mel-frames.js';

/** The transcript so far, after each encoder call. */
export interface CtcPartialEvent {
  type: 'partial';
  /** Everything recognised from the start of the stream (CTC text is final once emitted). */
  text: string;
  /** Seconds of audio the encoder has consumed (its input frames × hop). */
  audioSeconds: number;
  /** Ms from the arrival of the audio that completed the encoder's chunk to this event (see EncodedChunk.latencyMs). */
  latencyMs: number;
}

/** The whole transcript, once the audio has ended. */
export interface CtcFinalEvent {
  type: 'final';
  text: string;
  words: CtcWord[];
  /** Seconds of audio received. */
  audioSeconds: number;
}

export type CtcTranscriptEvent = CtcPartialEvent | CtcFinalEvent;

export interface CtcTranscriptionOptions {
  /** Log-mel frames per encoder call (10 ms each at a 160-sample hop); default: the model's config.chunkFrames. */
  chunkFrames?: number;
}

/**
 * Streaming speech recognition with a CTC recognizer (models'
 * loadSpeechRecognizer): mono Float32 samples at the model's rate (16 kHz;
 * resample first) → a 'partial' event per encoder call (every
 * `chunkFrames` log-mel frames), then one 'final' event with word times at
 * completion. Built from logMelFrames and streamingEncode, with greedy CTC
 * decoding carried across chunks: the text depends only on the audio, not
 * on how it was chunked or timed, and equals models' offline
 * recognizeAudio (one encoder pass over all frames) up to argmax ties that
 * float rounding could flip. Every tensor (states, inputs, outputs) is
 * freed by completion, error or unsubscription.
 */
export function ctcTranscription(
  recognizer: SpeechRecognizer,
  options: CtcTranscriptionOptions = {},
): OperatorFunction<Float32Array, CtcTranscriptEvent> {
  const { config, encoder, vocabulary } = recognizer;
  const { chunkFrames = config.chunkFrames } = options;
  checkPositiveInteger('ctcTranscription: chunkFrames', chunkFrames);
  const { hop, sampleRate, nFft, leftContext } = config;
  const framing = { nMels: config.encoder.nMels, nFft, hop };
  return (source) =>
    new Observable<CtcTranscriptEvent>((subscriber) => {
      let samples = 0;
      let decoder = CTC_GREEDY_START;
      let text = '';
      const emissions: CtcEmissions = { labels: [], frames: [] };
      const logits = source.pipe(
        tap((chunk) => {
          samples += chunk.length;
        }),
        logMelFrames(framing),
        streamingEncode(encoder, { chunkFrames, leftContext }),
      );
      return logits.subscribe({
        next(chunk) {
          const step = ctcGreedyChunk(decoder, chunk.frames, chunk.outputDim);
          decoder = step.state;
          emissions.labels.push(...step.emitted.labels);
          emissions.frames.push(...step.emitted.frames);
          text += ctcText(step.emitted.labels, vocabulary);
          subscriber.next({
            type: 'partial',
            text,
            audioSeconds: (chunk.inputEnd * hop) / sampleRate,
            latencyMs: chunk.latencyMs,
          });
        },
        error: (error) => subscriber.error(error),
        complete() {
          const words = ctcWords(emissions, vocabulary, config);
          subscriber.next({ type: 'final', text, words, audioSeconds: samples / sampleRate });
          subscriber.complete();
        },
      });
    });
}
