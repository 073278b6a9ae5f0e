/**
 * The streaming encoder on webgpu, where a tensor's read finishes after
 * data() returns: chunks streamed through streamingEncode equal one offline
 * pass, and nothing is left allocated. Needs a WebGPU adapter (a GPU, or
 * lavapipe); skipped, saying why, without one.
 */
import { initBackend, webGpuErrors } from '@specstream/core';
import {
  createStreamingEncoder,
  randomStreamingEncoderWeights,
  STREAMING_ENCODER_TINY,
} from '@specstream/models';
import * as tf from '@tensorflow/tfjs-core';
import { from, lastValueFrom, toArray } from 'rxjs';
import { afterAll, describe, expect, test } from 'vitest';
import { maxAbsDiff } from '../../../test-support/max-abs-diff.js';
import { webgpuUnavailable } from '../../../test-support/webgpu-programs.js';
import { streamingEncode } from '../src/encode.js';

const unavailable = await webgpuUnavailable(initBackend, 'webgpu streaming tests');

describe.skipIf(unavailable !== undefined)('streamingEncode on webgpu', () => {
  test('chunks of 8 frames, arriving unevenly, equal one offline pass; no tensor left', async () => {
    const encoder = createStreamingEncoder(
      STREAMING_ENCODER_TINY,
      randomStreamingEncoderWeights(STREAMING_ENCODER_TINY, 3),
    );
    const nMels = STREAMING_ENCODER_TINY.nMels;
    const frames = Float32Array.from({ length: 48 * nMels }, (_, i) => Math.sin(i * 0.37) * 2);
    const offlineState = encoder.createState({ batch: 1, maxLength: 64 });
    const input = tf.tensor3d(frames, [1, 48, nMels]);
    const offline = encoder.extendStep(offlineState, input).outputs;
    const expected = (await offline.data()) as Float32Array;
    tf.dispose([input, offline]);
    encoder.disposeState(offlineState);
    const before = tf.memory().numTensors;
    const pieces = [5, 11, 1, 20, 11].map((n, i, all) => {
      const at = all.slice(0, i).reduce((a, b) => a + b, 0);
      return frames.slice(at * nMels, (at + n) * nMels);
    });
    const chunks = await lastValueFrom(
      from(pieces).pipe(streamingEncode(encoder, { chunkFrames: 8, maxLength: 64 }), toArray()),
    );
    const streamed = new Float32Array(chunks.reduce((n, c) => n + c.frames.length, 0));
    let at = 0;
    for (const c of chunks) {
      streamed.set(c.frames, at);
      at += c.frames.length;
    }
    expect(maxAbsDiff(streamed, expected)).toBeLessThan(1e-4);
    expect(tf.memory().numTensors).toBe(before);
    encoder.dispose();
  });
});

// Dawn skips a command that fails validation and carries on: results would be silently wrong.
afterAll(() => {
  if (unavailable === undefined) expect(webGpuErrors()).toEqual([]);
});
