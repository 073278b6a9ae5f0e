import * as tf from '@tensorflow/tfjs-core';

/** Median wall time of `fn` in ms after `warmup` untimed runs. `fn` must resolve once its work is done. */
export async function medianMs(fn: () => Promise<void>, reps: number, warmup = 1): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

/**
 * Reads a tensor back (forcing GPU work to finish) and disposes it. Async:
 * tfjs-webgpu in Node has no synchronous download path.
 */
export async function settle(t: tf.Tensor): Promise<void> {
  await t.data();
  t.dispose();
}

/** Kernels dispatched by one call of fn (tf.profile counts every kernel launch). */
export async function countKernels(fn: () => tf.Tensor): Promise<number> {
  let out: tf.Tensor | undefined;
  const info = await tf.profile(() => {
    out = fn();
    return out;
  });
  out?.dispose();
  return info.kernels.length;
}

export const round = (x: number, digits = 2) => Number(x.toFixed(digits));
