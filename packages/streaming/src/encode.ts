import {
  checkPositiveInteger,
  type Encoder,
  type EncoderState,
  InvalidArgumentError,
  readAndDispose,
} from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { Observable, type OperatorFunction } from 'rxjs';

export interface StreamingEncodeOptions {
  /** Input frames per encoder call (8, 16, 32 frames = 80, 160, 320 ms at a 10 ms hop). */
  chunkFrames: number;
  /** Passed to `encoder.createState` (the encoder defines its unit); default: the encoder's default. */
  leftContext?: number;
  /**
   * Most input frames one subscription may feed: the state's maxLength
   * (default 2³¹ − 1). Input past it ends the stream with the encoder's error.
   */
  maxLength?: number;
  /**
   * Lossy mode for live sources that cannot wait: when more than this many
   * input frames are queued behind a running call, the oldest queued frames
   * are dropped (counted in `droppedFrames`) so the output keeps up with real
   * time. Default Infinity: lossless, the output depends only on the input.
   */
  maxQueuedFrames?: number;
}

export interface EncodedChunk {
  /** The encoded frames, [outputFrames × outputDim] frame-major; a new array. */
  frames: Float32Array;
  outputFrames: number;
  outputDim: number;
  /** Index in the whole stream of this chunk's first output frame. */
  outputStart: number;
  /** Input frames [inputStart, inputEnd) of the stream fed to the encoder call that produced this chunk. */
  inputStart: number;
  inputEnd: number;
  /** Input frames dropped so far by the lossy mode (always 0 when lossless). */
  droppedFrames: number;
  /** Wall-clock ms of the encoder call, reading its output back included. */
  encodeMs: number;
  /**
   * Wall-clock ms from the arrival of the notification that completed this
   * chunk's input (for the final partial chunk: the source's completion) to
   * this chunk's emission: queueing behind earlier calls plus `encodeMs`.
   */
  latencyMs: number;
}

interface Queued {
  /** Frames not yet taken, frame-major. */
  values: Float32Array;
  /** performance.now() when the notification arrived. */
  arrival: number;
}

/**
 * Log-mel frames → encoded frames, through a streaming Encoder (such as
 * createStreamingEncoder's). Each notification is a Float32Array of any
 * number of whole frames (frames × encoder.inputDim, frame-major). Input is
 * buffered until `chunkFrames` frames are there, then `encoder.extendStep`
 * encodes them (batch 1); when the source completes, the remaining partial
 * chunk is encoded too. Calls run strictly one at a time and in order, each
 * subscription with its own state; input that arrives meanwhile is queued,
 * never dropped, so the output depends only on the frames, not on how they
 * were chunked or timed: for an encoder whose chunked output equals its
 * offline output, the concatenated chunks equal one extendStep over the
 * whole input. A call that returns no output frames (input still short of an
 * output frame) emits nothing.
 *
 * Tensors live only inside: every input tensor, output tensor and the state
 * is freed by the time of completion, error or unsubscription. A frame count
 * that is not whole, or an encoder error, arrives as an error notification.
 */
export function streamingEncode<S extends EncoderState>(
  encoder: Encoder<S>,
  options: StreamingEncodeOptions,
): OperatorFunction<Float32Array, EncodedChunk> {
  const {
    chunkFrames,
    leftContext,
    maxLength = 2 ** 31 - 1,
    maxQueuedFrames = Number.POSITIVE_INFINITY,
  } = options;
  if (!(maxQueuedFrames >= chunkFrames)) {
    throw new InvalidArgumentError(
      `streamingEncode: maxQueuedFrames must be at least chunkFrames (${chunkFrames}), got ${maxQueuedFrames}`,
    );
  }
  checkPositiveInteger('streamingEncode: chunkFrames', chunkFrames);
  checkPositiveInteger('streamingEncode: maxLength', maxLength);
  const inputDim = encoder.inputDim;
  return (source) =>
    new Observable<EncodedChunk>((subscriber) => {
      let state: S | undefined;
      try {
        state = encoder.createState({ batch: 1, maxLength, leftContext });
      } catch (error) {
        subscriber.error(error);
        return;
      }
      const release = () => {
        if (state !== undefined) encoder.disposeState(state);
        state = undefined;
      };
      const queue: Queued[] = [];
      let queuedFrames = 0;
      let inputFrames = 0;
      let outputFrames = 0;
      let ended = false;
      let endedAt = 0;
      let running = false;
      let droppedFrames = 0;

      /** The next `count` queued frames, and when the last of them arrived. */
      function take(count: number): { values: Float32Array; arrival: number } {
        const values = new Float32Array(count * inputDim);
        let at = 0;
        let arrival = 0;
        while (at < values.length) {
          const head = queue[0];
          const n = Math.min(head.values.length, values.length - at);
          values.set(head.values.subarray(0, n), at);
          at += n;
          arrival = head.arrival;
          if (n === head.values.length) queue.shift();
          else head.values = head.values.subarray(n);
        }
        queuedFrames -= count;
        return { values, arrival };
      }

      async function pump(): Promise<void> {
        running = true;
        try {
          while (!subscriber.closed && (queuedFrames >= chunkFrames || (ended && queuedFrames > 0))) {
            const count = Math.min(chunkFrames, queuedFrames);
            const { values, arrival } = take(count);
            const inputStart = inputFrames;
            inputFrames += count;
            const started = performance.now();
            const input = tf.tensor3d(values, [1, count, inputDim]);
            let outputs: tf.Tensor3D;
            try {
              outputs = encoder.extendStep(state!, input).outputs;
            } finally {
              input.dispose();
            }
            const [, steps, outputDim] = outputs.shape;
            // Disposed at once where data() has already copied (so an unsubscribe meanwhile
            // leaves nothing allocated), when the read settles on webgpu.
            const frames = (await readAndDispose(outputs)) as Float32Array;
            if (subscriber.closed) return;
            const now = performance.now();
            const chunk: EncodedChunk = {
              frames,
              outputFrames: steps,
              outputDim,
              outputStart: outputFrames,
              inputStart,
              inputEnd: inputStart + count,
              droppedFrames,
              encodeMs: now - started,
              // Only the flush at the end is short of chunkFrames: it was completed by the source's end.
              latencyMs: now - (count < chunkFrames ? endedAt : arrival),
            };
            outputFrames += steps;
            if (steps > 0) subscriber.next(chunk);
          }
          if (ended && queuedFrames === 0 && !subscriber.closed) subscriber.complete();
        } catch (error) {
          subscriber.error(error);
        } finally {
          running = false;
        }
      }

      const subscription = source.subscribe({
        next(values) {
          if (subscriber.closed) return;
          if (!(values instanceof Float32Array) || values.length % inputDim !== 0) {
            const got = values instanceof Float32Array ? `${values.length} values` : String(values);
            subscriber.error(
              new InvalidArgumentError(
                `streamingEncode takes Float32Arrays of whole frames (a multiple of ${inputDim} values), got ${got}`,
              ),
            );
            return;
          }
          if (values.length === 0) return;
          queue.push({ values, arrival: performance.now() });
          queuedFrames += values.length / inputDim;
          if (queuedFrames > maxQueuedFrames) {
            const drop = queuedFrames - maxQueuedFrames;
            take(drop);
            droppedFrames += drop;
            // Dropped frames never reach the encoder: the stream positions skip them.
            inputFrames += drop;
          }
          if (!running) void pump();
        },
        error: (e) => subscriber.error(e),
        complete() {
          ended = true;
          endedAt = performance.now();
          if (!running) void pump();
        },
      });
      return () => {
        subscription.unsubscribe();
        release();
      };
    });
}
