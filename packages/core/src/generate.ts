import * as tf from '@tensorflow/tfjs-core';
import type { Decoder, DecoderState, PrefillBuckets } from './decoder.js';
import { AbortError, InvalidArgumentError } from './errors.js';
import { greedyRows, greedyRowsSupported } from './kernel-sets/webgpu/greedy-rows.js';
import { topKRowsSupported } from './kernel-sets/webgpu/top-k-rows.js';
import { DEFAULT_PREFILL_BUCKETS, prefill } from './prefill.js';
import { type PickRead, readPicks } from './read-picks.js';
import { createSampler, type SamplingOptions } from './sampling/index.js';
import type { Sampler } from './sampling/sampler.js';
import { checkPositiveInteger } from './validate.js';

export interface GenerateOptions<S extends DecoderState = DecoderState> {
  model: Decoder<S>;
  /** One prompt, or one per batch row (lengths may differ). */
  prompt: ArrayLike<number> | ReadonlyArray<ArrayLike<number>>;
  maxNewTokens: number;
  sampling?: SamplingOptions;
  /** A row stops after emitting any of these (EOS ids and the like). */
  stopTokens?: Iterable<number>;
  signal?: AbortSignal;
  /** Cache size per row; default: longest prompt + maxNewTokens. */
  maxLength?: number;
  prefillBuckets?: PrefillBuckets;
}

export type FinishReason = 'stop' | 'length';

export interface TokenEvent {
  row: number;
  token: number;
  /** Position of the token in its row's sequence (prompt included). */
  position: number;
  /** 0 for the first generated token of the row. */
  index: number;
  /** Set on the row's last event. */
  finishReason?: FinishReason;
  timings: {
    /** Model pass (prefill for index 0) plus sampling that produced this token. */
    stepMs: number;
    /** Since generate() started. */
    elapsedMs: number;
  };
}

function toRows(prompt: GenerateOptions['prompt']): number[][] {
  const isBatch = Array.isArray(prompt) && prompt.length > 0 && typeof prompt[0] !== 'number';
  const rows = isBatch ? (prompt as ArrayLike<number>[]) : [prompt as ArrayLike<number>];
  return rows.map((r) => Array.from(r));
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason ?? new AbortError('generation aborted');
}

/** Lets timers and I/O run between steps, so an abort scheduled from outside can land. */
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Prefill, then one new step per iteration for every unfinished row, yielding
 * each token as soon as it is chosen. Rows stop on a stop token or after
 * maxNewTokens; an aborted signal throws its reason within one step. The
 * state and every tensor are released however the loop ends.
 */
export async function* generate<S extends DecoderState>(
  options: GenerateOptions<S>,
): AsyncGenerator<TokenEvent> {
  const { model, maxNewTokens, signal } = options;
  const prompts = toRows(options.prompt);
  checkPositiveInteger('maxNewTokens', maxNewTokens);
  const longest = Math.max(...prompts.map((p) => p.length));
  const maxLength = options.maxLength ?? longest + maxNewTokens;
  if (maxLength < longest + maxNewTokens) {
    throw new InvalidArgumentError(
      `maxLength ${maxLength} is too small for a prompt of ${longest} tokens plus ${maxNewTokens} new ones`,
    );
  }
  const sampler = createSampler(options.sampling);
  const stops = new Set(options.stopTokens ?? []);
  throwIfAborted(signal);
  const start = performance.now();
  const batch = prompts.length;
  const read = pickRead(sampler, batch);
  // Greedy on webgpu: each step runs on the previous step's argmax, still on the device, and is
  // queued before that argmax is read, so the GPU is not left waiting for the host's round trip.
  const chained = read.kind === 'argmax' && model.extendStepOnDevice !== undefined;
  const state = model.createState({ batch, maxLength });
  const histories = prompts.map((p) => [...p]);
  const finished = new Array<boolean>(batch).fill(false);
  const generated = new Array<number>(batch).fill(0);
  let inFlight: Step | undefined;
  // A step on the device: its logits, with their argmax when chained, and when it was asked for.
  const launch = (ids: number[][] | tf.Tensor1D): Step => {
    const started = performance.now();
    const frozen = Array.from(state.lengths);
    let logits: tf.Tensor3D;
    if (ids instanceof tf.Tensor) {
      const column = tf.reshape(ids, [batch, 1]) as tf.Tensor2D;
      try {
        logits = model.extendStepOnDevice!(state, column).logits;
      } finally {
        column.dispose();
      }
    } else {
      logits = model.extendStep(state, ids).logits;
    }
    // Finished rows step along on their last token and are rolled back, so one call serves the whole batch.
    if (finished.some(Boolean))
      model.rollback(
        state,
        frozen.map((l, r) => (finished[r] ? l : l + 1)),
      );
    return { logits, picks: chained ? greedyRows(logits) : undefined, started };
  };
  try {
    const logits = prefill(model, state, prompts, {
      buckets: options.prefillBuckets ?? model.prefillBuckets ?? DEFAULT_PREFILL_BUCKETS,
    });
    inFlight = { logits, picks: chained ? greedyRows(logits) : undefined, started: start };
    for (;;) {
      const current = inFlight!;
      inFlight = undefined;
      // Every unfinished row has the same count; after this read they have one more.
      const count = Math.max(...generated.filter((_, r) => !finished[r]));
      if (chained && count + 1 < maxNewTokens) inFlight = launch(current.picks!);
      // Asynchronous read: webgpu in Node has no synchronous download path. On webgpu greedy
      // reads back each row's argmax only, top-k sampling each row's k candidates.
      const vocab = current.logits.shape[2];
      const { values, argmax, rowLogits } = current.picks
        ? await readChained(current.logits, current.picks)
        : await readPicks(current.logits, read);
      const events: TokenEvent[] = [];
      for (let r = 0; r < batch; r++) {
        if (finished[r]) continue;
        const token =
          argmax && argmax[r] >= 0
            ? argmax[r]
            : sampler.sample(rowLogits?.(r) ?? values!.subarray(r * vocab, (r + 1) * vocab), histories[r]);
        histories[r].push(token);
        const index = generated[r]++;
        const finishReason: FinishReason | undefined = stops.has(token)
          ? 'stop'
          : generated[r] === maxNewTokens
            ? 'length'
            : undefined;
        if (finishReason) finished[r] = true;
        const now = performance.now();
        events.push({
          row: r,
          token,
          position: histories[r].length - 1,
          index,
          finishReason,
          timings: { stepMs: now - current.started, elapsedMs: now - start },
        });
      }
      for (const event of events) yield event;
      if (finished.every(Boolean)) return;
      await yieldToEventLoop();
      throwIfAborted(signal);
      inFlight ??= launch(histories.map((h) => [h[h.length - 1]]));
    }
  } finally {
    if (inFlight) {
      inFlight.picks?.dispose();
      inFlight.logits.dispose();
    }
    model.disposeState(state);
  }
}

/** A step queued on the device (see generate's `launch`). */
interface Step {
  logits: tf.Tensor3D;
  /** Each row's argmax, on the device (chained greedy decoding). */
  picks?: tf.Tensor1D;
  started: number;
}

/** A chained step's argmax read back, its logits too where a row was refused (−1); frees both. */
async function readChained(
  logits: tf.Tensor3D,
  picks: tf.Tensor1D,
): Promise<{ values?: Float32Array; argmax: Int32Array; rowLogits?: undefined }> {
  try {
    const argmax = (await picks.data()) as Int32Array;
    return argmax.includes(-1) ? { argmax, values: (await logits.data()) as Float32Array } : { argmax };
  } finally {
    picks.dispose();
    logits.dispose();
  }
}

/**
 * What a step's logits are read back as: each row's argmax (greedy without
 * a penalty) or its top-k candidates (top-k sampling without a penalty,
 * which reads only logits, not the history) where the device picks them
 * (webgpu), else all of them.
 */
function pickRead(sampler: Sampler, rows: number): PickRead {
  const { topK, repetitionPenalty } = sampler.options;
  if (sampler.plainArgmax && greedyRowsSupported(rows)) return { kind: 'argmax' };
  if (!sampler.plainArgmax && topK > 0 && repetitionPenalty === 1 && topKRowsSupported(rows, topK))
    return { kind: 'top-k', k: topK };
  return { kind: 'logits' };
}
