import { hostFloats } from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';

/**
 * One layer's keys (or values) of the output frames attention can still
 * reach, slots-first: frames 0 … length − 1 of `buffer` [batch, capacity,
 * heads, headDim] (slot 0 the oldest kept frame).
 *
 * On cpu and wasm new frames are written into the buffer in place, so a
 * call costs O(new frames), not O(frames kept): the buffer doubles when it
 * is full and, with a finite left context, first drops the frames no query
 * can see any more (when more than half of it is such frames), so it stays
 * within twice the window however long the stream runs. Elsewhere (webgpu)
 * the frames are concatenated into a new tensor each call.
 */
export interface FrameCache {
  buffer: tf.Tensor4D;
  length: number;
}

/** For tests: `concatenate: true` takes the other backends' path on cpu and wasm too. */
export const frameCacheMode = { concatenate: false };

/** Host-backend appends need the buffer's storage; other backends concatenate. */
export function appendsInPlace(): boolean {
  const name = tf.getBackend();
  return !frameCacheMode.concatenate && (name === 'cpu' || name === 'wasm');
}

/**
 * Makes room for `steps` more frames, keeping the last `keep` (keep ≥
 * length means all). Returns the cache to write into (a new buffer when it
 * grew; the old one is disposed) with its length lowered by what was
 * dropped. Nothing a query can still see changes, so the state may hold the
 * result even if the pass that follows fails.
 */
export function reserveFrames(cache: FrameCache, steps: number, keep: number): FrameCache {
  const [batch, capacity, heads, headDim] = cache.buffer.shape;
  const frame = heads * headDim;
  let { buffer, length } = cache;
  if (length + steps > capacity && keep < length && 2 * (length - keep) >= capacity) {
    const memory = hostFloats(buffer)!;
    for (let b = 0; b < batch; b++) {
      const row = b * capacity * frame;
      memory.copyWithin(row, row + (length - keep) * frame, row + length * frame);
    }
    length = keep;
  }
  if (length + steps > capacity) {
    const grown = tf.zeros([batch, Math.max(2 * capacity, length + steps), heads, headDim]) as tf.Tensor4D;
    const from = hostFloats(buffer)!;
    const to = hostFloats(grown)!;
    const wider = grown.shape[1] * frame;
    for (let b = 0; b < batch; b++) {
      to.set(from.subarray(b * capacity * frame, (b * capacity + length) * frame), b * wider);
    }
    buffer.dispose();
    buffer = grown;
  }
  return { buffer, length };
}

/** A cache for the first frames: capacity for `steps` of them, at least 16. */
export function createFrameCache(batch: number, steps: number, heads: number, headDim: number): FrameCache {
  return { buffer: tf.zeros([batch, Math.max(16, steps), heads, headDim]) as tf.Tensor4D, length: 0 };
}

/** Writes `frames` [batch, steps, heads, headDim] (a tensor or a kernel's output) at slots length … */
export function writeFrames(cache: FrameCache, frames: tf.TensorInfo): void {
  const [batch, capacity, heads, headDim] = cache.buffer.shape;
  const steps = frames.shape[1];
  const frame = heads * headDim;
  const from = hostFloats(frames)!;
  const to = hostFloats(cache.buffer)!;
  for (let b = 0; b < batch; b++) {
    to.set(from.subarray(b * steps * frame, (b + 1) * steps * frame), (b * capacity + cache.length) * frame);
  }
}
