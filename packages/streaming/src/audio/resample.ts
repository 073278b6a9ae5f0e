import { InvalidArgumentError } from '@specstream/core';
import { Observable, type OperatorFunction } from 'rxjs';
import { isSampleChunk } from './audio-source.js';
import { type ResampleQuality, SampleRateConverter } from './sample-rate-converter.js';

export interface ResampleOptions {
  /** libsamplerate sinc converter. Default 'medium' (~90× real time for 44.1 kHz → 16 kHz on one core). */
  quality?: ResampleQuality;
}

const where = 'resample';
/** libsamplerate-js accepts integer rates in [1, 192000]. */
const MAX_RATE = 192_000;
/** libsamplerate converts only within this ratio range. */
const MAX_RATIO = 256;

/**
 * Operator: mono samples at `fromRate` → mono samples at `toRate`, with
 * libsamplerate's streaming ("full") API, so chunk boundaries do not change
 * the result. Output chunks follow input chunks (empty ones are skipped);
 * at completion the filter's tail is flushed so n input samples become
 * round(n · toRate / fromRate) output samples. Identity when the rates match.
 *
 * The converter is created asynchronously (WASM instantiation): input that
 * arrives meanwhile is queued, not lost. It is destroyed on complete, error
 * and unsubscribe; each subscription gets its own.
 */
export function resample(
  fromRate: number,
  toRate: number,
  options: ResampleOptions = {},
): OperatorFunction<Float32Array, Float32Array> {
  for (const [name, rate] of [
    ['fromRate', fromRate],
    ['toRate', toRate],
  ] as const) {
    if (!Number.isInteger(rate) || rate < 1 || rate > MAX_RATE) {
      throw new InvalidArgumentError(
        `${where}: ${name} must be an integer in [1, ${MAX_RATE}] Hz, got ${rate}`,
      );
    }
  }
  if (toRate / fromRate > MAX_RATIO || fromRate / toRate > MAX_RATIO) {
    throw new InvalidArgumentError(
      `${where}: ${fromRate} → ${toRate} Hz is beyond libsamplerate's ratio range [1/${MAX_RATIO}, ${MAX_RATIO}]`,
    );
  }
  const { quality = 'medium' } = options;
  if (quality !== 'best' && quality !== 'medium' && quality !== 'fastest') {
    throw new InvalidArgumentError(
      `${where}: quality must be 'best', 'medium' or 'fastest', got ${String(quality)}`,
    );
  }
  if (fromRate === toRate) return (source) => source;

  return (source) =>
    new Observable<Float32Array>((subscriber) => {
      let converter: SampleRateConverter | undefined;
      // Input that arrived before the converter was ready, and whether the input already completed.
      const queued: Float32Array[] = [];
      let inputComplete = false;

      const feed = (chunk: Float32Array) => {
        // A downstream take(n) may have unsubscribed (destroying the converter) mid-queue.
        if (subscriber.closed) return;
        const out = converter!.process(chunk);
        if (out.length > 0) subscriber.next(out);
      };
      const finish = () => {
        if (subscriber.closed) return;
        const tail = converter!.flush();
        if (tail.length > 0) subscriber.next(tail);
        subscriber.complete();
      };
      // Converter errors (thrown inside next/complete handlers) must reach the subscriber.
      const guarded = (step: () => void) => {
        try {
          step();
        } catch (error) {
          subscriber.error(error);
        }
      };

      SampleRateConverter.create(fromRate, toRate, quality).then(
        (created) => {
          if (subscriber.closed) {
            created.destroy();
            return;
          }
          converter = created;
          guarded(() => {
            for (const chunk of queued.splice(0)) feed(chunk);
            if (inputComplete) finish();
          });
        },
        (error) =>
          subscriber.error(error instanceof Error ? error : new Error(`libsamplerate: ${String(error)}`)),
      );

      const subscription = source.subscribe({
        next: (chunk) => {
          if (!isSampleChunk(where, chunk, subscriber)) return;
          // Queued chunks are copied: the producer may reuse its buffer after next() returns.
          if (converter) guarded(() => feed(chunk));
          else queued.push(chunk.slice());
        },
        error: (error) => subscriber.error(error),
        complete: () => {
          inputComplete = true;
          if (converter) guarded(finish);
        },
      });

      return () => {
        subscription.unsubscribe();
        converter?.destroy();
      };
    });
}
