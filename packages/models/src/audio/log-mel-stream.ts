import { InvalidArgumentError } from '@specstream/core';
import { frameStart, gatherFrame, keptFrameCount, settledFrameCount } from './framing.js';
import { sharedLogMelFrameKernel } from './log-mel-frame.js';
import { assertFiniteSamples, assertReflectable, type LogMelOptions, resolveFraming } from './options.js';

/**
 * Incremental raw log-mel over streamed 16 kHz audio.
 *
 * Streaming-exact: the concatenation of everything `push` and `flush` return is
 * bit-identical to `rawLogMelFrames(allAudio, { padTo: false })`, for any chunking.
 * A frame is emitted as soon as no later sample can change it: frame t needs
 * t·hop + nFft/2 samples (frame 0 needs nFft/2 + 1 = 201 for its left
 * reflection), so output lags input by nFft/2 samples (12.5 ms). The last frames,
 * which reach the right reflect padding, come out of `flush`.
 *
 * Not streaming-exact: Whisper's clamp to (global max − 8) and the 30 s zero
 * padding need the whole utterance. Apply `normalizeLogMel(raw, max)` with the
 * max over all frames for exact features; to reproduce Whisper's 30 s input,
 * push zeros up to 480000 samples before flushing.
 *
 * Layout: every returned array is [frames × nMels] (frame-major), raw log10 mel.
 */
export interface LogMelStream {
  readonly nMels: number;
  /** Frames returned so far. */
  readonly framesEmitted: number;
  /** Samples pushed so far. */
  readonly samplesReceived: number;
  /** Appends samples; returns the frames they completed (possibly none). */
  push(samples: Float32Array): Float32Array;
  /** Ends the stream: returns the remaining frames. The stream accepts nothing afterwards. */
  flush(): Float32Array;
}

export function createLogMelStream(options: LogMelOptions = {}): LogMelStream {
  const framing = resolveFraming(options);
  const { nMels, nFft, hop } = framing;
  const kernel = sharedLogMelFrameKernel(framing);
  const buffer = createSampleBuffer(2 * nFft);
  let nextFrame = 0;
  let flushed = false;

  function assertOpen(): void {
    if (flushed) throw new InvalidArgumentError('log-mel stream was already flushed');
  }

  function emit(untilFrame: number, total: number): Float32Array {
    const out = new Float32Array(Math.max(0, untilFrame - nextFrame) * nMels);
    for (let row = 0; nextFrame < untilFrame; nextFrame++, row++) {
      gatherFrame(kernel.frame, buffer.samples(), buffer.start(), frameStart(nextFrame, hop, nFft), total);
      kernel.compute(out, row * nMels);
    }
    return out;
  }

  return {
    nMels,
    get framesEmitted() {
      return nextFrame;
    },
    get samplesReceived() {
      return buffer.end();
    },
    push(samples) {
      assertOpen();
      assertFiniteSamples(samples, 'samples');
      // Samples before the next frame's window (and frame 0's reflection source) are no longer read.
      buffer.append(samples, Math.max(0, frameStart(nextFrame, hop, nFft)));
      return emit(settledFrameCount(buffer.end(), hop, nFft), Number.POSITIVE_INFINITY);
    },
    flush() {
      assertOpen();
      const total = buffer.end();
      assertReflectable(total, nFft, 'streamed audio');
      const out = emit(keptFrameCount(total, hop), total);
      flushed = true;
      return out;
    },
  };
}

/** Growable window onto the stream: absolute samples [start, end). */
interface SampleBuffer {
  append(samples: Float32Array, keepFrom: number): void;
  samples(): Float32Array;
  start(): number;
  end(): number;
}

function createSampleBuffer(initialCapacity: number): SampleBuffer {
  let data = new Float32Array(initialCapacity);
  let start = 0;
  let length = 0;
  return {
    append(samples, keepFrom) {
      if (length + samples.length > data.length) {
        // Only compact when full, so tiny pushes cost O(chunk), not O(window).
        const drop = Math.min(Math.max(0, keepFrom - start), length);
        const kept = length - drop;
        const needed = kept + samples.length;
        const target = needed > data.length ? new Float32Array(Math.max(needed, 2 * data.length)) : data;
        if (target === data) data.copyWithin(0, drop, length);
        else target.set(data.subarray(drop, length));
        data = target;
        start += drop;
        length = kept;
      }
      data.set(samples, length);
      length += samples.length;
    },
    samples: () => data,
    start: () => start,
    end: () => start + length,
  };
}
