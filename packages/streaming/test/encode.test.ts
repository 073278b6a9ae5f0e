import { CacheOverflowError, type Encoder, InvalidArgumentError, initBackend } from '@specstream/core';
import {
  createStreamingEncoder,
  randomStreamingEncoderWeights,
  STREAMING_ENCODER_TINY,
  type StreamingEncoder,
  type StreamingEncoderState,
} from '@specstream/models';
import * as tf from '@tensorflow/tfjs-core';
import { from, lastValueFrom, Observable, Subject, throwError, toArray } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maxAbsDiff } from '../../../test-support/max-abs-diff.js';
import { type EncodedChunk, streamingEncode } from '../src/encode.js';

const N_MELS = STREAMING_ENCODER_TINY.nMels;

/** Small seeded LCG (Numerical Recipes constants), so a failing case reproduces. */
function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function randomFrames(frames: number, random: () => number): Float32Array {
  return Float32Array.from({ length: frames * N_MELS }, () => random() * 4 - 2);
}

/** The frames cut into notifications of 0 … maxFrames frames (many of 1), as arrays of their own. */
function randomNotifications(frames: Float32Array, maxFrames: number, random: () => number): Float32Array[] {
  const out: Float32Array[] = [];
  const total = frames.length / N_MELS;
  for (let at = 0; at < total; ) {
    const n = Math.min(
      total - at,
      random() < 0.2 ? Math.floor(random() * 2) : Math.floor(random() * maxFrames),
    );
    out.push(frames.slice(at * N_MELS, (at + n) * N_MELS));
    at += n;
  }
  return out;
}

function concatFrames(chunks: EncodedChunk[]): Float32Array {
  const out = new Float32Array(chunks.reduce((n, c) => n + c.frames.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c.frames, at);
    at += c.frames.length;
  }
  return out;
}

const tick = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

describe('streamingEncode', () => {
  let encoder: StreamingEncoder;
  let baseline = 0;

  beforeAll(async () => {
    await initBackend({ backend: 'wasm' });
    encoder = createStreamingEncoder(
      STREAMING_ENCODER_TINY,
      randomStreamingEncoderWeights(STREAMING_ENCODER_TINY, 3),
    );
    baseline = tf.memory().numTensors;
  });

  afterAll(() => {
    expect(tf.memory().numTensors).toBe(baseline);
    encoder.dispose();
  });

  function offline(frames: Float32Array, leftContext?: number): Float32Array {
    const steps = frames.length / N_MELS;
    const state = encoder.createState({ batch: 1, maxLength: steps, leftContext });
    const input = tf.tensor3d(frames, [1, steps, N_MELS]);
    const { outputs } = encoder.extendStep(state, input);
    const values = outputs.dataSync() as Float32Array;
    tf.dispose([input, outputs]);
    encoder.disposeState(state);
    return values;
  }

  it('the concatenated stream equals one offline extendStep, for chunks of 8, 16, 32 frames and any input chunking', async () => {
    const random = seeded(17);
    for (const chunkFrames of [8, 16, 32]) {
      for (const [total, leftContext] of [
        [203, undefined],
        [160, 3],
        [37, undefined],
      ] as const) {
        const frames = randomFrames(total, random);
        const expected = offline(frames, leftContext);
        for (let trial = 0; trial < 3; trial++) {
          const input = trial === 0 ? [frames] : randomNotifications(frames, 2 * chunkFrames + 3, random);
          const chunks = await lastValueFrom(
            from(input).pipe(streamingEncode(encoder, { chunkFrames, leftContext }), toArray()),
          );
          expect(maxAbsDiff(concatFrames(chunks), expected)).toBeLessThan(1e-5);
          // Exact accounting: consecutive input ranges of chunkFrames (the last one shorter),
          // consecutive output frames, floor(total / 4) of them.
          let input0 = 0;
          let output0 = 0;
          for (const c of chunks) {
            expect(c.inputStart).toBe(input0);
            expect(c.inputEnd - c.inputStart).toBe(Math.min(chunkFrames, total - input0));
            expect(c.outputStart).toBe(output0);
            expect(c.frames.length).toBe(c.outputFrames * c.outputDim);
            expect(c.outputDim).toBe(encoder.outputDim);
            expect(c.encodeMs).toBeGreaterThanOrEqual(0);
            expect(c.latencyMs).toBeGreaterThanOrEqual(c.encodeMs);
            input0 = c.inputEnd;
            output0 += c.outputFrames;
          }
          expect(output0).toBe(Math.floor(total / 4));
          expect(tf.memory().numTensors).toBe(baseline);
        }
      }
    }
  });

  it('calls the encoder once per chunk, in order, one call at a time, also when input arrives during a call', async () => {
    const calls: number[] = [];
    let active = 0;
    const spy: Encoder<StreamingEncoderState> = {
      inputDim: encoder.inputDim,
      outputDim: encoder.outputDim,
      createState: (o) => encoder.createState(o),
      disposeState: (s) => encoder.disposeState(s),
      dispose: () => undefined,
      extendStep(state, frames) {
        expect(active).toBe(0);
        active++;
        try {
          calls.push(frames.shape[1]);
          return encoder.extendStep(state, frames);
        } finally {
          active--;
        }
      },
    };
    const frames = randomFrames(100, seeded(2));
    const subject = new Subject<Float32Array>();
    const done = lastValueFrom(subject.pipe(streamingEncode(spy, { chunkFrames: 16 }), toArray()));
    for (const piece of randomNotifications(frames, 40, seeded(4))) {
      subject.next(piece);
      if (piece.length % 3 === 0) await tick();
    }
    subject.complete();
    const chunks = await done;
    // 6 full chunks of 16, then the 4 remaining frames flushed at completion.
    expect(calls).toEqual([16, 16, 16, 16, 16, 16, 4]);
    expect(maxAbsDiff(concatFrames(chunks), offline(frames))).toBeLessThan(1e-5);
    expect(tf.memory().numTensors).toBe(baseline);
  });

  it('unsubscribing mid-stream frees every tensor at once, also while a call is pending', async () => {
    const frames = randomFrames(64, seeded(5));
    for (const wait of [true, false]) {
      const subject = new Subject<Float32Array>();
      const seen: EncodedChunk[] = [];
      const subscription = subject
        .pipe(streamingEncode(encoder, { chunkFrames: 8 }))
        .subscribe((c) => seen.push(c));
      subject.next(frames.subarray(0, 20 * N_MELS));
      if (wait) await tick();
      expect(tf.memory().numTensors).toBeGreaterThan(baseline); // the state is alive
      subscription.unsubscribe();
      expect(tf.memory().numTensors).toBe(baseline);
      subject.next(frames.subarray(20 * N_MELS)); // ignored after unsubscribing
      await tick();
      expect(seen.length).toBe(wait ? 2 : 0);
      expect(tf.memory().numTensors).toBe(baseline);
    }
  });

  it('an encoder error arrives as an error notification and frees every tensor', async () => {
    // maxLength 20: the third chunk of 8 would pass it, and the encoder throws.
    const frames = randomFrames(40, seeded(6));
    const seen: EncodedChunk[] = [];
    const failure = lastValueFrom(
      from([frames]).pipe(streamingEncode(encoder, { chunkFrames: 8, maxLength: 20 })),
    ).catch((e: unknown) => e);
    const error = await failure;
    expect(error).toBeInstanceOf(CacheOverflowError);
    expect(tf.memory().numTensors).toBe(baseline);

    // An encoder that throws on its third call (an Error of its own).
    let call = 0;
    const flaky: Encoder<StreamingEncoderState> = {
      ...encoder,
      extendStep(state, input) {
        if (++call === 3) throw new Error('model exploded');
        return encoder.extendStep(state, input);
      },
    };
    const errors: unknown[] = [];
    await new Promise<void>((resolve) => {
      from(randomNotifications(frames, 5, seeded(8)))
        .pipe(streamingEncode(flaky, { chunkFrames: 8 }))
        .subscribe({
          next: (c) => seen.push(c),
          error: (e) => {
            errors.push(e);
            resolve();
          },
          complete: resolve,
        });
    });
    expect(errors).toEqual([new Error('model exploded')]);
    expect(seen.length).toBe(2);
    expect(tf.memory().numTensors).toBe(baseline);
  });

  it('bad input, a failing source and bad options are reported and leak nothing', async () => {
    const bad = await lastValueFrom(
      from([new Float32Array(2 * N_MELS), new Float32Array(N_MELS + 1)]).pipe(
        streamingEncode(encoder, { chunkFrames: 8 }),
      ),
    ).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(InvalidArgumentError);
    expect(String(bad)).toMatch(/multiple of 8 values\), got 9 values/);
    expect(tf.memory().numTensors).toBe(baseline);

    const sourceError = await lastValueFrom(
      new Observable<Float32Array>((s) => {
        s.next(new Float32Array(12 * N_MELS));
        s.error(new Error('mic unplugged'));
      }).pipe(streamingEncode(encoder, { chunkFrames: 8 })),
    ).catch((e: unknown) => e);
    expect(sourceError).toEqual(new Error('mic unplugged'));
    expect(tf.memory().numTensors).toBe(baseline);

    const stateError = await lastValueFrom(
      throwError(() => new Error('never read')).pipe(
        streamingEncode(encoder, { chunkFrames: 8, leftContext: -2 }),
      ),
    ).catch((e: unknown) => e);
    expect(stateError).toBeInstanceOf(InvalidArgumentError);
    expect(() => streamingEncode(encoder, { chunkFrames: 0 })).toThrow(InvalidArgumentError);
    expect(() => streamingEncode(encoder, { chunkFrames: 8, maxLength: 2.5 })).toThrow(InvalidArgumentError);

    // Nothing but an incomplete output frame: completes without emitting.
    const empty = await lastValueFrom(
      from([new Float32Array(3 * N_MELS)]).pipe(streamingEncode(encoder, { chunkFrames: 8 }), toArray()),
    );
    expect(empty).toEqual([]);
    expect(tf.memory().numTensors).toBe(baseline);
  });

  it('lossy mode drops the oldest queued frames of a live source and says how many', async () => {
    const random = seeded(5);
    const live = new Subject<Float32Array>();
    const chunks: EncodedChunk[] = [];
    const done = lastValueFrom(
      live.pipe(streamingEncode(encoder, { chunkFrames: 8, maxQueuedFrames: 16 }), toArray()),
    );
    // 80 frames arrive at once while the first call runs: only the newest 16 may wait.
    for (let i = 0; i < 10; i++) live.next(randomFrames(8, random));
    live.complete();
    chunks.push(...(await done));
    const last = chunks.at(-1) as EncodedChunk;
    expect(last.droppedFrames).toBe(80 - 8 - 16);
    expect(last.inputEnd).toBe(80);
    // Input positions skip the dropped frames: chunks cover [0, 8) and then the last 16.
    expect(chunks.map((c) => [c.inputStart, c.inputEnd])).toEqual([
      [0, 8],
      [64, 72],
      [72, 80],
    ]);
    expect(() => streamingEncode(encoder, { chunkFrames: 8, maxQueuedFrames: 4 })).toThrow(
      /maxQueuedFrames must be at least chunkFrames/,
    );
  });
});
