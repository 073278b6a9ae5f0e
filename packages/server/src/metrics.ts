import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Scheduler, StepReport } from './scheduler.js';

/** Latency buckets in seconds: from a fast decode step to a long queue wait. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10];
/** Real-time factor buckets (processing seconds per audio second): 1 is as slow as the audio itself. */
const REAL_TIME_FACTOR_BUCKETS = [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5];

/** What the audio gauges read: one speech model's job queue. */
export interface AudioQueueView {
  readonly queued: number;
  readonly running: number;
}

/** Which audio endpoint a measurement belongs to. */
export type AudioTask = 'transcription' | 'speech';

/** The server's Prometheus metrics, in a registry of its own (several servers may share a process). */
export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'endpoint' | 'status'>;
  readonly promptTokens: Counter;
  readonly generatedTokens: Counter;
  readonly draftedTokens: Counter;
  readonly acceptedTokens: Counter;
  readonly timeToFirstToken: Histogram;
  readonly interToken: Histogram;
  readonly stepSeconds: Histogram<'kind'>;
  /** Seconds of audio transcribed (input) or synthesized (output). */
  readonly audioSeconds: Counter<'task'>;
  /** Wall-clock seconds of a job (queue excluded) per second of its audio. */
  readonly audioRealTimeFactor: Histogram<'task'>;
  /** From a speech request to its first audio on the wire (queue included). */
  readonly timeToFirstAudio: Histogram;
  private readonly audioQueues = new Map<string, AudioQueueView>();
  /** Tokens emitted in the last window, for the tokens/s gauge. */
  private recent: { at: number; tokens: number }[] = [];
  private alphaAccepted = 0;
  private alphaRejected = 0;

  constructor(scheduler: Scheduler, windowSeconds = 10) {
    const registers = [this.registry];
    new Gauge({
      name: 'specstream_queue_length',
      help: 'Requests waiting for a row',
      registers,
      collect() {
        this.set(scheduler.queued);
      },
    });
    new Gauge({
      name: 'specstream_active_rows',
      help: 'Rows generating (decoding) now',
      registers,
      collect() {
        this.set(scheduler.activeRows);
      },
    });
    new Gauge({
      name: 'specstream_prefilling_requests',
      help: 'Prompts being prefilled now',
      registers,
      collect() {
        this.set(scheduler.prefilling);
      },
    });
    new Gauge({
      name: 'specstream_batch_rows',
      help: 'Rows of the model states held now (decoding batch and staging), used or not',
      registers,
      collect() {
        this.set(scheduler.heldRows);
      },
    });
    new Gauge({
      name: 'specstream_max_batch',
      help: 'Most rows decoding at once (--max-batch)',
      registers,
      collect() {
        this.set(scheduler.maxBatch);
      },
    });
    const self = this;
    new Gauge({
      name: 'specstream_tokens_per_second',
      help: `Tokens generated per second over the last ${windowSeconds} s, all requests together`,
      registers,
      collect() {
        this.set(self.tokensPerSecond(windowSeconds));
      },
    });
    new Gauge({
      name: 'specstream_acceptance_rate',
      help: 'α: probability that a drafted token the target checks is accepted (accepted / (accepted + rejections)), since start',
      registers,
      collect() {
        const n = self.alphaAccepted + self.alphaRejected;
        this.set(n > 0 ? self.alphaAccepted / n : 0);
      },
    });
    this.requests = new Counter({
      name: 'specstream_requests_total',
      help: 'Requests answered, by endpoint and HTTP status',
      labelNames: ['endpoint', 'status'],
      registers,
    });
    this.promptTokens = new Counter({
      name: 'specstream_prompt_tokens_total',
      help: 'Prompt tokens prefilled',
      registers,
    });
    this.generatedTokens = new Counter({
      name: 'specstream_generated_tokens_total',
      help: 'Tokens generated',
      registers,
    });
    this.draftedTokens = new Counter({
      name: 'specstream_drafted_tokens_total',
      help: 'Tokens the draft proposed for generating rows',
      registers,
    });
    this.acceptedTokens = new Counter({
      name: 'specstream_accepted_tokens_total',
      help: 'Drafted tokens the target accepted',
      registers,
    });
    this.timeToFirstToken = new Histogram({
      name: 'specstream_time_to_first_token_seconds',
      help: 'From the request to its first token (queue and prefill included)',
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.interToken = new Histogram({
      name: 'specstream_inter_token_seconds',
      help: 'Between successive deliveries of tokens to one request (a speculative step may deliver several)',
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.stepSeconds = new Histogram({
      name: 'specstream_step_seconds',
      help: 'Scheduler steps: decode (draft and verify of the batch) and prefill chunks',
      labelNames: ['kind'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.audioSeconds = new Counter({
      name: 'specstream_audio_seconds_total',
      help: 'Seconds of audio processed: transcribed (task="transcription") or synthesized (task="speech")',
      labelNames: ['task'],
      registers,
    });
    this.audioRealTimeFactor = new Histogram({
      name: 'specstream_audio_real_time_factor',
      help: 'Real-time factor of audio jobs: wall-clock seconds of the work (queue excluded) per second of audio',
      labelNames: ['task'],
      buckets: REAL_TIME_FACTOR_BUCKETS,
      registers,
    });
    this.timeToFirstAudio = new Histogram({
      name: 'specstream_speech_time_to_first_audio_seconds',
      help: 'From a speech request to its first audio sent (queue included)',
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.audioGauges(registers);
  }

  /** Reports `queue` (a speech model's jobs) as specstream_audio_queue_length and _audio_jobs_running{model}. */
  watchAudioQueue(model: string, queue: AudioQueueView): void {
    this.audioQueues.set(model, queue);
  }

  /** A finished audio job: its audio's length and how long the work took. */
  audioJob(task: AudioTask, audioSeconds: number, workSeconds: number): void {
    this.audioSeconds.inc({ task }, audioSeconds);
    if (audioSeconds > 0) this.audioRealTimeFactor.observe({ task }, workSeconds / audioSeconds);
  }

  private audioGauges(registers: Registry[]): void {
    const queues = this.audioQueues;
    new Gauge({
      name: 'specstream_audio_queue_length',
      help: 'Audio requests waiting for their speech model (one job runs per model)',
      labelNames: ['model'],
      registers,
      collect() {
        for (const [model, queue] of queues) this.set({ model }, queue.queued);
      },
    });
    new Gauge({
      name: 'specstream_audio_jobs_running',
      help: 'Audio jobs running now, per speech model (0 or 1)',
      labelNames: ['model'],
      registers,
      collect() {
        for (const [model, queue] of queues) this.set({ model }, queue.running);
      },
    });
  }

  /** Feeds a scheduler step report in (SchedulerOptions.onStep). */
  step(report: StepReport): void {
    this.stepSeconds.observe({ kind: report.kind }, report.ms / 1000);
    if (report.emitted > 0) {
      this.generatedTokens.inc(report.emitted);
      this.recent.push({ at: performance.now(), tokens: report.emitted });
    }
    if (report.promptTokens) this.promptTokens.inc(report.promptTokens);
    if (report.drafted) this.draftedTokens.inc(report.drafted);
    if (report.accepted) this.acceptedTokens.inc(report.accepted);
    this.alphaAccepted += report.accepted ?? 0;
    this.alphaRejected += report.rejections ?? 0;
  }

  tokensPerSecond(windowSeconds: number): number {
    const now = performance.now();
    const since = now - windowSeconds * 1000;
    this.recent = this.recent.filter((r) => r.at >= since);
    const tokens = this.recent.reduce((a, r) => a + r.tokens, 0);
    return tokens / windowSeconds;
  }
}
