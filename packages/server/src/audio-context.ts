import { getLogger } from '@specstream/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AudioJobQueue } from './audio-jobs.js';
import type { SpeechModels } from './audio-models.js';
import { ApiError } from './errors.js';
import type { ServerMetrics } from './metrics.js';

/** What the audio routes share with the rest of the server. */
export interface AudioContext {
  readonly models: SpeechModels;
  readonly metrics: ServerMetrics;
  /** Largest uploaded file, in bytes. */
  readonly maxAudioBytes: number;
  /** Aborted when the server closes: every audio job stops at its next chunk. */
  readonly shutdown: AbortSignal;
  /** Counts an answered request in specstream_requests_total. */
  countRequest(request: FastifyRequest, status: number): void;
}

/** A request's lifetime as a signal: aborted when its client goes away or the server closes. */
export interface RequestAbort {
  readonly signal: AbortSignal;
  /** Detaches from the server's shutdown signal (call once the request is over). */
  done(): void;
}

export function requestAbort(reply: FastifyReply, shutdown: AbortSignal): RequestAbort {
  const controller = new AbortController();
  const abort = () => controller.abort();
  const raw = reply.raw;
  // The connection closed before the answer ended: the client went away.
  raw.on('close', () => {
    if (!raw.writableEnded) abort();
  });
  if (shutdown.aborted) abort();
  else shutdown.addEventListener('abort', abort, { once: true });
  return { signal: controller.signal, done: () => shutdown.removeEventListener('abort', abort) };
}

export function shuttingDown(): ApiError {
  return new ApiError(503, 'the server is shutting down', 'server_error', 'shutting_down');
}

export function checkOpen(context: AudioContext): void {
  if (context.shutdown.aborted) throw shuttingDown();
}

/**
 * An audio job failed after its answer began (headers sent): when the client went away the
 * error goes on to runAudioJob (a 499); otherwise the failure is logged when it is the server's,
 * counted, and returned for the caller to put in the stream (or to cut it).
 */
export function streamFailed(
  context: AudioContext,
  request: FastifyRequest,
  abort: RequestAbort,
  error: unknown,
  task: string,
): ApiError {
  if (abort.signal.aborted && !context.shutdown.aborted) throw error;
  const api =
    error instanceof ApiError
      ? error
      : context.shutdown.aborted
        ? shuttingDown()
        : new ApiError(500, 'internal server error', 'server_error', 'internal_error');
  if (api.status >= 500 && !context.shutdown.aborted)
    getLogger('server').error({ err: error }, `${task} failed`);
  context.countRequest(request, api.status);
  return api;
}

/**
 * Runs an audio request's work in its model's turn (`queue`), under the request's abort signal.
 * An error while the client is still there goes to the route's error handler; after a shutdown
 * it is a 503; when the client went away nobody is left to answer, so the request is counted as
 * 499 and the reply released.
 */
export async function runAudioJob(
  context: AudioContext,
  request: FastifyRequest,
  reply: FastifyReply,
  queue: AudioJobQueue,
  work: (abort: RequestAbort) => Promise<unknown>,
): Promise<unknown> {
  const abort = requestAbort(reply, context.shutdown);
  try {
    const release = await queue.acquire(abort.signal);
    try {
      return await work(abort);
    } finally {
      release();
    }
  } catch (error) {
    if (!abort.signal.aborted) throw error;
    if (context.shutdown.aborted) throw shuttingDown();
    context.countRequest(request, 499);
    if (!reply.sent) reply.hijack();
    return reply;
  } finally {
    abort.done();
  }
}
