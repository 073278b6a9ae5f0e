import { InvalidArgumentError } from '@specstream/core';
import type { Observable, Subscriber } from 'rxjs';

/**
 * Mono audio whose sample rate is known before the first sample arrives, so a
 * pipeline can be configured up front:
 *
 *   const wav = await wavFileSource('in.wav');
 *   wav.samples.pipe(resample(wav.sampleRate, 16000), ...)
 */
export interface AudioSource {
  /** Samples per second of `samples`. */
  readonly sampleRate: number;
  /** Mono float samples, nominally in [-1, 1], in chunks of any length. */
  readonly samples: Observable<Float32Array>;
}

/** The most channels accepted anywhere; WAV allows 65535 but nothing real uses more than a few dozen. */
export const MAX_CHANNELS = 256;

/** Sample rates are integers (WAV stores them as such, libsamplerate takes ints). */
export function checkSampleRate(where: string, name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1 || value > 1_000_000) {
    throw new InvalidArgumentError(`${where}: ${name} must be an integer in [1, 1000000] Hz, got ${value}`);
  }
}

export function checkChannels(where: string, value: number): void {
  if (!Number.isInteger(value) || value < 1 || value > MAX_CHANNELS) {
    throw new InvalidArgumentError(
      `${where}: channels must be an integer in [1, ${MAX_CHANNELS}], got ${value}`,
    );
  }
}

/**
 * Checks one notification of a samples stream: a non-Float32Array errors the
 * subscriber with a message naming the operator, and returns false.
 */
export function isSampleChunk(
  where: string,
  chunk: unknown,
  subscriber: Subscriber<unknown>,
): chunk is Float32Array {
  if (chunk instanceof Float32Array) return true;
  subscriber.error(new InvalidArgumentError(`${where}: chunks must be Float32Array, got ${typeof chunk}`));
  return false;
}
