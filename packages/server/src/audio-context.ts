import type { FastifyReply, FastifyRequest } from 'fastify';
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

/** What to tell a client whose audio job failed after its answer began. */
export function streamFailure(context: AudioContext, error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  if (context.shutdown.aborted) return shuttingDown();
  return new ApiError(500, 'internal server error', 'server_error', 'internal_error');
}

/**
 * The end of an audio request that failed: an error while its client is still there is thrown
 * on (the route's error handler answers it); after a shutdown it becomes a 503; when the client
 * went away nobody is left to answer, so the request is counted as 499 and the reply released.
 */
export function endAbortedRequest(
  context: AudioContext,
  request: FastifyRequest,
  reply: FastifyReply,
  abort: RequestAbort,
  error: unknown,
): FastifyReply {
  if (!abort.signal.aborted) throw error;
  if (context.shutdown.aborted) throw shuttingDown();
  context.countRequest(request, 499);
  if (!reply.sent) reply.hijack();
  return reply;
}
