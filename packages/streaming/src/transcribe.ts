import { InvalidArgumentError } from '@specstream/core';
import { Observable, type OperatorFunction } from 'rxjs';
import { createLocalAgreement } from './local-agreement.js';

/** Anything that turns a buffer of 16 kHz audio into token ids (Whisper: see whisperTranscriber). */
export type Transcriber = (audio: Float32Array) => Promise<number[]>;

export interface TranscriptEvent {
  /** 'committed': final tokens, appended to everything committed before; 'partial': the current uncommitted guess. */
  type: 'committed' | 'partial';
  tokens: number[];
  /** Text of `tokens` when a decode function is given. */
  text?: string;
  /** Seconds of audio received when this hypothesis was made. */
  audioSeconds: number;
  /** Seconds of audio dropped so far by the lossy mode (0 when lossless). */
  droppedSeconds: number;
}

export interface StreamingTranscriptionOptions {
  sampleRate?: number;
  /** Transcribe again once this much new audio has arrived (default 1 s). */
  stepSeconds?: number;
  /** When the buffer grows past this, its committed head is cut off (default 20 s). */
  maxBufferSeconds?: number;
  /** Committed audio kept before the estimated commit point when cutting (default 2 s). */
  keepSeconds?: number;
  /** The buffer never exceeds this, even if nothing was committed (default 29 s; Whisper sees ≤ 30 s). */
  hardLimitSeconds?: number;
  /**
   * Lossy mode for live sources: when more than this much audio waits behind a
   * running transcription, the oldest waiting audio is dropped so partials stay
   * close to real time. Default Infinity: lossless.
   */
  maxQueuedSeconds?: number;
  decode?: (ids: number[]) => string;
}

/**
 * Streaming transcription of long audio with LocalAgreement-2: every
 * `stepSeconds` of new audio the whole buffer is transcribed again; tokens
 * two consecutive hypotheses agree on are committed, the rest is emitted as
 * a partial. Buffer trimming: without word timestamps the cut point is
 * estimated (see trim below) and the re-transcribed head of the next
 * hypotheses is matched against the committed tail (see createLocalAgreement). At the end of the audio, the
 * last hypothesis over the final buffer is committed whole. Transcriber calls
 * run one at a time, in order; audio arriving meanwhile is queued (lossless)
 * and enters the buffer one step at a time, so the transcript depends only on
 * the audio, never on arrival timing or chunking.
 */
export function streamingTranscription(
  transcribe: Transcriber,
  options: StreamingTranscriptionOptions = {},
): OperatorFunction<Float32Array, TranscriptEvent> {
  const rate = options.sampleRate ?? 16000;
  const step = Math.round((options.stepSeconds ?? 1) * rate);
  const maxBuffer = Math.round((options.maxBufferSeconds ?? 20) * rate);
  const keep = Math.round((options.keepSeconds ?? 2) * rate);
  const hardLimit = Math.round((options.hardLimitSeconds ?? 29) * rate);
  const maxQueued = (options.maxQueuedSeconds ?? Number.POSITIVE_INFINITY) * rate;
  if (!(step > 0 && keep > 0 && keep < maxBuffer)) {
    throw new InvalidArgumentError(
      `streamingTranscription needs stepSeconds > 0 and 0 < keepSeconds < maxBufferSeconds, got ${JSON.stringify(options)}`,
    );
  }
  return (source) =>
    new Observable<TranscriptEvent>((subscriber) => {
      const agreement = createLocalAgreement();
      // Audio waits in `queued` and enters the buffer `step` samples per hypothesis, so the
      // hypotheses depend only on the audio, not on how fast or in what chunks it arrived.
      const queued: Float32Array[] = [];
      let queuedSamples = 0;
      let buffer = new Float32Array(0);
      let consumed = 0;
      let dropped = 0;
      let ended = false;
      let running = false;
      const event = (type: TranscriptEvent['type'], tokens: number[]): TranscriptEvent => ({
        type,
        tokens,
        text: options.decode?.(tokens),
        audioSeconds: consumed / rate,
        droppedSeconds: dropped / rate,
      });

      /** Drops the oldest `count` queued samples (lossy mode). */
      function skip(count: number): void {
        let left = count;
        while (left > 0) {
          const head = queued[0];
          const n = Math.min(head.length, left);
          if (n === head.length) queued.shift();
          else queued[0] = head.subarray(n);
          left -= n;
        }
        queuedSamples -= count;
        consumed += count;
        dropped += count;
      }

      function take(count: number): void {
        const grown = new Float32Array(buffer.length + count);
        grown.set(buffer);
        let at = buffer.length;
        while (at < grown.length) {
          const head = queued[0];
          const n = Math.min(head.length, grown.length - at);
          grown.set(head.subarray(0, n), at);
          at += n;
          if (n === head.length) queued.shift();
          else queued[0] = head.subarray(n);
        }
        queuedSamples -= count;
        consumed += count;
        buffer = grown;
      }

      let lastHypothesis = 0;
      /**
       * Cuts committed audio off the buffer's head. Without timestamps, the audio
       * position of the commit point is estimated from the share of the hypothesis
       * that is committed (speech rate assumed even), and `keep` more seconds are
       * kept before it so the cut never reaches uncommitted speech. With nothing
       * committed the buffer keeps growing, up to Whisper's 30 s, where its oldest
       * audio must go.
       */
      function trim(): void {
        const done = agreement.committedInBuffer;
        let cut =
          done === undefined || lastHypothesis === 0
            ? 0
            : Math.floor((buffer.length * done) / lastHypothesis) - keep;
        if (buffer.length - Math.max(cut, 0) > hardLimit) cut = buffer.length - hardLimit;
        if (cut <= 0) return;
        buffer = buffer.slice(cut);
        agreement.trimmed();
      }

      async function pump(): Promise<void> {
        running = true;
        try {
          while (!subscriber.closed && (queuedSamples >= step || (ended && queuedSamples > 0))) {
            take(Math.min(step, queuedSamples));
            const isLast = ended && queuedSamples === 0;
            const hypothesis = await transcribe(buffer);
            if (subscriber.closed) return;
            const { committed, partial } = agreement.update(hypothesis);
            lastHypothesis = hypothesis.length;
            if (committed.length > 0) subscriber.next(event('committed', committed));
            if (isLast) break;
            subscriber.next(event('partial', partial));
            if (buffer.length > maxBuffer) trim();
          }
          if (ended && queuedSamples === 0 && !subscriber.closed) {
            const rest = agreement.finish();
            if (rest.length > 0) subscriber.next(event('committed', rest));
            subscriber.complete();
          }
        } catch (error) {
          subscriber.error(error);
        } finally {
          running = false;
        }
      }

      const subscription = source.subscribe({
        next(chunk) {
          if (chunk.length === 0) return;
          queued.push(chunk);
          queuedSamples += chunk.length;
          if (queuedSamples > maxQueued) skip(Math.floor(queuedSamples - maxQueued));
          if (!running) void pump();
        },
        error: (e) => subscriber.error(e),
        complete() {
          ended = true;
          if (!running) void pump();
        },
      });
      return () => subscription.unsubscribe();
    });
}
