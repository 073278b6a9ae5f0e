import {
  type CausalLm,
  type CausalLmState,
  createSampler,
  DEFAULT_PREFILL_BUCKETS,
  getLogger,
  InvalidArgumentError,
  MAX_PREFILL_CHUNK,
  type PrefillBuckets,
  type Sampler,
  type SamplingOptions,
  SpecstreamError,
} from '@specstream/core';
import {
  adaptiveK,
  draftRows,
  fixedK,
  type KPolicy,
  type Proposal,
  verifyRow,
} from '@specstream/speculative';
import * as tf from '@tensorflow/tfjs-core';
import { copyRows, type RowMove } from './kv-rows.js';

/** Why a request's generation ended. */
export type EndReason = 'stop' | 'length' | 'cancelled';

/** One request as the scheduler sees it: token ids in, token ids out. */
export interface GenerationRequest {
  /** Token ids of the prompt (at least one). */
  prompt: readonly number[];
  /** Tokens to generate at most (≥ 1); prompt + maxTokens must fit the context. */
  maxTokens: number;
  /** Per request; seeded requests repeat with a fixed k (adaptive k picks k from timings). */
  sampling?: SamplingOptions;
  /** The request ends after emitting one of these (the end-of-sequence id). */
  stopTokens?: readonly number[];
  /** Aborting frees the request's row at the next step boundary. */
  signal?: AbortSignal;
  /**
   * Each step's accepted tokens for this request, in order, the last carrying the finish
   * reason when the request ends with them. Return true to end the request here (a stop
   * string found in the text): nothing more is generated for it.
   */
  onTokens(tokens: number[], finish: 'stop' | 'length' | undefined): boolean | undefined;
}

export interface GenerationResult {
  finishReason: EndReason;
  promptTokens: number;
  completionTokens: number;
  /** From submit to the first token, when there was one. */
  firstTokenMs?: number;
}

/** What one scheduler step did, for metrics. */
export interface StepReport {
  kind: 'decode' | 'prefill';
  ms: number;
  /** Decode: rows generating; prefill: prompt rows fed. */
  rows: number;
  /** Tokens emitted to requests. */
  emitted: number;
  /** Decode: k asked for, tokens drafted for generating rows, and accepted, and rows with a rejection. */
  k?: number;
  drafted?: number;
  accepted?: number;
  rejections?: number;
  /** Decode: the draft's part (catch-up and k steps) and the verify pass's, in ms. */
  draftMs?: number;
  verifyMs?: number;
  /** Prefill: prompt tokens fed. */
  promptTokens?: number;
  /** Prefill: moving finished prompts into the decoding batch (copyRows, and a resize if needed), in ms. */
  joinMs?: number;
}

export interface SchedulerOptions {
  target: CausalLm;
  /** The draft model proposing for every row; leave it out to decode with the target alone. */
  draft?: CausalLm;
  /** Rows decoding at once (default 16). */
  maxBatch?: number;
  /** Requests waiting for a row, past which submit refuses (default 64). */
  maxQueue?: number;
  /** Positions per row: prompt plus generated tokens (default: the target's context, else 2048). */
  context?: number;
  /** Prompts prefilled together at most (default 4). */
  prefillRows?: number;
  /** Tokens drafted per step: fixed, or adaptive (default: adaptiveK per batch size). */
  k?: number;
  /**
   * The k policy of a batch size (rows of the decoding state), made once per size; it observes
   * every step, plain ones (k = 0) included. Default: adaptiveK, k ≤ 8 / rows. Ignored with `k`.
   */
  kPolicy?: (batch: number) => KPolicy;
  /** Called after every step. */
  onStep?: (report: StepReport) => void;
}

/** submit() refuses: the queue is full. */
export class QueueFullError extends SpecstreamError {
  override readonly name = 'QueueFullError';
}

/** submit() refuses: the scheduler is closed. */
export class SchedulerClosedError extends SpecstreamError {
  override readonly name = 'SchedulerClosedError';
}

type Phase = 'queued' | 'prefill' | 'decode' | 'done';

interface Job {
  request: GenerationRequest;
  sampler: Sampler;
  stops: Set<number>;
  prompt: number[];
  /** Prompt and emitted tokens. */
  history: number[];
  generated: number;
  phase: Phase;
  /** Prompt tokens in the staging caches. */
  prefilled: number;
  submittedAt: number;
  firstTokenMs?: number;
  end?: EndReason;
  resolve(result: GenerationResult): void;
  reject(error: unknown): void;
}

/** The model states of one set of rows: the target's and, with a draft, the draft's. */
interface Rows {
  target: CausalLmState;
  draft?: CausalLmState;
  jobs: (Job | undefined)[];
  /** Per row, the tokens in the draft cache (draftRows keeps it). */
  draftCached: number[][];
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Batch sizes in powers of two (capped at max): a state of n rows computes all n. */
function bucket(rows: number, max: number): number {
  let size = 1;
  while (size < rows) size *= 2;
  return Math.min(size, max);
}

/** Positions a row may reach: its prompt, its completion, and room for a full draft near the end. */
function need(job: Job): number {
  return job.prompt.length + job.request.maxTokens + 8;
}

/**
 * Continuous batching with speculative decoding. Requests wait in a queue; at a step
 * boundary up to `prefillRows` of them are prefilled together on a small staging state, one
 * chunk per scheduler turn, interleaved with the decoding steps of the running rows (the
 * chunk's size is chosen so that it costs about one decoding step, so running streams are
 * not held up by a long prompt; with nothing decoding a prompt goes in whole). A finished
 * prompt samples its first token, and its caches (target and draft) are copied into a free
 * row of the decoding batch. Each decoding step the draft proposes k tokens for every row
 * (draftRows, each row with its own sampler), the target verifies all rows in one extendStep,
 * and each row accepts its own prefix (verifyRow): rows accept different numbers of tokens,
 * exactly as speculativeGenerate's batches do. Finished, cancelled or disconnected requests
 * leave at the next boundary: their row is rolled back to 0 and reused.
 *
 * The decoding batch is a state of a power-of-two number of rows (every row of a state is
 * computed each step, used or not): it grows when a prompt finds no free row and shrinks
 * when a quarter or less of it is in use, its rows copied across (copyRows). With nothing to
 * do every state is released. k is chosen per batch size by its own adaptiveK policy, since
 * what a draft is worth depends on the batch (a verify pass over many rows is arithmetic-bound).
 */
export class Scheduler {
  readonly maxBatch: number;
  readonly maxQueue: number;
  readonly context: number;
  private readonly target: CausalLm;
  private readonly draft: CausalLm | undefined;
  private readonly prefillRows: number;
  private readonly fixedK: number | undefined;
  private readonly makePolicy: ((batch: number) => KPolicy) | undefined;
  private readonly policies = new Map<number, KPolicy>();
  private readonly onStep: ((report: StepReport) => void) | undefined;
  private readonly draftBuckets: PrefillBuckets;
  private readonly log = getLogger('server');
  private readonly greedy = createSampler({});
  private queue: Job[] = [];
  private main: Rows | undefined;
  private stage: Rows | undefined;
  private running = false;
  private closed = false;
  /** Last decoding step's time: the budget of a prefill chunk. */
  private decodeMs = 0;
  /** Measured cost of one prompt position (row × token) of a staging pass. */
  private positionMs = 0.5;

  constructor(options: SchedulerOptions) {
    this.target = options.target;
    this.draft = options.draft;
    this.maxBatch = options.maxBatch ?? 16;
    this.maxQueue = options.maxQueue ?? 64;
    this.prefillRows = Math.min(options.prefillRows ?? 4, this.maxBatch);
    const positions = Math.min(
      this.target.maxPositions,
      this.draft?.maxPositions ?? Number.POSITIVE_INFINITY,
    );
    this.context = Math.min(options.context ?? 2048, positions);
    this.fixedK = options.k;
    this.makePolicy = options.kPolicy;
    this.onStep = options.onStep;
    this.draftBuckets = this.draft?.prefillBuckets ?? [...DEFAULT_PREFILL_BUCKETS, 4, 2];
    for (const [name, value, min] of [
      ['maxBatch', this.maxBatch, 1],
      ['maxQueue', this.maxQueue, 0],
      ['context', this.context, 2],
      ['prefillRows', this.prefillRows, 1],
    ] as const) {
      if (!Number.isInteger(value) || value < min) {
        throw new InvalidArgumentError(`${name} must be an integer >= ${min}, got ${value}`);
      }
    }
    if (this.draft !== undefined && this.draft.vocabSize > this.target.vocabSize) {
      throw new InvalidArgumentError(
        `draft vocabulary (${this.draft.vocabSize}) is larger than the target's (${this.target.vocabSize})`,
      );
    }
    if (this.fixedK !== undefined) fixedK(this.fixedK);
  }

  /** Requests waiting for a row. */
  get queued(): number {
    return this.queue.length;
  }

  /** Rows generating (decoding) now. */
  get activeRows(): number {
    return this.main?.jobs.filter((j) => j !== undefined).length ?? 0;
  }

  /** Prompts being prefilled now. */
  get prefilling(): number {
    return this.stage?.jobs.filter((j) => j !== undefined).length ?? 0;
  }

  /** Rows of the model states held now (decoding batch and staging), used or not. */
  get heldRows(): number {
    return (this.main?.target.batch ?? 0) + (this.stage?.target.batch ?? 0);
  }

  /** Whether the draft model is in use. */
  get speculative(): boolean {
    return this.draft !== undefined;
  }

  /**
   * Queues a request; resolves when it ends (stop, length, or cancelled through its signal),
   * rejects at once with QueueFullError when `maxQueue` requests are already waiting, and with
   * the model's error if a step fails.
   */
  submit(request: GenerationRequest): Promise<GenerationResult> {
    if (this.closed) return Promise.reject(new SchedulerClosedError('the server is shutting down'));
    const prompt = Array.from(request.prompt);
    if (prompt.length === 0) return Promise.reject(new InvalidArgumentError('the prompt is empty'));
    const bad = prompt.find((t) => !Number.isInteger(t) || t < 0 || t >= this.target.vocabSize);
    if (bad !== undefined) {
      return Promise.reject(
        new InvalidArgumentError(`token id ${bad} is outside [0, ${this.target.vocabSize})`),
      );
    }
    if (!Number.isInteger(request.maxTokens) || request.maxTokens < 1) {
      return Promise.reject(new InvalidArgumentError(`maxTokens must be an integer >= 1`));
    }
    if (prompt.length + request.maxTokens > this.context) {
      return Promise.reject(
        new InvalidArgumentError(
          `a prompt of ${prompt.length} tokens plus ${request.maxTokens} new ones exceeds the context of ${this.context}`,
        ),
      );
    }
    if (this.queue.length >= this.maxQueue) {
      return Promise.reject(new QueueFullError(`${this.queue.length} requests are already waiting`));
    }
    let sampler: Sampler;
    try {
      sampler = createSampler(request.sampling);
    } catch (error) {
      return Promise.reject(error);
    }
    if (request.signal?.aborted) {
      return Promise.resolve({ finishReason: 'cancelled', promptTokens: prompt.length, completionTokens: 0 });
    }
    return new Promise<GenerationResult>((resolve, reject) => {
      this.queue.push({
        request,
        sampler,
        stops: new Set(request.stopTokens ?? []),
        prompt,
        history: [...prompt],
        generated: 0,
        phase: 'queued',
        prefilled: 0,
        submittedAt: performance.now(),
        resolve,
        reject,
      });
      void this.loop();
    });
  }

  /** Refuses new requests, cancels the others and releases every state once the loop is idle. */
  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.allJobs()) job.end ??= 'cancelled';
    while (this.running) await new Promise((resolve) => setTimeout(resolve, 5));
    this.reap();
    this.release();
  }

  private allJobs(): Job[] {
    return [
      ...this.queue,
      ...(this.main?.jobs ?? []).filter((j): j is Job => j !== undefined),
      ...(this.stage?.jobs ?? []).filter((j): j is Job => j !== undefined),
    ];
  }

  private async loop(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length > 0 || this.activeRows > 0 || this.prefilling > 0) {
        await yieldToEventLoop();
        try {
          this.reap();
          this.admit();
          if (this.activeRows > 0) await this.decodeStep();
          this.reap();
          if (this.prefilling > 0) await this.prefillChunk();
          this.reap();
          this.resize();
        } catch (error) {
          // A failed step (a backend error, logits the sampler refuses) fails the requests it
          // touched; the states are rebuilt for whoever comes next.
          this.log.error({ err: error }, 'scheduler step failed');
          for (const job of [...(this.main?.jobs ?? []), ...(this.stage?.jobs ?? [])]) {
            if (job !== undefined && job.phase !== 'done') this.finish(job, undefined, error);
          }
          this.release();
        }
      }
      this.release();
    } finally {
      this.running = false;
    }
  }

  /** Ends a job: resolves (or rejects) it and marks it done; its row is freed by reap. */
  private finish(job: Job, reason: EndReason | undefined, error?: unknown): void {
    if (job.phase === 'done') return;
    job.phase = 'done';
    if (error !== undefined) {
      job.reject(error);
      return;
    }
    job.resolve({
      finishReason: reason ?? 'cancelled',
      promptTokens: job.prompt.length,
      completionTokens: job.generated,
      firstTokenMs: job.firstTokenMs,
    });
  }

  /** Frees the rows of finished, cancelled and aborted requests (their caches rolled back to 0). */
  private reap(): void {
    const ended = (job: Job) => job.phase === 'done' || job.end !== undefined || job.request.signal?.aborted;
    this.queue = this.queue.filter((job) => {
      if (!ended(job)) return true;
      this.finish(job, job.end ?? 'cancelled');
      return false;
    });
    for (const rows of [this.main, this.stage]) {
      if (rows === undefined) continue;
      const freed: number[] = [];
      rows.jobs.forEach((job, r) => {
        if (job === undefined || !ended(job)) return;
        this.finish(job, job.end ?? 'cancelled');
        rows.jobs[r] = undefined;
        freed.push(r);
      });
      if (freed.length === 0) continue;
      const keep = (state: CausalLmState) => Array.from(state.lengths, (l, r) => (freed.includes(r) ? 0 : l));
      this.target.rollback(rows.target, keep(rows.target));
      if (rows.draft !== undefined) this.draft!.rollback(rows.draft, keep(rows.draft));
      for (const r of freed) rows.draftCached[r] = [];
    }
  }

  /** Starts a group of queued prompts on a staging state when none is running and rows are free. */
  private admit(): void {
    if (this.stage !== undefined || this.queue.length === 0) return;
    const free = this.maxBatch - this.activeRows;
    const count = Math.min(this.prefillRows, free, this.queue.length);
    if (count <= 0) return;
    const jobs = this.queue.splice(0, count);
    const size = bucket(count, this.prefillRows);
    this.stage = this.createRows(size, this.capacity(Math.max(...jobs.map((job) => job.prompt.length))));
    jobs.forEach((job, r) => {
      job.phase = 'prefill';
      this.stage!.jobs[r] = job;
    });
  }

  private createRows(batch: number, maxLength: number): Rows {
    const target = this.target.createState({ batch, maxLength });
    let draft: CausalLmState | undefined;
    try {
      draft = this.draft?.createState({ batch, maxLength });
    } catch (error) {
      this.target.disposeState(target);
      throw error;
    }
    return {
      target,
      draft,
      jobs: new Array<Job | undefined>(batch).fill(undefined),
      draftCached: Array.from({ length: batch }, () => []),
    };
  }

  private disposeRows(rows: Rows | undefined): void {
    if (rows === undefined) return;
    this.target.disposeState(rows.target);
    if (rows.draft !== undefined) this.draft!.disposeState(rows.draft);
  }

  private release(): void {
    this.disposeRows(this.main);
    this.disposeRows(this.stage);
    this.main = undefined;
    this.stage = undefined;
  }

  /** Appends accepted tokens to a job up to a stop token or its limit, and hands them over. */
  private emit(job: Job, tokens: number[]): number {
    const out: number[] = [];
    let finish: 'stop' | 'length' | undefined;
    for (const token of tokens) {
      job.history.push(token);
      job.generated++;
      out.push(token);
      finish = job.stops.has(token) ? 'stop' : job.generated >= job.request.maxTokens ? 'length' : undefined;
      if (finish !== undefined) break;
    }
    job.firstTokenMs ??= performance.now() - job.submittedAt;
    let stopHere: boolean | undefined;
    try {
      stopHere = job.request.onTokens(out, finish);
    } catch (error) {
      this.log.warn({ err: error }, 'a request consumer failed: request cancelled');
      job.end = 'cancelled';
      return out.length;
    }
    if (finish !== undefined) job.end = finish;
    else if (stopHere === true) job.end = 'stop';
    return out.length;
  }

  /**
   * A state's positions per row for rows reaching `positions`: a power of two from 256, at most
   * the context. States are sized to their rows (a cache of the whole context per row would
   * make every new state, and every move between states, cost as much as the context).
   */
  private capacity(positions: number): number {
    let size = 256;
    while (size < positions) size *= 2;
    return Math.min(size, this.context);
  }

  private policy(batch: number): KPolicy {
    let policy = this.policies.get(batch);
    if (policy === undefined) {
      // A verify pass costs about rows × positions once the batch is arithmetic-bound (the CPU
      // kernels: 16 rows × 5 positions took 3.5× 16 × 1), so wide batches draft less: k ≤ 8 / rows
      // (at least 1; 0, a plain step, is always a choice). Its first probes then stay cheap too.
      const maxK = Math.max(1, Math.floor(8 / batch));
      policy =
        this.fixedK !== undefined
          ? fixedK(this.fixedK)
          : (this.makePolicy?.(batch) ?? adaptiveK({ maxK, initialK: Math.min(4, maxK) }));
      this.policies.set(batch, policy);
    }
    return policy;
  }

  /** One speculative step of the decoding batch (a plain step when k is 0 or there is no draft). */
  private async decodeStep(): Promise<void> {
    const rows = this.main!;
    const start = performance.now();
    const batch = rows.target.batch;
    const active = rows.jobs.map(
      (job) => job !== undefined && job.phase === 'decode' && job.end === undefined,
    );
    const jobs = rows.jobs;
    const histories = jobs.map((job, r) => (active[r] ? job!.history : [0]));
    const policy = this.policy(batch);
    let k = 0;
    if (this.draft !== undefined) {
      const room = Math.min(
        ...histories.filter((_, r) => active[r]).map((h) => rows.target.maxLength - h.length),
      );
      const needed = Math.max(
        ...jobs.map((job, r) => (active[r] ? job!.request.maxTokens - job!.generated : 0)),
      );
      k = Math.max(0, Math.min(policy.next(), room, needed - 1));
    }
    let proposals: Proposal[] = jobs.map(() => ({ tokens: [] }));
    if (k > 0) {
      proposals = await draftRows({
        model: this.draft!,
        state: rows.draft!,
        cached: rows.draftCached,
        histories,
        active,
        k,
        samplers: jobs.map((job, r) => (active[r] ? job!.sampler : this.greedy)),
        buckets: this.draftBuckets,
        unknownId: 0,
      });
    }
    const draftMs = performance.now() - start;
    const verifyStart = performance.now();
    const drafts = proposals.map((p, r) => (active[r] ? p.tokens.slice(0, k) : []));
    const steps = 1 + Math.max(...drafts.map((d) => d.length));
    const window = jobs.map((job, r) => {
      if (!active[r]) return new Array<number>(steps).fill(0);
      const last = job!.history[job!.history.length - 1];
      return [last, ...drafts[r], ...new Array<number>(steps - 1 - drafts[r].length).fill(last)];
    });
    const { logits } = this.target.extendStep(rows.target, window);
    const values = (await logits.data().finally(() => logits.dispose())) as Float32Array;
    const vocab = this.target.vocabSize;
    const accepted: number[] = [];
    const proposed: number[] = [];
    let emitted = 0;
    let rejections = 0;
    for (let r = 0; r < batch; r++) {
      if (!active[r]) continue;
      const job = jobs[r]!;
      const d = drafts[r];
      const base = r * steps * vocab;
      const result = verifyRow({
        draft: d,
        q: proposals[r].probs,
        logits: (i) => values.subarray(base + i * vocab, base + (i + 1) * vocab),
        sampler: job.sampler,
        history: job.history,
      });
      accepted.push(result.accepted);
      proposed.push(d.length);
      if (result.accepted < d.length) rejections++;
      emitted += this.emit(job, [...d.slice(0, result.accepted), result.next]);
    }
    // Generating rows keep every emitted token but the last (the next window starts with it).
    this.target.rollback(
      rows.target,
      jobs.map((job, r) => (active[r] ? job!.history.length - 1 : 0)),
    );
    // The verify pass as the policy weighs it includes the host's acceptance of every row's
    // positions (a softmax over the vocabulary per position) and the rollback, which grow with k.
    const verifyMs = performance.now() - verifyStart;
    // Plain steps (k = 0) are observed too: it is how the policy learns what a step without the
    // draft costs at this batch size (unobserved, it was estimated from the cheapest verify pass,
    // and at 16 rows the draft kept k = 1 where plain steps gave 1.25x the tokens/s).
    if (this.draft !== undefined) policy.observe({ k, proposed, accepted, draftSteps: k, draftMs, verifyMs });
    this.decodeMs = performance.now() - start;
    this.onStep?.({
      kind: 'decode',
      ms: this.decodeMs,
      rows: accepted.length,
      emitted,
      k,
      drafted: proposed.reduce((a, b) => a + b, 0),
      accepted: accepted.reduce((a, b) => a + b, 0),
      rejections,
      draftMs,
      verifyMs,
    });
  }

  /** One chunk of the staging prompts; prompts that end in it get their first token and join the batch. */
  private async prefillChunk(): Promise<void> {
    const stage = this.stage!;
    const start = performance.now();
    const batch = stage.target.batch;
    const live = stage.jobs.map(
      (job) => job !== undefined && job.phase === 'prefill' && job.end === undefined,
    );
    const remaining = stage.jobs.map((job, r) => (live[r] ? job!.prompt.length - job!.prefilled : 0));
    // With rows decoding, a chunk costs about one of their steps; alone, a prompt goes in whole.
    const budget =
      this.activeRows > 0
        ? Math.max(8, Math.floor(Math.max(this.decodeMs, 5) / (this.positionMs * batch)))
        : MAX_PREFILL_CHUNK;
    const size = Math.min(budget, MAX_PREFILL_CHUNK, Math.max(...remaining));
    const tokens = stage.jobs.map((job, r) => {
      const chunk = live[r] ? job!.prompt.slice(job!.prefilled, job!.prefilled + size) : [];
      return [...chunk, ...new Array<number>(size - chunk.length).fill(0)];
    });
    const ends = remaining.map((n, r) => (live[r] && n <= size ? n - 1 : -1));
    const selection = ends.some((e) => e >= 0) ? ends.map((e) => Math.max(e, 0)) : ('none' as const);
    const { logits } = this.target.extendStep(stage.target, tokens, { logits: selection });
    if (stage.draft !== undefined) {
      // Ids past a shorter draft vocabulary (a padded target's) are read as id 0, as draftRows does.
      const vocab = this.draft!.vocabSize;
      const readable = tokens.map((row) => row.map((id) => (id < vocab ? id : 0)));
      this.draft!.extendStep(stage.draft, readable, { logits: 'none' }).logits.dispose();
    }
    let values: Float32Array | undefined;
    if (selection === 'none') logits.dispose();
    else values = (await logits.data().finally(() => logits.dispose())) as Float32Array;
    stage.jobs.forEach((job, r) => {
      if (live[r]) job!.prefilled += Math.min(size, remaining[r]);
    });
    const lengths = stage.jobs.map((job, r) => (live[r] ? job!.prefilled : 0));
    this.target.rollback(stage.target, lengths);
    if (stage.draft !== undefined) this.draft!.rollback(stage.draft, lengths);
    const ms = performance.now() - start;
    this.positionMs += 0.2 * (ms / (batch * size) - this.positionMs);
    let emitted = 0;
    const fed = remaining.reduce((a, n) => a + Math.min(n, size), 0);
    const joinStart = performance.now();
    const joining: number[] = [];
    for (let r = 0; r < batch; r++) {
      if (ends[r] < 0) continue;
      const job = stage.jobs[r]!;
      const vocab = this.target.vocabSize;
      const first = job.sampler.sample(values!.subarray(r * vocab, (r + 1) * vocab), job.history);
      emitted += this.emit(job, [first]);
      if (job.end === undefined) joining.push(r);
      else {
        this.finish(job, job.end);
        stage.jobs[r] = undefined;
      }
    }
    if (joining.length > 0) this.join(stage, joining);
    // Rows that left the staging state go back to 0 (a finished prompt's copy is in the batch now).
    this.target.rollback(
      stage.target,
      stage.jobs.map((job, r) => (job === undefined ? 0 : stage.target.lengths[r])),
    );
    if (stage.draft !== undefined) {
      this.draft!.rollback(
        stage.draft,
        stage.jobs.map((job, r) => (job === undefined ? 0 : stage.draft!.lengths[r])),
      );
    }
    if (stage.jobs.every((job) => job === undefined)) {
      this.disposeRows(stage);
      this.stage = undefined;
    }
    this.onStep?.({
      kind: 'prefill',
      ms,
      rows: live.filter(Boolean).length,
      emitted,
      promptTokens: fed,
      joinMs: performance.now() - joinStart,
    });
  }

  /** Moves staging rows (prompts prefilled, first tokens emitted) into free rows of the batch, in one copy. */
  private join(stage: Rows, rows: number[]): void {
    const jobs = rows.map((r) => stage.jobs[r]!);
    const free = () => (this.main?.jobs ?? []).flatMap((job, r) => (job === undefined ? [r] : []));
    const longest = Math.max(...jobs.map(need), ...this.decodingJobs().map(need));
    if (free().length < rows.length || this.main!.target.maxLength < this.capacity(longest)) {
      // Grow for the requests already waiting too: a burst then resizes once, not at every join.
      const wanted = this.activeRows + this.prefilling + this.queue.length;
      this.resizeMain(bucket(Math.max(wanted, this.activeRows + rows.length), this.maxBatch), longest);
    }
    const main = this.main!;
    const slots = free();
    const moves: RowMove[] = rows.map((from, i) => ({ from, to: slots[i] }));
    copyRows(this.target, stage.target, main.target, moves);
    if (main.draft !== undefined) copyRows(this.draft!, stage.draft!, main.draft, moves);
    moves.forEach(({ from, to }, i) => {
      main.draftCached[to] = [...jobs[i].prompt];
      main.jobs[to] = jobs[i];
      jobs[i].phase = 'decode';
      stage.jobs[from] = undefined;
    });
  }

  private decodingJobs(): Job[] {
    return (this.main?.jobs ?? []).filter((job): job is Job => job !== undefined);
  }

  /** Moves the decoding rows into a state of `batch` rows (packed at the front); none left: released. */
  private resizeMain(batch: number, positions = 0): void {
    const old = this.main;
    const occupied = (old?.jobs ?? []).flatMap((job, r) => (job === undefined ? [] : [r]));
    if (batch === 0) {
      this.disposeRows(old);
      this.main = undefined;
      return;
    }
    const longest = Math.max(positions, ...this.decodingJobs().map(need));
    const next = this.createRows(batch, this.capacity(longest));
    try {
      if (old !== undefined && occupied.length > 0) {
        const moves = occupied.map((from, to) => ({ from, to }));
        copyRows(this.target, old.target, next.target, moves);
        if (next.draft !== undefined) copyRows(this.draft!, old.draft!, next.draft, moves);
        moves.forEach(({ from, to }) => {
          next.jobs[to] = old.jobs[from];
          next.draftCached[to] = old.draftCached[from];
        });
      }
    } catch (error) {
      this.disposeRows(next);
      throw error;
    }
    this.disposeRows(old);
    this.main = next;
    this.log.debug(
      { from: old?.target.batch ?? 0, to: batch, positions: next.target.maxLength, rows: occupied.length },
      'batch resized',
    );
  }

  /** Shrinks the batch when a quarter or less of it is used (rows about to join count), or drops it. */
  private resize(): void {
    if (this.stage?.jobs.every((job) => job === undefined)) {
      this.disposeRows(this.stage);
      this.stage = undefined;
    }
    if (this.main === undefined) return;
    const size = this.main.target.batch;
    const wanted = this.activeRows + this.prefilling;
    if (wanted === 0 && this.queue.length === 0) this.resizeMain(0);
    else if (this.activeRows > 0 && wanted * 4 <= size) this.resizeMain(bucket(wanted, this.maxBatch));
  }
}

/** The tensors tfjs holds now: the load test checks that none are left behind. */
export function liveTensors(): number {
  return tf.memory().numTensors;
}
