import { type FileHandle, open } from 'node:fs/promises';
import { InvalidArgumentError } from '@specstream/core';
import { Observable, type OperatorFunction } from 'rxjs';
import { checkSampleRate } from './audio/audio-source.js';
import { encodePcm } from './audio/pcm-format.js';
import type { AudioChunk } from './synthesize.js';

/** Where a streamed WAV file stands: after each chunk is on disk, and once more (`done`) when it is complete. */
export interface WavFileProgress {
  path: string;
  sampleRate: number;
  /** Samples on disk so far. */
  frameCount: number;
  durationSeconds: number;
  fileBytes: number;
  /** True on the last notification: the header holds the final length and the file is closed. */
  done: boolean;
}

const where = 'wavFileStream';
const HEADER_BYTES = 44;

/**
 * Operator: writes synthesized audio to a 16-bit mono WAV file as it comes (`writeWavFile`
 * keeps everything in memory until the end), so a player can follow the file while speech is
 * still being made. The header's lengths are only known at the end: the file starts with a
 * header of length 0, and on completion the header is rewritten with the final lengths, giving
 * the same bytes as `writeWavFile` (int16) for the same samples.
 *
 * Emits a {@link WavFileProgress} after each chunk reaches the file, then one with `done`. If
 * the input errors or the subscriber unsubscribes, the header is still finalised for what was
 * written (a shorter, valid WAV file) and the file closed; the error is passed on afterwards.
 */
export function wavFileStream(
  path: string,
  sampleRate: number,
): OperatorFunction<AudioChunk, WavFileProgress> {
  if (typeof path !== 'string' || path.length === 0) {
    throw new InvalidArgumentError(`${where}: path must be a non-empty string, got ${JSON.stringify(path)}`);
  }
  checkSampleRate(where, 'sampleRate', sampleRate);
  return (source) =>
    new Observable<WavFileProgress>((subscriber) => {
      let frameCount = 0;
      let failed = false;
      let finishing = false;
      const progress = (done: boolean): WavFileProgress => ({
        path,
        sampleRate,
        frameCount,
        durationSeconds: frameCount / sampleRate,
        fileBytes: HEADER_BYTES + 2 * frameCount,
        done,
      });
      const fail = (error: unknown) => {
        if (failed) return;
        failed = true;
        subscriber.error(error);
      };
      // Every file operation runs in order on this chain; a failure skips the ones after it.
      const opened = open(path, 'w');
      let chain: Promise<unknown> = opened.then((handle) =>
        handle.write(wavHeader(sampleRate, 0), 0, HEADER_BYTES, 0),
      );
      chain.catch(fail);
      const enqueue = (work: (handle: FileHandle) => Promise<void>) => {
        chain = chain.then(async () => work(await opened));
        chain.catch(fail);
      };
      /** Once: rewrites the header with the length written, closes the file, then `then`. */
      const finish = (then: () => void) => {
        if (finishing) return;
        finishing = true;
        chain
          .then(async () => {
            await (await opened).write(wavHeader(sampleRate, frameCount), 0, HEADER_BYTES, 0);
          })
          .finally(async () => {
            await (await opened.catch(() => undefined))?.close();
          })
          .then(then, fail);
      };

      const subscription = source.subscribe({
        next(chunk) {
          if (!(chunk?.samples instanceof Float32Array) || chunk.sampleRate !== sampleRate) {
            fail(
              new InvalidArgumentError(
                `${where}: expected audio chunks of ${sampleRate} Hz, got ${chunk?.sampleRate ?? typeof chunk}`,
              ),
            );
            return;
          }
          if (chunk.samples.length === 0) return;
          const bytes = encodePcm(chunk.samples, 's16le');
          enqueue(async (handle) => {
            await handle.write(bytes, 0, bytes.length, HEADER_BYTES + 2 * frameCount);
            frameCount += chunk.samples.length;
            if (!subscriber.closed) subscriber.next(progress(false));
          });
        },
        error: (error) => finish(() => fail(error)),
        complete: () =>
          finish(() => {
            subscriber.next(progress(true));
            subscriber.complete();
          }),
      });
      return () => {
        subscription.unsubscribe();
        // Unsubscribed mid-way: still leave a valid file of what was written.
        finish(() => {});
      };
    });
}

/** The 44-byte header of a mono 16-bit PCM WAV file holding `frames` samples (wavefile's layout). */
function wavHeader(sampleRate: number, frames: number): Uint8Array {
  const header = new Uint8Array(HEADER_BYTES);
  const view = new DataView(header.buffer);
  const ascii = (at: number, text: string) => {
    for (let i = 0; i < text.length; i++) header[at + i] = text.charCodeAt(i);
  };
  const dataBytes = 2 * frames;
  ascii(0, 'RIFF');
  view.setUint32(4, 36 + dataBytes, true);
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
  view.setUint32(16, 16, true); // fmt chunk size
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, 2 * sampleRate, true); // bytes per second
  view.setUint16(32, 2, true); // bytes per frame
  view.setUint16(34, 16, true); // bits per sample
  ascii(36, 'data');
  view.setUint32(40, dataBytes, true);
  return header;
}
