import * as tf from '@tensorflow/tfjs-core';
import { cachedAttention, causalMask } from '../transformer/attention.js';
import { wasmKernels } from './wasm-kernels.js';

/**
 * Causal attention of new steps over a cache of keys and values. On wasm it
 * is one kernel of core's (scores, the causal and window limits, softmax
 * and the weighted sum of values for every row, head and step), reading
 * only the slots each query sees, straight from the cache's buffers:
 * tfjs's wasm BatchMatMul runs products with batch dimensions in a scalar
 * loop, and for GPT-2 small at context 512 attention for 8 new steps took
 * 56 ms that way. Elsewhere it is composed of tfjs ops.
 */
export const CAUSAL_ATTENTION = 'SpecstreamCausalAttention';

export interface CausalAttentionOptions {
  /** Slots a query sees at most, its own included (a left context of window − 1). Default: all. */
  window?: number;
  /**
   * Layout of keys and values: 'heads' [batch, kvHeads, slots, headDim] (a
   * KV cache), or 'slots' [batch, slots, kvHeads, headDim] (new steps
   * appended along axis 1 with no transpose). Default 'heads'.
   */
  layout?: 'heads' | 'slots';
}

/** Whether causalAttention runs as core's kernel for this head size on the current backend. */
export function causalAttentionSupported(headDim: number): boolean {
  return headDim % 4 === 0 && wasmKernels() !== undefined;
}

/**
 * q: [batch, steps, heads, headDim], already scaled and position-encoded.
 * keys/values: see options.layout; slot j holds position j of the row's
 * sequence. Row r's step s (position starts[r] + s, which must be < slots)
 * sees slots max(0, starts[r] + s + 1 − window) … starts[r] + s. Query
 * heads share KV heads in groups of heads / kvHeads. Returns [batch·steps,
 * heads·headDim].
 */
export function causalAttention(
  q: tf.Tensor4D,
  keys: tf.Tensor4D,
  values: tf.Tensor4D,
  starts: ArrayLike<number>,
  options: CausalAttentionOptions = {},
): tf.Tensor2D {
  const window = options.window ?? Number.POSITIVE_INFINITY;
  const layout = options.layout ?? 'heads';
  if (!(window >= 1)) throw new Error(`causalAttention: window must be at least 1, got ${window}`);
  if (causalAttentionSupported(q.shape[3])) {
    const attrs = { starts: Array.from(starts), window: Math.min(window, 2 ** 31 - 1), layout };
    return tf.engine().runKernel(CAUSAL_ATTENTION, { q, keys, values }, attrs) as tf.Tensor2D;
  }
  return tf.tidy(() => {
    const [k, v] =
      layout === 'heads'
        ? [keys, values]
        : [tf.transpose(keys, [0, 2, 1, 3]), tf.transpose(values, [0, 2, 1, 3])];
    const mask = causalMask(starts, q.shape[1], k.shape[2], window);
    return cachedAttention(q, k as tf.Tensor4D, v as tf.Tensor4D, mask);
  });
}

tf.registerKernel({
  kernelName: CAUSAL_ATTENTION,
  backendName: 'wasm',
  kernelFunc: ({ inputs, attrs }) => {
    const k = wasmKernels();
    if (k === undefined) throw new Error('core wasm kernels are unavailable on this backend');
    const { q, keys, values } = inputs as Record<string, tf.TensorInfo>;
    const starts = attrs!.starts as number[];
    const window = attrs!.window as number;
    const headsFirst = attrs!.layout !== 'slots';
    const [batch, steps, heads, headDim] = q.shape;
    const [, kvHeads, slots] = headsFirst ? keys.shape : [keys.shape[0], keys.shape[2], keys.shape[1]];
    if (headDim % 4 !== 0 || heads % kvHeads !== 0 || starts.length !== batch || keys.shape[3] !== headDim) {
      throw new Error(`causalAttention: unsupported shapes q [${q.shape}], keys [${keys.shape}]`);
    }
    for (const start of starts) {
      if (!(start >= 0 && start + steps <= slots)) {
        throw new Error(
          `causalAttention: a row starting at ${start} with ${steps} steps exceeds ${slots} slots`,
        );
      }
    }
    const out = k.backend.makeOutput([batch * steps, heads * headDim], 'float32');
    const seen = Math.min(window, slots);
    const scratch = k.scratch(4 * (seen + 4 + batch));
    const startsAt = scratch + 4 * (seen + 4);
    k.heap32().set(starts, startsAt >> 2);
    const [headStride, slotStride] = headsFirst ? [slots * headDim, headDim] : [headDim, kvHeads * headDim];
    k.exports.attend(
      k.offset(q),
      k.offset(keys),
      k.offset(values),
      k.offset(out),
      scratch,
      startsAt,
      batch,
      steps,
      heads,
      kvHeads,
      headDim,
      kvHeads * slots * headDim,
      headStride,
      slotStride,
      seen,
    );
    return out;
  },
});
