import {
  AbortError,
  checkPositiveInteger,
  createSampler,
  DEFAULT_PREFILL_BUCKETS,
  type Decoder,
  type DecoderState,
  type FinishReason,
  getLogger,
  greedyRows,
  greedyRowsSupported,
  greedyToken,
  InvalidArgumentError,
  type PrefillBuckets,
  prefill,
  readPicks,
  type Sampler,
  type SamplingOptions,
  type TokenEvent,
} from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { type AcceptResult, type AcceptRule, acceptDraft } from './accept.js';
import type { DeviceProposal, Proposal } from './drafter.js';
import {
  addMetrics,
  emptyMetrics,
  rates,
  type SpeculativeMetrics,
  type SpeculativeRates,
} from './metrics.js';
import { type PairOptions, speculativePair } from './pair.js';

export interface SpeculativeGenerateOptions extends PairOptions {
  /** One prompt, or one per batch row (lengths may differ). */
  prompt: ArrayLike<number> | ReadonlyArray<ArrayLike<number>>;
  maxNewTokens: number;
  /** Applied identically to the target's p and the draft's q. */
  sampling?: SamplingOptions;
  stopTokens?: Iterable<number>;
  signal?: AbortSignal;
  prefillBuckets?: PrefillBuckets;
  /** This call's metrics are added into it when the call ends: pass the same object to accumulate. */
  totals?: SpeculativeMetrics;
  /** Replaces the speculative sampling rule: for experiments and for tests that must see a wrong rule fail. */
  acceptRule?: AcceptRule;
  /**
   * Greedy on a device path (webgpu): feed the draft's picks to the verify pass on the device
   * and read both passes' picks at once, one read an iteration instead of two. Default off: on
   * an H100 it measured slower (RESULTS.md, GPU: at k = 3, 446–521 tokens/s against 790–812
   * with two reads) when the window was built with a tfjs upload and a concat; it is now
   * written where the verify pass reads it (SplitTokens), not yet measured on a GPU.
   */
  verifyOnDevice?: boolean;
}

export interface SpeculativeTokenEvent extends TokenEvent {
  /** True when the token was drafted and accepted; false for the target's own (correction, bonus, first). */
  drafted: boolean;
}

/** An AsyncIterable of token events whose metrics fill in as it runs. */
export interface SpeculativeRun extends AsyncIterable<SpeculativeTokenEvent> {
  readonly metrics: SpeculativeMetrics;
  rates(): SpeculativeRates;
}

function toRows(prompt: SpeculativeGenerateOptions['prompt']): number[][] {
  const isBatch = Array.isArray(prompt) && prompt.length > 0 && typeof prompt[0] !== 'number';
  const rows = isBatch ? (prompt as ArrayLike<number>[]) : [prompt as ArrayLike<number>];
  return rows.map((r) => Array.from(r));
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason ?? new AbortError('generation aborted');
}

/** acceptDraft's outcome for a one-hot p, without building it: accept while the argmax agrees. */
function acceptGreedy(draft: readonly number[], argmax: (i: number) => number): AcceptResult {
  for (let i = 0; ; i++) {
    const token = argmax(i);
    if (i === draft.length || token !== draft[i]) return { accepted: i, next: token };
  }
}

/** One row of a verification pass, as `verifyRow` takes it. */
export interface VerifyRowInput {
  /** The row's drafted tokens d_1..d_m (m may be 0). */
  draft: readonly number[];
  /** The draft's q_1..q_m, when the drafter sampled (see Proposal.probs). */
  q?: ReadonlyArray<Float32Array>;
  /** The target's logits at window position i (0..m) of this row. */
  logits: (i: number) => Float32Array;
  /** Where the argmax was taken on the device: position i's, or −1 where it must be read from the logits. */
  argmax?: (i: number) => number;
  /** The row's sampler: its settings make p, its random stream draws the coins. */
  sampler: Sampler;
  /** The row's text so far (prompt and emitted), read for a repetition penalty. */
  history: readonly number[];
  /** Default acceptDraft. */
  rule?: AcceptRule;
}

/**
 * The acceptance of one row of a verification pass: acceptDraft (or `rule`) on the row's
 * processed p, or, greedy without a penalty, a comparison of argmaxes with no distribution
 * built. speculativeGenerate runs it on each row; a scheduler with per-row settings calls it
 * with each row's own sampler.
 */
export function verifyRow(input: VerifyRowInput): AcceptResult {
  const { draft, logits, sampler, history } = input;
  const rule = input.rule ?? acceptDraft;
  if (sampler.plainArgmax && rule === acceptDraft) {
    return acceptGreedy(draft, (i) => {
      const token = input.argmax?.(i) ?? -1;
      return token >= 0 ? token : greedyToken(logits(i));
    });
  }
  const penalized = sampler.options.repetitionPenalty !== 1;
  return rule({
    draft,
    q: input.q,
    p: (i) => sampler.probs(logits(i), penalized ? [...history, ...draft.slice(0, i)] : undefined),
    rng: sampler.rng,
  });
}

/**
 * The verify pass of a proposal left on the device: each row's window [last token, its k
 * picks] is scored (the last tokens written from the host, the picks copied on the device), each position's argmax taken there, and
 * the draft's picks and the target's come back in one read. Where a target position was
 * refused (−1) its logits are read too, so verifyRow raises the sampler's own error.
 * Disposes the proposal.
 */
async function verifyOnDevice<S extends DecoderState>(
  target: Decoder<S>,
  state: S,
  histories: ReadonlyArray<readonly number[]>,
  proposal: DeviceProposal,
): Promise<{ proposals: Proposal[]; values?: Float32Array; argmax: Int32Array }> {
  let logits: tf.Tensor3D | undefined;
  try {
    const [batch, k] = proposal.ids.shape;
    // Each row's last token from the host, the draft's picks after it from the device.
    const first = histories.map((h) => h[h.length - 1]);
    ({ logits } = target.extendStepOnDevice!(state, { first, rest: proposal.ids }));
    const scored = logits;
    const both = tf.tidy(() => tf.concat([tf.reshape(proposal.ids, [-1]), greedyRows(scored)]));
    const picks = (await both.data().finally(() => both.dispose())) as Int32Array;
    const proposals = await proposal.settle(picks.subarray(0, batch * k));
    const argmax = picks.subarray(batch * k);
    const values = argmax.includes(-1) ? ((await logits.data()) as Float32Array) : undefined;
    return { proposals, values, argmax };
  } finally {
    logits?.dispose();
    proposal.dispose();
  }
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Speculative decoding with the surface of core's `generate`: the target's
 * prefill gives each row its first token; then each iteration the drafter
 * proposes up to k tokens per row, the target scores every row's
 * [last token, d_1..d_k] in ONE extendStep, `acceptDraft` keeps a prefix
 * and adds one token of the target's, and the target cache rolls back to
 * the accepted length (the drafter re-syncs its own on the next proposal).
 * Output is distributed exactly as target-only decoding (identical tokens
 * when greedy). Validates the pair and arguments at the call; the work runs
 * when iterated.
 */
export function speculativeGenerate(options: SpeculativeGenerateOptions): SpeculativeRun {
  const { target, drafter, policy } = speculativePair(options);
  const prompts = toRows(options.prompt);
  const { maxNewTokens, signal } = options;
  checkPositiveInteger('maxNewTokens', maxNewTokens);
  if (prompts.length === 0) throw new InvalidArgumentError('prompt has no rows');
  // Prompts are the target's text: ids past a shorter draft vocabulary are the drafter's to handle.
  const vocab = target.vocabSize;
  prompts.forEach((p, r) => {
    if (p.length === 0) throw new InvalidArgumentError(`prompt of row ${r} is empty`);
    const bad = p.findIndex((t) => !Number.isInteger(t) || t < 0 || t >= vocab);
    if (bad >= 0) {
      throw new InvalidArgumentError(
        `prompt row ${r} position ${bad}: token id ${p[bad]} is outside [0, ${vocab})`,
      );
    }
  });
  const sampler = createSampler(options.sampling);
  const rule = options.acceptRule ?? acceptDraft;
  const stops = new Set(options.stopTokens ?? []);
  const longest = Math.max(...prompts.map((p) => p.length));
  // Verification writes up to k positions past the text, and the draft up to k − 1;
  // learned position tables (target's or draft's) cap that, and k shrinks near the cap.
  const positions = Math.min(target.maxPositions, drafter.maxPositions ?? Number.POSITIVE_INFINITY);
  const capacity = Math.min(longest + maxNewTokens + policy.maxK, positions);
  if (longest + maxNewTokens > capacity) {
    const whose = target.maxPositions <= positions ? 'target' : 'draft';
    throw new InvalidArgumentError(
      `a prompt of ${longest} tokens plus ${maxNewTokens} new ones exceeds the ${positions} positions of the ${whose}`,
    );
  }
  const metrics = emptyMetrics();
  const log = getLogger('speculative');
  // Greedy without a penalty: compare argmaxes directly instead of building one-hot distributions.
  const fastGreedy = sampler.plainArgmax && rule === acceptDraft;

  async function* run(): AsyncGenerator<SpeculativeTokenEvent> {
    throwIfAborted(signal);
    const start = performance.now();
    const batch = prompts.length;
    const histories = prompts.map((p) => [...p]);
    const finished = new Array<boolean>(batch).fill(false);
    const generated = new Array<number>(batch).fill(0);
    const state = target.createState({ batch, maxLength: capacity });
    let session: ReturnType<typeof drafter.start> | undefined;

    /** Appends `tokens` to row r up to a stop token or the limit, returning their events. */
    const emit = (r: number, tokens: number[], accepted: number, stepMs: number): SpeculativeTokenEvent[] => {
      const events: SpeculativeTokenEvent[] = [];
      for (let i = 0; i < tokens.length && !finished[r]; i++) {
        histories[r].push(tokens[i]);
        const index = generated[r]++;
        const finishReason: FinishReason | undefined = stops.has(tokens[i])
          ? 'stop'
          : generated[r] === maxNewTokens
            ? 'length'
            : undefined;
        if (finishReason) finished[r] = true;
        events.push({
          row: r,
          token: tokens[i],
          position: histories[r].length - 1,
          index,
          finishReason,
          drafted: i < accepted,
          timings: { stepMs: i === 0 ? stepMs : 0, elapsedMs: performance.now() - start },
        });
      }
      metrics.emittedTokens += events.length;
      return events;
    };

    try {
      let t0 = performance.now();
      const first = prefill(target, state, prompts, {
        buckets: options.prefillBuckets ?? target.prefillBuckets ?? DEFAULT_PREFILL_BUCKETS,
      });
      const firstValues = (await first.data().finally(() => first.dispose())) as Float32Array;
      const tv = target.vocabSize;
      metrics.prefillMs = performance.now() - t0;
      const firstEvents = prompts.flatMap((_, r) =>
        emit(
          r,
          [sampler.sample(firstValues.subarray(r * tv, (r + 1) * tv), histories[r])],
          0,
          metrics.prefillMs,
        ),
      );
      yield* firstEvents;
      t0 = performance.now();
      session = drafter.start({ batch, maxLength: capacity, sampler, prompts });
      metrics.draftPrefillMs = performance.now() - t0;
      metrics.prefillMs += metrics.draftPrefillMs;

      while (!finished.every(Boolean)) {
        await yieldToEventLoop();
        throwIfAborted(signal);
        t0 = performance.now();
        const active = finished.map((f) => !f);
        // Finished rows ride along in every pass (and are rolled back): they need the room too.
        const room = capacity - Math.max(...histories.map((h) => h.length));
        // Drafts past the last token a row still needs would be verified and thrown away:
        // a pass yields up to k + 1 tokens, so the final iterations draft less.
        const needed = Math.max(...generated.map((g, r) => (active[r] ? maxNewTokens - g : 0)));
        const k = Math.max(0, Math.min(policy.next(), room, needed - 1));
        // Greedy on a device path (webgpu): the draft's picks go straight into the verify pass,
        // and both passes' picks come back in one read.
        const device =
          k > 0 &&
          fastGreedy &&
          target.extendStepOnDevice &&
          options.verifyOnDevice === true &&
          greedyRowsSupported(batch * (k + 1))
            ? session.proposeOnDevice?.({ histories, active, k, signal })
            : undefined;
        let proposals: Proposal[];
        let draftMs: number;
        let steps: number;
        let values: Float32Array | undefined;
        let argmax: Int32Array | undefined;
        if (device) {
          // Only the draft's submissions are timed here: its GPU time shows up in verifyMs.
          draftMs = performance.now() - t0;
          t0 = performance.now();
          steps = k + 1;
          ({ proposals, values, argmax } = await verifyOnDevice(target, state, histories, device));
        } else {
          proposals =
            k > 0
              ? await session.propose({ histories, active, k, signal })
              : histories.map(() => ({ tokens: [] }));
          draftMs = performance.now() - t0;
          throwIfAborted(signal);
          t0 = performance.now();
          steps = 1 + Math.max(...proposals.map((p, r) => (active[r] ? Math.min(p.tokens.length, k) : 0)));
          const window = histories.map((h, r) => {
            const last = h[h.length - 1];
            const d = active[r] ? proposals[r].tokens.slice(0, k) : [];
            return [last, ...d, ...new Array<number>(steps - 1 - d.length).fill(last)];
          });
          const { logits } = target.extendStep(state, window);
          ({ values, argmax } = await readPicks(logits, fastGreedy && greedyRowsSupported(batch * steps)));
        }
        const drafts = proposals.map((p, r) => (active[r] ? p.tokens.slice(0, k) : []));
        const verifyMs = performance.now() - t0;

        const events: SpeculativeTokenEvent[] = [];
        const accepted: number[] = [];
        for (let r = 0; r < batch; r++) {
          if (!active[r]) continue;
          const d = drafts[r];
          const base = r * steps * tv;
          const row = (i: number) => values!.subarray(base + i * tv, base + (i + 1) * tv);
          const result = verifyRow({
            draft: d,
            q: proposals[r].probs,
            logits: row,
            argmax: argmax && ((i) => argmax[r * steps + i]),
            sampler,
            history: histories[r],
            rule,
          });
          accepted.push(result.accepted);
          metrics.draftedTokens += d.length;
          metrics.acceptedTokens += result.accepted;
          if (result.accepted < d.length) metrics.rejections++;
          events.push(
            ...emit(r, [...d.slice(0, result.accepted), result.next], result.accepted, draftMs + verifyMs),
          );
        }
        // The target keeps every emitted token but the last, which the next window starts with.
        target.rollback(
          state,
          histories.map((h) => h.length - 1),
        );
        metrics.iterations++;
        metrics.targetPasses++;
        metrics.rowPasses += accepted.length;
        metrics.kSum += k;
        metrics.draftMs += draftMs;
        metrics.verifyMs += verifyMs;
        policy.observe({
          k,
          proposed: drafts.filter((_, r) => active[r]).map((d) => d.length),
          accepted,
          draftSteps: k,
          draftMs,
          verifyMs,
        });
        metrics.totalMs = performance.now() - start;
        yield* events;
      }
    } finally {
      session?.dispose();
      target.disposeState(state);
      metrics.totalMs = performance.now() - start;
      if (options.totals) addMetrics(options.totals, metrics);
      log.debug({ drafter: drafter.name, ...metrics, ...rates(metrics) }, 'speculative generation');
    }
  }

  return {
    metrics,
    rates: () => rates(metrics),
    [Symbol.asyncIterator]: run,
  };
}
