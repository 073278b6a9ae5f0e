import type { Writable } from 'node:stream';
import { InvalidArgumentError } from '@specstream/core';
import { Observable, type OperatorFunction } from 'rxjs';
import { isSampleChunk } from './audio-source.js';
import { checkPcmFormat, encodePcm, type PcmFormat } from './pcm-format.js';

export interface PcmWritableSinkOptions {
  /** How samples are encoded: 's16le' clips to [-1, 1); 'f32le' stores them unchanged. */
  format: PcmFormat;
  /** Call `writable.end()` when the input completes and wait for 'finish'. Default true. */
  end?: boolean;
}

/** Emitted once everything was handed to the Writable (and, with `end`, flushed). */
export interface PcmWriteResult {
  samples: number;
  bytes: number;
}

const where = 'pcmWritableSink';

/**
 * Operator: encodes mono chunks as raw PCM and writes them to a Node Writable
 * (a file stream, a socket, a child process's stdin), in order.
 *
 * Backpressure: once `write()` returns false nothing more is written until
 * 'drain'; chunks arriving meanwhile wait in a queue here, because an
 * Observable cannot be told to slow down. The result emits after the last
 * write was accepted (and, with `end`, after 'finish').
 *
 * The Writable belongs to the caller: on input error or unsubscribe this sink
 * detaches its listeners and stops writing but neither ends nor destroys it.
 */
export function pcmWritableSink(
  writable: Writable,
  options: PcmWritableSinkOptions,
): OperatorFunction<Float32Array, PcmWriteResult> {
  if (typeof writable?.write !== 'function' || typeof writable.on !== 'function') {
    throw new InvalidArgumentError(
      `${where}: writable must be a Node Writable stream, got ${typeof writable}`,
    );
  }
  const { format, end = true } = options ?? ({} as PcmWritableSinkOptions);
  checkPcmFormat(where, format);

  return (source) =>
    new Observable<PcmWriteResult>((subscriber) => {
      if (writable.destroyed || writable.writableEnded) {
        subscriber.error(new InvalidArgumentError(`${where}: the stream was already ended or destroyed`));
        return;
      }
      const queue: Uint8Array[] = [];
      let waitingForDrain = writable.writableNeedDrain;
      let inputComplete = false;
      let finishing = false;
      const totals: PcmWriteResult = { samples: 0, bytes: 0 };

      const succeed = () => {
        subscriber.next({ ...totals });
        subscriber.complete();
      };
      const pump = () => {
        while (!waitingForDrain && queue.length > 0 && !subscriber.closed) {
          const bytes = queue.shift()!;
          totals.bytes += bytes.length;
          waitingForDrain = !writable.write(bytes);
        }
        if (waitingForDrain || queue.length > 0 || !inputComplete || finishing) return;
        finishing = true;
        if (end) writable.end();
        else succeed();
      };
      const onDrain = () => {
        waitingForDrain = false;
        pump();
      };
      const onFinish = () => succeed();
      const onError = (error: Error) => subscriber.error(error);
      const onClose = () =>
        subscriber.error(new Error(`${where}: the stream closed before all audio was written`));

      writable.on('drain', onDrain);
      writable.on('finish', onFinish);
      writable.on('error', onError);
      writable.on('close', onClose);
      const subscription = source.subscribe({
        next: (chunk) => {
          if (!isSampleChunk(where, chunk, subscriber)) return;
          if (chunk.length === 0) return;
          totals.samples += chunk.length;
          queue.push(encodePcm(chunk, format));
          pump();
        },
        error: (error) => subscriber.error(error),
        complete: () => {
          inputComplete = true;
          pump();
        },
      });
      return () => {
        subscription.unsubscribe();
        writable.off('drain', onDrain);
        writable.off('finish', onFinish);
        writable.off('error', onError);
        writable.off('close', onClose);
      };
    });
}
