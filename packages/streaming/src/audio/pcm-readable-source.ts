import type { Readable } from 'node:stream';
import { InvalidArgumentError } from '@specstream/core';
import { Observable } from 'rxjs';
import { type AudioSource, checkChannels, checkSampleRate } from './audio-source.js';
import { PcmChunkDecoder } from './pcm-chunk-decoder.js';
import { checkPcmFormat, type PcmFormat } from './pcm-format.js';

export interface PcmReadableSourceOptions {
  /** How the bytes encode samples. */
  format: PcmFormat;
  /** Frames per second of the stream; carried through as the source's `sampleRate`. */
  sampleRate: number;
  /** Interleaved channels per frame, averaged to mono. Default 1. */
  channels?: number;
}

const where = 'pcmReadableSource';

/**
 * A Node Readable of raw little-endian PCM bytes (a socket, `ffmpeg -f s16le -`
 * stdout, a file stream) → mono Float32Array chunks, one per chunk of bytes
 * that completes at least one frame.
 *
 * A Readable can be read only once, so `samples` accepts one subscription.
 * Unsubscribing before the stream ends destroys it: that closes the file or
 * socket underneath and removes every listener this source added. A stream
 * that ends partway through a frame is an error (the data was cut short).
 */
export function pcmReadableSource(readable: Readable, options: PcmReadableSourceOptions): AudioSource {
  if (typeof readable?.on !== 'function' || typeof readable.destroy !== 'function') {
    throw new InvalidArgumentError(
      `${where}: readable must be a Node Readable stream, got ${typeof readable}`,
    );
  }
  const { format, sampleRate, channels = 1 } = options ?? ({} as PcmReadableSourceOptions);
  checkPcmFormat(where, format);
  checkSampleRate(where, 'sampleRate', sampleRate);
  checkChannels(where, channels);

  let consumed = false;
  const samples = new Observable<Float32Array>((subscriber) => {
    if (consumed) {
      subscriber.error(
        new InvalidArgumentError(`${where}: the stream was already read by an earlier subscription`),
      );
      return;
    }
    consumed = true;
    if (readable.destroyed || readable.readableEnded) {
      subscriber.error(new InvalidArgumentError(`${where}: the stream was already ended or destroyed`));
      return;
    }

    const decoder = new PcmChunkDecoder(format, channels);
    let ended = false;
    const onData = (chunk: unknown) => {
      if (!(chunk instanceof Uint8Array)) {
        subscriber.error(
          new InvalidArgumentError(
            `${where}: the stream must emit bytes, got a ${typeof chunk} (setEncoding()?)`,
          ),
        );
        return;
      }
      const decoded = decoder.push(chunk);
      if (decoded.length > 0) subscriber.next(decoded);
    };
    const onEnd = () => {
      ended = true;
      if (decoder.pendingBytes === 0) subscriber.complete();
      else {
        subscriber.error(
          new InvalidArgumentError(
            `${where}: the stream ended inside a frame: ${decoder.pendingBytes} trailing bytes ` +
              `are not a whole ${format} frame of ${channels} channel(s)`,
          ),
        );
      }
    };
    const onError = (error: Error) => subscriber.error(error);
    // 'close' without 'end' means someone else destroyed the stream mid-way.
    const onClose = () => {
      if (!ended) subscriber.error(new Error(`${where}: the stream closed before it ended`));
    };

    readable.on('data', onData);
    readable.on('end', onEnd);
    readable.on('error', onError);
    readable.on('close', onClose);
    // Adding a 'data' listener does not restart a stream someone paused explicitly.
    readable.resume();

    return () => {
      readable.off('data', onData);
      readable.off('end', onEnd);
      readable.off('error', onError);
      readable.off('close', onClose);
      if (!ended) readable.destroy();
    };
  });
  return { sampleRate, samples };
}
