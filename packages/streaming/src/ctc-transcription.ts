import { checkPositiveInteger } from '@specstream/core';
import {
  assertReflectable,
  type CtcDecoder,
  type CtcWord,
  clampWordTimes,
  ctcText,
  ctcWords,
  RECOGNIZER_TAIL_PADDING_SECONDS,
  type SpeechRecognizer,
  startCtcDecoding,
  tailPadding,
} from '@specstream/models';
import { concat, defer, EMPTY, Observable, type OperatorFunction, of, tap } from 'rxjs';
import { streamingEncode } from './encode.js';
import { logMelFrames } from './log-mel-frames.js';

/** The transcript so far, after each encoder call. */
export interface CtcPartialEvent {
  type: 'partial';
  /**
   * Everything recognised from the start of the stream: greedy text is final once emitted; a
   * beam search's is its best guess so far, which later audio may revise.
   */
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
  /** How the logits become text (default 'greedy'; a beam search, with a character LM or not: models' CtcBeamSettings). */
  decoder?: CtcDecoder;
  /**
   * Seconds of faint noise fed in after the audio ends, so the causal encoder can emit the last
   * word (default models' RECOGNIZER_TAIL_PADDING_SECONDS; the same padding recognizeAudio adds).
   */
  tailPaddingSeconds?: number;
}

/**
 * Streaming speech recognition with a CTC recognizer (models'
 * loadSpeechRecognizer): mono Float32 samples at the model's rate (16 kHz;
 * resample first) → a 'partial' event per encoder call (every
 * `chunkFrames` log-mel frames), then one 'final' event with word times at
 * completion (after the tail padding, faint noise that lets the causal encoder
 * emit the last word; its frames count as no received audio, and word times
 * end at the audio's end). Built from logMelFrames and streamingEncode, with CTC
 * decoding (greedy or beam) carried across chunks: the text depends only on
 * the audio, not on how it was chunked or timed, and equals models' offline
 * recognizeAudio with the same decoder (one encoder pass over all frames)
 * up to near-ties that float rounding could flip. Every tensor (states,
 * inputs, outputs) is freed by completion, error or unsubscription.
 */
export function ctcTranscription(
  recognizer: SpeechRecognizer,
  options: CtcTranscriptionOptions = {},
): OperatorFunction<Float32Array, CtcTranscriptEvent> {
  const { config, encoder, vocabulary } = recognizer;
  const { chunkFrames = config.chunkFrames, decoder = 'greedy' } = options;
  checkPositiveInteger('ctcTranscription: chunkFrames', chunkFrames);
  const { tailPaddingSeconds = RECOGNIZER_TAIL_PADDING_SECONDS } = options;
  const padding = tailPadding(tailPaddingSeconds, config.sampleRate);
  // Checks the decoder's settings now rather than at subscription.
  startCtcDecoding(decoder, config.encoder.vocabSize);
  const { hop, sampleRate, nFft, leftContext } = config;
  const framing = { nMels: config.encoder.nMels, nFft, hop };
  return (source) =>
    new Observable<CtcTranscriptEvent>((subscriber) => {
      let samples = 0;
      const decoding = startCtcDecoding(decoder, config.encoder.vocabSize);
      const logits = source.pipe(
        tap((chunk) => {
          samples += chunk.length;
        }),
        // Audio too short for a frame of its own is refused, as offline, before any padding.
        (audio) =>
          concat(
            audio,
            defer(() => {
              assertReflectable(samples, nFft, 'streamed audio');
              return padding.length > 0 ? of(padding) : EMPTY;
            }),
          ),
        logMelFrames(framing),
        streamingEncode(encoder, { chunkFrames, leftContext }),
      );
      return logits.subscribe({
        next(chunk) {
          decoding.push(chunk.frames);
          subscriber.next({
            type: 'partial',
            text: ctcText(decoding.best().labels, vocabulary),
            // The padding's frames are not audio that was received.
            audioSeconds: Math.min(chunk.inputEnd * hop, samples) / sampleRate,
            latencyMs: chunk.latencyMs,
          });
        },
        error: (error) => subscriber.error(error),
        complete() {
          const emissions = decoding.finish();
          const text = ctcText(emissions.labels, vocabulary);
          const audioSeconds = samples / sampleRate;
          // Letters emitted during the tail padding belong to the audio's last sound.
          const words = clampWordTimes(ctcWords(emissions, vocabulary, config), audioSeconds);
          subscriber.next({ type: 'final', text, words, audioSeconds });
          subscriber.complete();
        },
      });
    });
}
