import { readFile } from 'node:fs/promises';
import { InvalidArgumentError } from '@specstream/core';
import { Observable } from 'rxjs';
import type { AudioSource } from './audio-source.js';
import { type DecodedWav, decodeWav } from './wav-decode.js';

export interface WavFileSourceOptions {
  /** Samples per emitted chunk (the last may be shorter). Default 4096. */
  chunkSamples?: number;
}

/** A WAV file opened for streaming; `samples` is mono whatever the file's channel count. */
export interface WavFileSource extends AudioSource {
  /** Channels in the file, averaged into `samples`. */
  readonly channels: number;
  readonly bitDepth: DecodedWav['bitDepth'];
  readonly sampleFormat: DecodedWav['sampleFormat'];
  /** Samples per channel in the file (= total samples `samples` emits). */
  readonly frameCount: number;
  readonly durationSeconds: number;
}

const where = 'wavFileSource';

/**
 * Reads and decodes a WAV file (PCM 8/16/24/32-bit int or 32-bit float, any
 * channel count), resolving once the header and samples are known, so the
 * rate can configure the rest of the pipeline:
 *
 *   const wav = await wavFileSource('speech.wav');
 *   wav.samples.pipe(resample(wav.sampleRate, 16000))
 *
 * The whole file is decoded up front (wavefile parses whole buffers); `samples`
 * is cold: every subscription replays the file from the start in fresh chunks,
 * synchronously, stopping as soon as the subscriber unsubscribes.
 */
export async function wavFileSource(
  path: string | URL,
  options: WavFileSourceOptions = {},
): Promise<WavFileSource> {
  if (typeof path !== 'string' && !(path instanceof URL)) {
    throw new InvalidArgumentError(`${where}: path must be a string or URL, got ${typeof path}`);
  }
  const { chunkSamples = 4096 } = options;
  if (!Number.isInteger(chunkSamples) || chunkSamples < 1) {
    throw new InvalidArgumentError(`${where}: chunkSamples must be a positive integer, got ${chunkSamples}`);
  }
  const name = String(path);
  const decoded = decodeWav(await readWholeFile(path, name), name);
  const { mono, sampleRate } = decoded;

  const samples = new Observable<Float32Array>((subscriber) => {
    for (let start = 0; start < mono.length && !subscriber.closed; start += chunkSamples) {
      subscriber.next(mono.slice(start, start + chunkSamples));
    }
    subscriber.complete();
  });
  return {
    sampleRate,
    channels: decoded.channels,
    bitDepth: decoded.bitDepth,
    sampleFormat: decoded.sampleFormat,
    frameCount: mono.length,
    durationSeconds: mono.length / sampleRate,
    samples,
  };
}

async function readWholeFile(path: string | URL, name: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    const reason =
      code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : (cause as Error).message;
    throw new InvalidArgumentError(`${where}: cannot read ${name}: ${reason}`, { cause });
  }
}
