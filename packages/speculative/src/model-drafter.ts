import {
  AbortError,
  DEFAULT_PREFILL_BUCKETS,
  type Decoder,
  type DecoderState,
  greedyRows,
  greedyRowsSupported,
  greedyToken,
  InvalidArgumentError,
  type PrefillBuckets,
  prefill,
  type Sampler,
  sampleFrom,
} from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import type { DeviceProposal, DraftContext, Drafter, Proposal } from './drafter.js';

export interface ModelDrafterOptions {
  /** Chunk sizes for catching up on the prompt and on accepted tokens. */
  prefillBuckets?: PrefillBuckets;
  /**
   * What the draft reads in place of an id it has no embedding for: with a
   * target vocabulary padded past the draft's (32064 vs 32000), the target
   * may emit (or a prompt hold) one of the extra ids. Default 0. Exactness
   * does not depend on it, since the target verifies every proposal; only
   * the next few proposals may be worse.
   */
  unknownId?: number;
}

/**
 * A smaller decoder as drafter: k single steps on its own KV cache, drawing
 * each token from q (the draft's logits under the generation's sampling
 * settings) and keeping q for verification. Between iterations the cache is
 * rolled back to the longest prefix it shares with the accepted text and
 * fed what it has not seen (the correction or bonus token, and after a full
 * acceptance the last drafted token too), in one call for the whole batch.
 */
export function modelDrafter<S extends DecoderState>(
  model: Decoder<S>,
  options: ModelDrafterOptions = {},
): Drafter {
  // Catch-up is usually 1–2 tokens per row: small buckets keep it to one call.
  const buckets = options.prefillBuckets ?? model.prefillBuckets ?? [...DEFAULT_PREFILL_BUCKETS, 4, 2];
  const unknown = options.unknownId ?? 0;
  if (!Number.isInteger(unknown) || unknown < 0 || unknown >= model.vocabSize) {
    throw new InvalidArgumentError(
      `unknownId must be an id of the draft, in [0, ${model.vocabSize}), got ${unknown}`,
    );
  }
  // The cache bookkeeping keeps the real ids (it is compared with the text); only what is fed is mapped.
  const readable = (rows: number[][]) =>
    rows.map((row) => row.map((id) => (id < model.vocabSize ? id : unknown)));
  return {
    name: 'model',
    vocabSize: model.vocabSize,
    maxPositions: model.maxPositions,
    start({ batch, maxLength, sampler, prompts }) {
      const state = model.createState({ batch, maxLength });
      // Exactly the tokens in the draft cache, per row (length == state.lengths[row]).
      const cached: number[][] = Array.from({ length: batch }, () => []);
      // Read the prompts now, all but their last token (the first proposal starts from it).
      if (prompts !== undefined && prompts.length === batch && prompts.every((p) => p.length >= 2)) {
        const heads = prompts.map((p) => p.slice(0, -1));
        try {
          prefill(model, state, readable(heads), { buckets }).dispose();
        } catch (error) {
          model.disposeState(state);
          throw error;
        }
        for (const [r, h] of heads.entries()) cached[r].push(...h);
      }
      // The session's rows all draw with the generation's sampler.
      const input = ({ histories, active, k, signal }: DraftContext): DraftRowsInput<typeof state> => ({
        model,
        state,
        cached,
        histories,
        active,
        k,
        signal,
        samplers: histories.map(() => sampler),
        buckets,
        unknownId: unknown,
      });
      return {
        propose: (context) => draftRows(input(context)),
        proposeOnDevice: (context) => draftRowsOnDevice(input(context)),
        dispose() {
          model.disposeState(state);
        },
      };
    },
  };
}

/** One proposal on a draft state the caller owns (`draftRows`). */
export interface DraftRowsInput<S extends DecoderState> {
  model: Decoder<S>;
  state: S;
  /** Per row, exactly the tokens in the draft cache (state.lengths[r] of them); updated in place. */
  cached: number[][];
  /** Per row: every token so far (prompt and emitted). */
  histories: ReadonlyArray<readonly number[]>;
  /** Rows whose proposals are wanted; the others step along on their last token. */
  active: readonly boolean[];
  k: number;
  signal?: AbortSignal;
  /** One sampler per row: rows may have their own settings and random streams. */
  samplers: ReadonlyArray<Sampler>;
  /** Chunk sizes of a ragged or long catch-up. */
  buckets: PrefillBuckets;
  /** What the draft reads in place of an id past its vocabulary (see ModelDrafterOptions). */
  unknownId: number;
}

/**
 * The model drafter's proposal on a state the caller owns: each row's cache is rolled back
 * to the longest prefix it shares with the row's history and fed the rest (one call for the
 * batch), then k single steps draw each active row's tokens from its own sampler, keeping q
 * for verification. modelDrafter's sessions run it with one sampler for every row; a
 * continuous-batching scheduler, whose rows come and go with their own settings, runs it on
 * the draft state it manages.
 */
export async function draftRows<S extends DecoderState>(input: DraftRowsInput<S>): Promise<Proposal[]> {
  const { model, state, cached, histories, active, k, signal, samplers } = input;
  if (onDevice(input)) {
    const proposal = draftRowsOnDevice(input)!;
    try {
      const picks = (await proposal.ids.data()) as Int32Array;
      return await proposal.settle(picks);
    } finally {
      proposal.dispose();
    }
  }
  let logits: tf.Tensor3D | undefined = catchUp(input);
  const proposals: Proposal[] = histories.map((_, r) =>
    samplers[r].plainArgmax ? { tokens: [] } : { tokens: [], probs: [] },
  );
  const vocab = model.vocabSize;
  try {
    for (let i = 0; i < k; i++) {
      const values = (await logits.data()) as Float32Array;
      logits.dispose();
      logits = undefined;
      const next = histories.map((h, r) => {
        if (!active[r]) return cached[r][cached[r].length - 1];
        const row = values.subarray(r * vocab, (r + 1) * vocab);
        const sampler = samplers[r];
        if (sampler.plainArgmax) {
          // Deterministic proposal: the verifier treats q as one-hot, which is what it is.
          const token = greedyToken(row);
          proposals[r].tokens.push(token);
          return token;
        }
        const penalized = sampler.options.repetitionPenalty !== 1;
        const q = sampler.probs(row, penalized ? [...h, ...proposals[r].tokens] : undefined);
        const token = sampleFrom(q, sampler.rng);
        proposals[r].tokens.push(token);
        proposals[r].probs?.push(q);
        return token;
      });
      // The last drafted token is not fed: verification decides whether it stays.
      if (i === k - 1) break;
      if (signal?.aborted) throw signal.reason ?? new AbortError('generation aborted');
      ({ logits } = model.extendStep(
        state,
        next.map((t) => [t]),
        { logits: 'last' },
      ));
      for (const [r, t] of next.entries()) cached[r].push(t);
    }
  } finally {
    logits?.dispose();
  }
  return proposals;
}

/** Whether `draftRows` chains greedy picks on the device: every sampler a plain argmax, a device path, k ≥ 1. */
function onDevice<S extends DecoderState>({ model, samplers, histories, k }: DraftRowsInput<S>): boolean {
  return (
    k > 0 &&
    samplers.every((s) => s.plainArgmax) &&
    model.extendStepOnDevice !== undefined &&
    greedyRowsSupported(histories.length)
  );
}

/**
 * Rolls each row's cache back to the longest prefix it shares with the row's history and
 * feeds the rest, in one call for the batch: the last position's logits [batch, 1, vocab].
 */
function catchUp<S extends DecoderState>(input: DraftRowsInput<S>): tf.Tensor3D {
  const { model, state, cached, histories, buckets } = input;
  const unknown = input.unknownId;
  const readable = (rows: number[][]) =>
    rows.map((row) => row.map((id) => (id < model.vocabSize ? id : unknown)));
  const keep = histories.map((h, r) => Math.min(commonPrefix(cached[r], h), h.length - 1));
  model.rollback(state, keep);
  keep.forEach((n, r) => {
    cached[r].length = n;
  });
  const pending = histories.map((h, r) => h.slice(keep[r]));
  // Equal catch-ups (the usual case: one token per row) take one plain step;
  // ragged or long ones go through bucketed prefill.
  const uniform = pending.every((p) => p.length === pending[0].length) && pending[0].length <= 8;
  const logits = uniform
    ? model.extendStep(state, readable(pending), { logits: 'last' }).logits
    : prefill(model, state, readable(pending), { buckets });
  for (const [r, p] of pending.entries()) cached[r].push(...p);
  return logits;
}

/**
 * Greedy drafting without a read at all (webgpu): the catch-up, then k picks chained on the
 * device, each step's argmax (`greedyRows`, one dispatch) fed to the next step directly. The
 * picks stay on the device for the caller, who reads them when it reads something else
 * anyway (speculativeGenerate: with the verify pass's picks, one read an iteration) and
 * settles the proposal with them. On an H200 a k = 8 proposal of a 2-layer GPT-2 draft took
 * 18 ms chained, 25–28 ms with a read per step. Each step's logits are kept until the
 * settle, so a row that greedyToken would refuse (−1) raises the sampler's own error, as the
 * host path does. Undefined where `draftRows` would not chain (see onDevice).
 */
export function draftRowsOnDevice<S extends DecoderState>(
  input: DraftRowsInput<S>,
): DeviceProposal | undefined {
  if (!onDevice(input)) return undefined;
  const { model, state, cached, active, k, signal } = input;
  const first = catchUp(input);
  const batch = first.shape[0];
  const picks: tf.Tensor2D[] = [];
  const stepLogits: tf.Tensor3D[] = [first];
  let ids: tf.Tensor2D;
  try {
    for (let i = 0; i < k; i++) {
      const current = stepLogits[i];
      picks.push(tf.tidy(() => tf.reshape(greedyRows(current), [batch, 1]) as tf.Tensor2D));
      // The last pick is not fed: verification decides whether it stays.
      if (i === k - 1) break;
      if (signal?.aborted) throw signal.reason ?? new AbortError('generation aborted');
      stepLogits.push(model.extendStepOnDevice!(state, picks[i], { logits: 'last' }).logits);
    }
    ids = k === 1 ? picks[0] : (tf.concat(picks, 1) as tf.Tensor2D);
  } catch (error) {
    tf.dispose(stepLogits);
    tf.dispose(picks);
    throw error;
  }
  if (k > 1) tf.dispose(picks);
  let disposed = false;
  const dispose = () => {
    if (disposed) return;
    disposed = true;
    ids.dispose();
    tf.dispose(stepLogits);
  };
  return {
    ids,
    async settle(values) {
      if (disposed) throw new InvalidArgumentError('the proposal was disposed');
      if (values.length !== batch * k) {
        throw new InvalidArgumentError(
          `settle takes ${batch * k} picks ([${batch}, ${k}]), got ${values.length}`,
        );
      }
      const vocab = model.vocabSize;
      for (let i = 0; i < k; i++) {
        for (let r = 0; r < batch; r++) {
          if (active[r] && values[r * k + i] < 0) {
            const row = ((await stepLogits[i].data()) as Float32Array).subarray(r * vocab, (r + 1) * vocab);
            greedyToken(row); // throws: NaN or +∞ in the row, or nothing above −∞
          }
        }
      }
      const rows = Array.from({ length: batch }, (_, r) => Array.from(values.subarray(r * k, (r + 1) * k)));
      // Every row's first k − 1 picks went into the draft cache, finished rows' too.
      for (const [r, row] of rows.entries()) cached[r].push(...row.slice(0, k - 1));
      return rows.map((tokens, r) => ({ tokens: active[r] ? tokens : [] }));
    },
    dispose,
  };
}

function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}
