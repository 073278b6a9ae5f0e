import { AbortError, InvalidArgumentError } from '@specstream/core';
import { createIncrementalNormalizer, type SpeechSynthesizer } from '@specstream/models';
import { Observable, type OperatorFunction, Subject, type Subscription } from 'rxjs';
import { type AudioChunk, type StreamingSynthesizeOptions, streamingSynthesize } from './synthesize.js';

// Exported with speakText (one line in the package index): the file sink its audio usually goes to.
export { type WavFileProgress, wavFileStream } from './wav-file-stream.js';

/**
 * Text as an LM produces it (pieces of any size, a word or a number split across them) → audio
 * as it is produced. Each piece goes through the incremental normaliser, which settles the
 * spoken text up to the last word boundary (so "1,2" + "34 items" is read as one number), the
 * settled text is mapped to the model's symbols and fed to `streamingSynthesize`, so speech
 * starts while the text is still being written. When the text completes, its rest is settled
 * and the synthesizer runs until the model stops (or `maxFrames`).
 *
 * The concatenated audio equals @specstream/models' synthesizeSpeech of the whole text, bit
 * for bit: the settled pieces join to its normalised form exactly, and the text is encoded one
 * id per appendText (`textChunkTokens` 1 unless set, as synthesizeSpeech does), so the frames do
 * not depend on when the text arrived. A text with nothing to say (no letters or digits) completes with no audio. The
 * synthesizer and vocoder states are disposed on completion, error and unsubscription.
 */
export interface SpeakTextOptions extends StreamingSynthesizeOptions {
  /**
   * Stops speaking (the stream errors with the signal's reason, the states are freed): for a
   * Ctrl-C that must also stop the synthesis of text that has already ended.
   */
  signal?: AbortSignal;
}

export function speakText(
  speech: SpeechSynthesizer,
  options: SpeakTextOptions,
): OperatorFunction<string, AudioChunk> {
  // Checks the options (and the model/vocoder pairing) now, not at the first text.
  const { signal, ...synthesizeOptions } = options;
  const synthesize = streamingSynthesize(speech.synthesizer, speech.vocoder, {
    ...synthesizeOptions,
    textChunkTokens: options.textChunkTokens ?? 1,
  });
  return (source) =>
    new Observable<AudioChunk>((subscriber) => {
      const abort = () => subscriber.error(signal?.reason ?? new AbortError('speakText was aborted'));
      if (signal?.aborted) {
        abort();
        return;
      }
      signal?.addEventListener('abort', abort);
      const normalizer = createIncrementalNormalizer();
      const ids = new Subject<number[]>();
      // Started by the first symbol: a text with none never creates a synthesizer state.
      let audio: Subscription | undefined;
      const feed = (spoken: string) => {
        const piece = speech.symbolIds(spoken);
        if (piece.length === 0) return;
        audio ??= ids.pipe(synthesize).subscribe({
          next: (chunk) => subscriber.next(chunk),
          error: (error) => subscriber.error(error),
          complete: () => subscriber.complete(),
        });
        ids.next(piece);
      };
      const text = source.subscribe({
        next(delta) {
          if (typeof delta !== 'string') {
            subscriber.error(
              new InvalidArgumentError(`each notification must be a string, got ${typeof delta}`),
            );
            return;
          }
          feed(normalizer.push(delta));
        },
        error: (error) => subscriber.error(error),
        complete() {
          feed(normalizer.end());
          if (audio === undefined) subscriber.complete();
          else ids.complete();
        },
      });
      return () => {
        signal?.removeEventListener('abort', abort);
        text.unsubscribe();
        audio?.unsubscribe();
      };
    });
}

/** Text pushed by calls, as an Observable: for producers that are callbacks (an LM loop) rather than Observables. */
export interface TextFeed {
  /** Hot: text written before anything subscribes to it is lost. */
  readonly text: Observable<string>;
  write(text: string): void;
  /** No more text. */
  end(): void;
  /** The producer failed: the text errors with `error`. */
  fail(error: unknown): void;
}

export function createTextFeed(): TextFeed {
  const subject = new Subject<string>();
  return {
    text: subject.asObservable(),
    write: (text) => subject.next(text),
    end: () => subject.complete(),
    fail: (error) => subject.error(error),
  };
}
