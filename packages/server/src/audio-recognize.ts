import { AbortError } from '@specstream/core';
import type { CtcDecoder, SpeechRecognizer } from '@specstream/models';
import {
  type AudioSource,
  type CtcFinalEvent,
  type CtcTranscriptEvent,
  ctcTranscription,
  resample,
} from '@specstream/streaming';
import { concatMap, Observable, type Subscription } from 'rxjs';

/**
 * Transcribes decoded audio with the streaming CTC operator: resampled to the recognizer's
 * rate (mono already), `onDelta` (greedy decoding only) called with each piece of new text as
 * the encoder produces it, resolving to the final event (text, words, seconds) of `decoder`. The chunks go in one per event-loop
 * turn, so a long file never holds the loop for more than one encoder call: text requests keep
 * decoding in between. An abort stops the work at once (the operators free their tensors on
 * unsubscribe) and rejects with the signal's reason.
 */
export function recognizeStream(
  recognizer: SpeechRecognizer,
  audio: AudioSource,
  signal: AbortSignal,
  onDelta: ((delta: string) => void) | undefined,
  decoder: CtcDecoder = 'greedy',
): Promise<CtcFinalEvent> {
  const rate = recognizer.config.sampleRate;
  const paced = audio.samples.pipe(concatMap((chunk) => nextTurn(chunk)));
  const samples = audio.sampleRate === rate ? paced : paced.pipe(resample(audio.sampleRate, rate));
  if (onDelta !== undefined && decoder !== 'greedy') {
    throw new Error('recognizeStream: deltas need the greedy decoder (a beam revises its text)');
  }
  const events = samples.pipe(ctcTranscription(recognizer, { decoder }));
  return new Promise<CtcFinalEvent>((resolve, reject) => {
    let sent = '';
    let subscription: Subscription | undefined;
    const stop = () => {
      subscription?.unsubscribe();
      reject(signal.reason ?? new AbortError('the transcription was aborted'));
    };
    const detach = () => signal.removeEventListener('abort', stop);
    if (signal.aborted) {
      stop();
      return;
    }
    signal.addEventListener('abort', stop, { once: true });
    subscription = events.subscribe({
      next(event: CtcTranscriptEvent) {
        // Greedy CTC text is final once emitted: each event's text extends the last one's, so
        // the new part is a delta that needs no revision (deltas are only asked of greedy).
        const delta = event.text.slice(sent.length);
        sent = event.text;
        if (delta !== '') onDelta?.(delta);
        if (event.type === 'final') {
          detach();
          resolve(event);
        }
      },
      error(error) {
        detach();
        reject(error);
      },
    });
  });
}

/** `value` on the next event-loop turn (setImmediate: after pending I/O, unlike a microtask). */
function nextTurn<T>(value: T): Observable<T> {
  return new Observable<T>((subscriber) => {
    const handle = setImmediate(() => {
      subscriber.next(value);
      subscriber.complete();
    });
    return () => clearImmediate(handle);
  });
}
