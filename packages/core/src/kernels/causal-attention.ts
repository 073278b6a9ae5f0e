import * as tf from '@tensorflow/tfjs-core';
import { requireWasmKernels, wasmKernels } from '../kernel-sets/wasm/wasm-kernels.js';
import { attentionProgram, combineProgram } from '../kernel-sets/webgpu/webgpu-attention.js';
import {
  type ProgramUniform,
  requireWebGpuPrograms,
  rowStarts,
  runWithStarts,
  webGpuPrograms,
} from '../kernel-sets/webgpu/webgpu-program.js';
import { cachedAttention, causalMask } from '../transformer/attention.js';

/**
 * Causal attention of new steps over a cache of keys and values. On wasm it
 * is one kernel of core's (on webgpu one WGSL program, webgpu-attention.ts) (scores, the causal and window limits, softmax
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
  /**
   * Queries are only the first queryHeads heads of q's axis 2: q may be a
   * packed q|k|v projection, read in place by the webgpu program (sliced
   * first elsewhere). Default: all of them.
   */
  queryHeads?: number;
  /**
   * The same starts as an int32 tensor on the device (webgpu): the program
   * reads them there, so a recorded pass (pass-tape.ts) replays with new
   * ones. Attention then splits by the cache's slots, not by the starts.
   */
  startsOnDevice?: tf.Tensor1D;
  /**
   * Rotate the queries as they are read, by this [batch·steps, headDim] cos|sin
   * table (rotate-half, as rotatePacked): a rotary model's packed projection
   * attended without a rotary program first. webgpu only.
   */
  cosSin?: tf.Tensor2D;
}

/**
 * Whether causalAttention runs as one kernel for this head size on the
 * current backend: core's SIMD kernel on wasm (headDim a multiple of 4), a
 * plain loop on cpu (as fast as tfjs's cpu ops, with no mask to build), a
 * WGSL program on webgpu (any head size).
 */
export function causalAttentionSupported(headDim: number): boolean {
  const backend = tf.getBackend();
  if (backend === 'cpu') return true;
  if (backend === 'webgpu') return webGpuPrograms() !== undefined;
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
  const [batch, steps, packedHeads, headDim] = q.shape;
  const heads = options.queryHeads ?? packedHeads;
  if (!(Number.isInteger(heads) && heads >= 1 && heads <= packedHeads)) {
    throw new Error(`causalAttention: queryHeads ${heads} is not in [1, ${packedHeads}]`);
  }
  // The WGSL program reads packed queries in place and takes a workgroup per (row, step, head)
  // (past 65,535 of them tfjs lays the dispatch out as a square, which the program allows for).
  const webgpu = tf.getBackend() === 'webgpu';
  const supported = causalAttentionSupported(headDim);
  if (options.cosSin && !(supported && webgpu)) {
    throw new Error('causalAttention: cosSin (queries rotated as read) needs core webgpu programs');
  }
  if (supported && (webgpu || heads === packedHeads)) {
    const attrs = {
      starts: Array.from(starts),
      window: Math.min(window, 2 ** 31 - 1),
      layout,
      queryHeads: heads,
    };
    const inputs: tf.NamedTensorMap = { q, keys, values };
    if (webgpu && options.startsOnDevice) inputs.starts = options.startsOnDevice;
    if (options.cosSin) {
      if (!webgpu) throw new Error('causalAttention: cosSin (queries rotated as read) is webgpu only');
      const [rows, width] = options.cosSin.shape;
      if (rows !== batch * steps || width !== headDim) {
        throw new Error(
          `causalAttention: cosSin [${options.cosSin.shape}] is not [${batch * steps},${headDim}]`,
        );
      }
      inputs.cosSin = options.cosSin;
    }
    return tf.engine().runKernel(CAUSAL_ATTENTION, inputs, attrs) as tf.Tensor2D;
  }
  return tf.tidy(() => {
    const queries = heads === packedHeads ? q : tf.slice(q, [0, 0, 0, 0], [batch, steps, heads, headDim]);
    return supported
      ? causalAttention(queries, keys, values, starts, { window, layout })
      : composedCausalAttention(queries, keys, values, starts, window, layout);
  });
}

/** causalAttention composed of tfjs ops (any backend, any head size). */
export function composedCausalAttention(
  q: tf.Tensor4D,
  keys: tf.Tensor4D,
  values: tf.Tensor4D,
  starts: ArrayLike<number>,
  window: number,
  layout: 'heads' | 'slots',
): tf.Tensor2D {
  return tf.tidy(() => {
    const [k, v] =
      layout === 'heads'
        ? [keys, values]
        : [tf.transpose(keys, [0, 2, 1, 3]), tf.transpose(values, [0, 2, 1, 3])];
    const mask = causalMask(starts, q.shape[1], k.shape[2], window);
    return cachedAttention(q, k as tf.Tensor4D, v as tf.Tensor4D, mask);
  });
}

/** Shapes and strides (in floats) of one kernel call, checked. */
function geometry(q: tf.TensorInfo, keys: tf.TensorInfo, attrs: tf.NamedAttrMap | undefined) {
  const starts = attrs!.starts as number[];
  const window = attrs!.window as number;
  const headsFirst = attrs!.layout !== 'slots';
  const [batch, steps, packedHeads, headDim] = q.shape;
  const heads = (attrs!.queryHeads as number | undefined) ?? packedHeads;
  const [, kvHeads, slots] = headsFirst ? keys.shape : [keys.shape[0], keys.shape[2], keys.shape[1]];
  if (
    heads % kvHeads !== 0 ||
    starts.length !== batch ||
    keys.shape[0] !== batch ||
    keys.shape[3] !== headDim
  ) {
    throw new Error(`causalAttention: unsupported shapes q [${q.shape}], keys [${keys.shape}]`);
  }
  for (const start of starts) {
    if (!(start >= 0 && start + steps <= slots)) {
      throw new Error(
        `causalAttention: a row starting at ${start} with ${steps} steps exceeds ${slots} slots`,
      );
    }
  }
  const [headStride, slotStride] = headsFirst ? [slots * headDim, headDim] : [headDim, kvHeads * headDim];
  const batchStride = kvHeads * slots * headDim;
  return {
    starts,
    window,
    batch,
    steps,
    heads,
    packedHeads,
    headDim,
    kvHeads,
    slots,
    batchStride,
    headStride,
    slotStride,
  };
}

tf.registerKernel({
  kernelName: CAUSAL_ATTENTION,
  backendName: 'cpu',
  kernelFunc: ({ inputs, attrs, backend }) => {
    const { q, keys, values } = inputs as Record<string, tf.TensorInfo>;
    const g = geometry(q, keys, attrs);
    const cpu = backend as unknown as { data: { get(id: object): { values: Float32Array } } };
    const [qs, ks, vs] = [q, keys, values].map((t) => cpu.data.get(t.dataId).values);
    const out = new Float32Array(g.batch * g.steps * g.heads * g.headDim);
    const scores = new Float64Array(Math.min(g.window, g.slots));
    const mixed = new Float64Array(g.headDim);
    for (let b = 0; b < g.batch; b++) {
      for (let s = 0; s < g.steps; s++) {
        const last = g.starts[b] + s;
        const first = Math.max(0, last + 1 - g.window);
        for (let h = 0; h < g.heads; h++) {
          const base = b * g.batchStride + Math.floor(h / (g.heads / g.kvHeads)) * g.headStride;
          const qAt = ((b * g.steps + s) * g.heads + h) * g.headDim;
          let max = Number.NEGATIVE_INFINITY;
          for (let j = first; j <= last; j++) {
            const at = base + j * g.slotStride;
            let dot = 0;
            for (let d = 0; d < g.headDim; d++) dot += qs[qAt + d] * ks[at + d];
            scores[j - first] = dot;
            if (dot > max) max = dot;
          }
          let total = 0;
          mixed.fill(0);
          for (let j = first; j <= last; j++) {
            const p = Math.exp(scores[j - first] - max);
            total += p;
            const at = base + j * g.slotStride;
            for (let d = 0; d < g.headDim; d++) mixed[d] += p * vs[at + d];
          }
          for (let d = 0; d < g.headDim; d++) out[qAt + d] = mixed[d] / total;
        }
      }
    }
    const shape = [g.batch * g.steps, g.heads * g.headDim];
    return { dataId: (backend as tf.KernelBackend).write(out, shape, 'float32'), shape, dtype: 'float32' };
  },
});

tf.registerKernel({
  kernelName: CAUSAL_ATTENTION,
  backendName: 'wasm',
  kernelFunc: ({ inputs, attrs }) => {
    const k = requireWasmKernels();
    const { q, keys, values } = inputs as Record<string, tf.TensorInfo>;
    const g = geometry(q, keys, attrs);
    if (g.headDim % 4 !== 0) throw new Error(`causalAttention: headDim ${g.headDim} is not a multiple of 4`);
    const out = k.backend.makeOutput([g.batch * g.steps, g.heads * g.headDim], 'float32');
    const seen = Math.min(g.window, g.slots);
    // The kernel's scratch: a group of up to 8 steps' queries, interleaved, 96 bytes of their
    // limits and sums, and their probabilities per slot (a group of 8 sees at most seen + 7 slots,
    // written up to 3 past, 32 bytes each); then the starts.
    const scratchBytes = 32 * (g.headDim + seen + 13);
    const scratch = k.scratch(scratchBytes + 4 * g.batch);
    const startsAt = scratch + scratchBytes;
    k.heap32().set(g.starts, startsAt >> 2);
    k.exports.attend(
      k.offset(q),
      k.offset(keys),
      k.offset(values),
      k.offset(out),
      scratch,
      startsAt,
      g.batch,
      g.steps,
      g.heads,
      g.kvHeads,
      g.headDim,
      g.batchStride,
      g.headStride,
      g.slotStride,
      seen,
    );
    return out;
  },
});

tf.registerKernel({
  kernelName: CAUSAL_ATTENTION,
  backendName: 'webgpu',
  kernelFunc: ({ inputs, attrs }) => {
    const { q, keys, values, starts: onDevice, cosSin } = inputs as Record<string, tf.TensorInfo | undefined>;
    const g = geometry(q!, keys!, attrs);
    const starts = rowStarts(onDevice ?? g.starts);
    const layout = attrs!.layout === 'slots' ? 'slots' : 'heads';
    // Starts read on the device may be any next time: split for the longest the cache holds.
    const splits = attentionSplits(onDevice ? { ...g, starts: [g.slots - g.steps] } : g);
    const uniforms = (n: number): ProgramUniform[] => [
      { type: 'int32', data: [g.window] },
      { type: 'int32', data: [g.heads] },
      { type: 'int32', data: [n] },
    ];
    const used = cosSin ? [q!, keys!, values!, cosSin] : [q!, keys!, values!];
    if (splits === 1)
      return runWithStarts(
        attentionProgram(g, layout, starts, 1, cosSin !== undefined),
        used,
        starts,
        uniforms(1),
      );
    const parts = runWithStarts(
      attentionProgram(g, layout, starts, splits, cosSin !== undefined),
      used,
      starts,
      uniforms(splits),
    );
    const items = g.batch * g.steps * g.heads;
    try {
      return requireWebGpuPrograms().runWebGPUProgram(
        combineProgram(items, g.headDim, [g.batch * g.steps, g.heads * g.headDim]),
        [parts],
        'float32',
        [{ type: 'int32', data: [splits] }],
      );
    } finally {
      tf.backend().disposeData(parts.dataId);
    }
  },
});

/** Slots a split attention workgroup takes at least (flash-decoding below this gains nothing). */
const SPLIT_SLOTS = 128;
/** Below this many (row, step, head) items the GPU has idle units: split each item's slots. */
const SPLIT_BELOW_ITEMS = 256;

/**
 * Workgroups per (row, step, head): 1, unless few items see many slots
 * (a decode step at long context), then enough that each takes about
 * SPLIT_SLOTS and all of them about SPLIT_BELOW_ITEMS, at most 64.
 */
export function attentionSplits(g: {
  batch: number;
  steps: number;
  heads: number;
  window: number;
  starts: ArrayLike<number>;
}): number {
  const items = g.batch * g.steps * g.heads;
  // SPECSTREAM_ATTENTION_SPLIT=off keeps one workgroup per item (to measure what splitting gains).
  if (items >= SPLIT_BELOW_ITEMS || globalThis.process?.env?.SPECSTREAM_ATTENTION_SPLIT === 'off') return 1;
  const seen = Math.min(g.window, Math.max(...Array.from(g.starts)) + g.steps);
  return Math.max(
    1,
    Math.min(64, Math.floor(seen / SPLIT_SLOTS), Math.ceil((4 * SPLIT_BELOW_ITEMS) / items)),
  );
}
