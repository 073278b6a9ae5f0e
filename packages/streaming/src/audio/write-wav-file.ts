import { randomUUID } from 'node:crypto';
import { rename, rm, writeFile } from 'node:fs/promises';
import { InvalidArgumentError } from '@specstream/core';
import { Observable, type OperatorFunction } from 'rxjs';
import { checkSampleRate, isSampleChunk } from './audio-source.js';
import { encodeWav, type WavSampleFormat } from './wav-encode.js';

export interface WriteWavFileOptions {
  /** 'int16' (default): 16-bit PCM, samples clipped to [-1, 1). 'float32': IEEE float, unclipped. */
  format?: WavSampleFormat;
}

/** What was written, emitted once the file is complete and closed. */
export interface WrittenWavFile {
  path: string;
  sampleRate: number;
  format: WavSampleFormat;
  frameCount: number;
  durationSeconds: number;
  /** Size of the file in bytes. */
  fileBytes: number;
}

const where = 'writeWavFile';

/**
 * Operator: collects mono samples and, when the input completes, writes them
 * as a mono WAV file at `path`; then emits one {@link WrittenWavFile} and
 * completes (the file is closed by then).
 *
 * Why not stream to disk: a WAV header holds the data length, known only at
 * the end, and wavefile encodes whole buffers. So samples are kept in memory
 * until completion; for unbounded audio use `pcmWritableSink` on a file stream.
 *
 * The file is written to a temporary name beside `path` and renamed into
 * place, so `path` is either the whole file or untouched: if the input errors
 * nothing is opened; if the subscriber unsubscribes mid-write the write is
 * aborted, its handle closed and the temporary file removed.
 */
export function writeWavFile(
  path: string,
  sampleRate: number,
  options: WriteWavFileOptions = {},
): OperatorFunction<Float32Array, WrittenWavFile> {
  if (typeof path !== 'string' || path.length === 0) {
    throw new InvalidArgumentError(`${where}: path must be a non-empty string, got ${JSON.stringify(path)}`);
  }
  checkSampleRate(where, 'sampleRate', sampleRate);
  const { format = 'int16' } = options;
  if (format !== 'int16' && format !== 'float32') {
    throw new InvalidArgumentError(`${where}: format must be 'int16' or 'float32', got ${String(format)}`);
  }

  return (source) =>
    new Observable<WrittenWavFile>((subscriber) => {
      const chunks: Float32Array[] = [];
      const abort = new AbortController();
      const subscription = source.subscribe({
        next: (chunk) => {
          if (!isSampleChunk(where, chunk, subscriber)) return;
          // Copy: the producer may reuse its buffer once next() returns.
          chunks.push(chunk.slice());
        },
        error: (error) => subscriber.error(error),
        complete: () => {
          let encoded: ReturnType<typeof encodeWav>;
          try {
            encoded = encodeWav(chunks, sampleRate, format);
          } catch (error) {
            subscriber.error(error);
            return;
          }
          chunks.length = 0;
          const { file, frameCount } = encoded;
          writeAtomically(path, file, abort.signal).then(
            () => {
              const durationSeconds = frameCount / sampleRate;
              subscriber.next({
                path,
                sampleRate,
                format,
                frameCount,
                durationSeconds,
                fileBytes: file.length,
              });
              subscriber.complete();
            },
            (error) => subscriber.error(error),
          );
        },
      });
      return () => {
        subscription.unsubscribe();
        abort.abort();
      };
    });
}

/** Writes a temporary sibling of `path` then renames it over `path`; on failure removes it. */
async function writeAtomically(path: string, bytes: Uint8Array, signal: AbortSignal): Promise<void> {
  const temporary = `${path}.${randomUUID()}.partial`;
  try {
    await writeFile(temporary, bytes, { signal });
    signal.throwIfAborted();
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}
