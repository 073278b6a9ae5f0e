import { AbortError } from '@specstream/core';
import { shuttingDown } from './audio-context.js';
import { ApiError } from './errors.js';

interface Waiter {
  start(): void;
  fail(error: unknown): void;
}

/** Gives a turn back; calling it twice is harmless. */
export type ReleaseTurn = () => void;

/**
 * One speech model's jobs, one at a time: a model call takes the whole CPU (wasm) or GPU
 * queue anyway, and its streaming states are per job, so running two jobs together would only
 * split the time between them. Requests wait in order; with `maxQueue` already waiting, a new
 * one is refused at once with a 429 and Retry-After, as the text endpoints refuse a full queue.
 */
export class AudioJobQueue {
  private readonly waiting: Waiter[] = [];
  private busy = false;
  private closed = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    readonly model: string,
    readonly maxQueue: number,
    private readonly retryAfter: string,
  ) {}

  /** Requests waiting for the model. */
  get queued(): number {
    return this.waiting.length;
  }

  /** Jobs running now: 0 or 1. */
  get running(): number {
    return this.busy ? 1 : 0;
  }

  /**
   * Waits for the model's turn. Rejects at once with a 429 ApiError when the queue is full, or
   * a 503 when the server is closing; rejects with the signal's reason (or an AbortError) when
   * it aborts while waiting, leaving the queue.
   */
  acquire(signal: AbortSignal): Promise<ReleaseTurn> {
    if (this.closed) return Promise.reject(shuttingDown());
    if (signal.aborted) return Promise.reject(abortReason(signal));
    if (!this.busy) {
      this.busy = true;
      return Promise.resolve(this.releaser());
    }
    if (this.waiting.length >= this.maxQueue) return Promise.reject(this.queueFull());
    return new Promise<ReleaseTurn>((resolve, reject) => {
      const leave = () => {
        const at = this.waiting.indexOf(waiter);
        if (at >= 0) this.waiting.splice(at, 1);
        reject(abortReason(signal));
      };
      const waiter: Waiter = {
        start: () => {
          signal.removeEventListener('abort', leave);
          resolve(this.releaser());
        },
        fail: (error) => {
          signal.removeEventListener('abort', leave);
          reject(error);
        },
      };
      signal.addEventListener('abort', leave, { once: true });
      this.waiting.push(waiter);
    });
  }

  /** Refuses new requests and the waiting ones; resolves once the running job has released its turn. */
  async close(): Promise<void> {
    this.closed = true;
    for (const waiter of this.waiting.splice(0)) waiter.fail(shuttingDown());
    if (!this.busy) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private releaser(): ReleaseTurn {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.next();
    };
  }

  /** Hands the model to the first waiter, or marks it idle. */
  private next(): void {
    const waiter = this.waiting.shift();
    if (waiter !== undefined) {
      waiter.start();
      return;
    }
    this.busy = false;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  private queueFull(): ApiError {
    return new ApiError(
      429,
      `the speech model '${this.model}' is busy: ${this.waiting.length} requests are waiting for it; retry later`,
      'rate_limit_error',
      'queue_full',
      null,
      { 'retry-after': this.retryAfter },
    );
  }
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new AbortError('the request was aborted');
}
