import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { type CausalLm, getLogger, InvalidArgumentError } from '@specstream/core';
import { createDetokenizer, type Tokenizer } from '@specstream/models';
import { createStopMatcher } from '@specstream/streaming';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { AudioContext } from './audio-context.js';
import { type SpeechModelOptions, SpeechModels } from './audio-models.js';
import { DEFAULT_MAX_AUDIO_BYTES, registerAudioRoutes } from './audio-routes.js';
import { ApiError, invalidRequest } from './errors.js';
import { ServerMetrics } from './metrics.js';
import {
  CHAT_STOPS,
  type ChatParams,
  type CompletionParams,
  chatParams,
  completionParams,
  defaultChatPrompt,
} from './requests.js';
import { type EndReason, QueueFullError, Scheduler, SchedulerClosedError } from './scheduler.js';

export interface ServerOptions extends SpeechModelOptions {
  target: CausalLm;
  /** The draft model; leave it out to decode with the target alone. */
  draft?: CausalLm;
  tokenizer: Tokenizer;
  /** The id clients name in `model` and GET /v1/models lists. */
  modelId: string;
  /** Rows decoding at once (default 16). */
  maxBatch?: number;
  /** Requests waiting for a row before new ones get 429 (default 64). */
  maxQueue?: number;
  /** Positions per request, prompt plus completion (default: the target's context, else 2048). */
  context?: number;
  /** Fixed k; default adaptive. */
  k?: number;
  /** When set, /v1/* requests need `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Largest request body in bytes (default 1 MiB). */
  bodyLimit?: number;
  /** max_tokens when a request gives none: completions 16 (as OpenAI), chat this (default 256). */
  defaultChatMaxTokens?: number;
  /** Ids that end a completion (the end-of-sequence token). */
  stopTokens?: readonly number[];
  /** What an empty prompt becomes (the beginning-of-sequence id); without one an empty prompt is refused. */
  bosTokenId?: number;
  /** Seconds a 429 asks the client to wait (Retry-After; default 1). */
  retryAfterSeconds?: number;
  /** Largest audio file POST /v1/audio/transcriptions takes, in bytes (default 25 MiB, as OpenAI). */
  maxAudioBytes?: number;
}

export interface SpecstreamServer {
  readonly app: FastifyInstance;
  readonly scheduler: Scheduler;
  readonly metrics: ServerMetrics;
  /** Starts listening; resolves to the base URL (http://host:port). Port 0 picks a free port. */
  listen(options: { host?: string; port?: number }): Promise<string>;
  /** Stops accepting connections, cancels running requests and releases the model states. */
  close(): Promise<void>;
}

type Kind = 'completion' | 'chat';

const json = (value: unknown) => JSON.stringify(value);
const digest = (text: string) => createHash('sha256').update(text).digest();

/**
 * An OpenAI-compatible HTTP server over a Scheduler (continuous batching with speculative
 * decoding), on fastify: POST /v1/completions and /v1/chat/completions (streamed as
 * server-sent events or not), GET /v1/models, /health and /metrics (Prometheus); with speech
 * models, POST /v1/audio/transcriptions and /v1/audio/speech (audio-routes.ts).
 */
export function createServer(options: ServerOptions): SpecstreamServer {
  const log = getLogger('server');
  const metrics: { current?: ServerMetrics } = {};
  const scheduler = new Scheduler({
    target: options.target,
    draft: options.draft,
    maxBatch: options.maxBatch,
    maxQueue: options.maxQueue,
    context: options.context,
    k: options.k,
    onStep: (report) => metrics.current?.step(report),
  });
  metrics.current = new ServerMetrics(scheduler);
  const serverMetrics = metrics.current;
  const tokenizer = options.tokenizer;
  const stopTokens = [...(options.stopTokens ?? [])];
  const retryAfter = String(options.retryAfterSeconds ?? 1);
  const keyDigest = options.apiKey !== undefined ? digest(options.apiKey) : undefined;
  const created = Math.floor(Date.now() / 1000);
  let closing = false;
  const speech = new SpeechModels(options, retryAfter, options.modelId);
  // Aborted by close(): audio jobs stop at their next chunk.
  const shutdown = new AbortController();

  // close() has cancelled every request by the time it closes the server: no connection is worth waiting for.
  const app = Fastify({
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    logger: false,
    forceCloseConnections: true,
  });

  app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, request, reply) => {
    const api = toApiError(error);
    if (api.status >= 500) log.error({ err: error, url: request.url }, 'request failed');
    countRequest(request, api.status);
    void reply.code(api.status).headers(api.headers).send(api.body());
  });
  app.setNotFoundHandler((request, reply) => {
    const api = new ApiError(
      404,
      `no route ${request.method} ${request.url.split('?')[0]}`,
      'invalid_request_error',
      'not_found',
    );
    void reply.code(404).send(api.body());
  });

  // Bearer key on the API routes; /health and /metrics stay open for probes and scrapers.
  app.addHook('onRequest', async (request) => {
    if (keyDigest === undefined || !request.url.startsWith('/v1/')) return;
    const header = request.headers.authorization ?? '';
    const match = /^Bearer\s+(.+)$/i.exec(header);
    // Compared as fixed-length digests, so neither the time nor an early length check says how close a guess was.
    if (match === null || !timingSafeEqual(digest(match[1].trim()), keyDigest)) {
      throw new ApiError(
        401,
        match === null ? 'missing bearer API key (Authorization: Bearer <key>)' : 'incorrect API key',
        'invalid_request_error',
        'invalid_api_key',
      );
    }
  });

  function countRequest(request: FastifyRequest, status: number): void {
    const endpoint = request.routeOptions?.url ?? 'unknown';
    serverMetrics.requests.inc({ endpoint, status: String(status) });
  }

  // Speech model folders load with the server (listen, or the first inject).
  app.addHook('onReady', () => speech.load());
  const audio: AudioContext = {
    models: speech,
    metrics: serverMetrics,
    maxAudioBytes: options.maxAudioBytes ?? DEFAULT_MAX_AUDIO_BYTES,
    shutdown: shutdown.signal,
    countRequest,
  };
  registerAudioRoutes(app, audio);

  app.get('/health', async (_request, reply) => {
    if (closing) return reply.code(503).send({ status: 'shutting down' });
    return {
      status: 'ok',
      model: options.modelId,
      queued: scheduler.queued,
      active_rows: scheduler.activeRows,
      max_batch: scheduler.maxBatch,
    };
  });

  app.get('/metrics', async (_request, reply) => {
    const text = await serverMetrics.registry.metrics();
    return reply.type(serverMetrics.registry.contentType).send(text);
  });

  app.get('/v1/models', async () => ({
    object: 'list',
    data: [options.modelId, ...speech.ids].map((id) => ({
      id,
      object: 'model',
      created,
      owned_by: 'specstream',
    })),
  }));

  app.post('/v1/completions', (request, reply) =>
    generate('completion', completionParams(request.body), request, reply),
  );
  app.post('/v1/chat/completions', (request, reply) =>
    generate('chat', chatParams(request.body), request, reply),
  );

  /** The prompt's token ids and the completion's length, or a 400 saying why they do not fit. */
  function plan(kind: Kind, params: CompletionParams | ChatParams): { prompt: number[]; maxTokens: number } {
    const isChat = kind === 'chat';
    const param = isChat ? 'messages' : 'prompt';
    let prompt: number[];
    if (isChat) prompt = tokenizer.encode(defaultChatPrompt((params as ChatParams).messages));
    else {
      const p = (params as CompletionParams).prompt;
      if (typeof p === 'string') prompt = tokenizer.encode(p);
      else {
        const bad = p.findIndex((t) => t >= options.target.vocabSize);
        if (bad >= 0) {
          throw invalidRequest(
            `token id ${p[bad]} is outside the model's vocabulary of ${options.target.vocabSize}`,
            `prompt[${bad}]`,
            'invalid_value',
          );
        }
        prompt = [...p];
      }
    }
    if (prompt.length === 0) {
      if (options.bosTokenId === undefined)
        throw invalidRequest('the prompt is empty', param, 'invalid_value');
      prompt = [options.bosTokenId];
    }
    const context = scheduler.context;
    if (prompt.length >= context) {
      throw invalidRequest(
        `this model's context is ${context} tokens; the ${param} has ${prompt.length}, which leaves no room for a completion`,
        param,
        'context_length_exceeded',
      );
    }
    const room = context - prompt.length;
    if (params.maxTokens !== undefined && params.maxTokens > room) {
      throw invalidRequest(
        `this model's context is ${context} tokens; you asked for ${prompt.length + params.maxTokens} (${prompt.length} in the ${param}, ${params.maxTokens} for the completion)`,
        'max_tokens',
        'context_length_exceeded',
      );
    }
    const fallback = isChat ? (options.defaultChatMaxTokens ?? 256) : 16;
    return { prompt, maxTokens: params.maxTokens ?? Math.min(fallback, room) };
  }

  async function generate(
    kind: Kind,
    params: CompletionParams | ChatParams,
    request: FastifyRequest,
    reply: FastifyReply,
  ): Promise<unknown> {
    const arrived = performance.now();
    if (closing) throw new ApiError(503, 'the server is shutting down', 'server_error', 'shutting_down');
    if (params.model !== options.modelId) {
      throw new ApiError(
        404,
        `the model '${params.model}' does not exist; this server serves '${options.modelId}'`,
        'invalid_request_error',
        'model_not_found',
        'model',
      );
    }
    const { prompt, maxTokens } = plan(kind, params);
    if (scheduler.queued >= scheduler.maxQueue) throw queueFull();

    const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID().replaceAll('-', '')}`;
    const object = kind === 'chat' ? 'chat.completion' : 'text_completion';
    const stops = kind === 'chat' ? [...params.stop, ...CHAT_STOPS] : params.stop;
    const text = textStream(tokenizer, stops);
    const controller = new AbortController();
    const raw = reply.raw;
    // The client went away (closed the connection before the answer ended): free its row.
    raw.on('close', () => {
      if (!raw.writableEnded) controller.abort();
    });
    let lastDelivery: number | undefined;
    const deliver = () => {
      const now = performance.now();
      if (lastDelivery === undefined) serverMetrics.timeToFirstToken.observe((now - arrived) / 1000);
      else serverMetrics.interToken.observe((now - lastDelivery) / 1000);
      lastDelivery = now;
    };

    const sse = params.stream ? startEvents(reply, raw) : undefined;
    const chunk = (choice: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
      id,
      object: kind === 'chat' ? 'chat.completion.chunk' : 'text_completion',
      created: Math.floor(Date.now() / 1000),
      model: options.modelId,
      choices: [{ index: 0, ...choice }],
      ...extra,
    });
    if (sse !== undefined && kind === 'chat') {
      sse(chunk({ delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }));
    }
    let body = '';
    let result: { finishReason: EndReason; promptTokens: number } | undefined;
    try {
      result = await scheduler.submit({
        prompt,
        maxTokens,
        sampling: { temperature: params.temperature, topP: params.topP, seed: params.seed },
        stopTokens,
        signal: controller.signal,
        onTokens: (tokens, finish) => {
          deliver();
          const delta = text.push(tokens, finish);
          if (sse !== undefined && delta !== '') {
            sse(
              kind === 'chat'
                ? chunk({ delta: { content: delta }, logprobs: null, finish_reason: null })
                : chunk({ text: delta, logprobs: null, finish_reason: null }),
            );
          } else body += delta;
          return text.stopped;
        },
      });
    } catch (error) {
      if (sse === undefined) throw error;
      // Headers are out: the error goes in the stream, as OpenAI's does.
      const api = toApiError(error as Error);
      if (api.status >= 500) log.error({ err: error }, 'generation failed');
      sse(api.body());
      endEvents(raw);
      countRequest(request, api.status);
      return;
    }
    const finishReason = result.finishReason === 'cancelled' ? null : result.finishReason;
    const usage = {
      prompt_tokens: prompt.length,
      completion_tokens: text.used,
      total_tokens: prompt.length + text.used,
    };
    countRequest(request, result.finishReason === 'cancelled' ? 499 : 200);
    if (sse !== undefined) {
      if (result.finishReason !== 'cancelled') {
        sse(
          kind === 'chat'
            ? chunk({ delta: {}, logprobs: null, finish_reason: finishReason })
            : chunk({ text: '', logprobs: null, finish_reason: finishReason }),
        );
        if (params.includeUsage) sse({ ...chunk({}), choices: [], usage });
      }
      endEvents(raw);
      return;
    }
    if (result.finishReason === 'cancelled') return; // nobody is listening
    const choice =
      kind === 'chat'
        ? {
            index: 0,
            message: { role: 'assistant', content: body },
            logprobs: null,
            finish_reason: finishReason,
          }
        : { index: 0, text: body, logprobs: null, finish_reason: finishReason };
    return reply.send({
      id,
      object,
      created: Math.floor(Date.now() / 1000),
      model: options.modelId,
      choices: [choice],
      usage,
    });
  }

  function queueFull(): ApiError {
    return new ApiError(
      429,
      `the server is busy: ${scheduler.queued} requests are waiting (--max-queue ${scheduler.maxQueue}); retry later`,
      'rate_limit_error',
      'queue_full',
      null,
      { 'retry-after': retryAfter },
    );
  }

  function toApiError(error: Error & { statusCode?: number; code?: string }): ApiError {
    if (error instanceof ApiError) return error;
    if (error instanceof QueueFullError) return queueFull();
    if (error instanceof SchedulerClosedError) {
      return new ApiError(503, error.message, 'server_error', 'shutting_down');
    }
    if (error instanceof InvalidArgumentError) return invalidRequest(error.message);
    const status = error.statusCode;
    if (status === 413) {
      return new ApiError(
        413,
        `the request body is larger than ${app.initialConfig.bodyLimit} bytes`,
        'invalid_request_error',
        'request_too_large',
      );
    }
    if (status === 415)
      return new ApiError(
        415,
        'the request body must be JSON (Content-Type: application/json)',
        'invalid_request_error',
        'unsupported_media_type',
      );
    if (
      status === 400 &&
      (error instanceof SyntaxError ||
        error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ||
        error.code === 'FST_ERR_CTP_INVALID_JSON_BODY')
    ) {
      return invalidRequest(`the request body is not valid JSON: ${error.message}`, null, 'invalid_json');
    }
    if (status !== undefined && status >= 400 && status < 500) {
      return new ApiError(status, error.message, 'invalid_request_error', error.code ?? null);
    }
    return new ApiError(500, 'internal server error', 'server_error', 'internal_error');
  }

  return {
    app,
    scheduler,
    metrics: serverMetrics,
    async listen({ host = '127.0.0.1', port = 8000 }) {
      await app.listen({ host, port });
      const address = app.server.address();
      const actual = typeof address === 'object' && address !== null ? address.port : port;
      const shown = host.includes(':') ? `[${host}]` : host;
      return `http://${shown}:${actual}`;
    },
    async close() {
      closing = true;
      shutdown.abort();
      await speech.close();
      await scheduler.close();
      await app.close();
    },
  };
}

/** Takes the response over for server-sent events; returns the writer of one `data:` event. */
function startEvents(reply: FastifyReply, raw: ServerResponse): (value: unknown) => void {
  reply.hijack();
  raw.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  return (value) => {
    if (!raw.writableEnded && !raw.destroyed) raw.write(`data: ${json(value)}\n\n`);
  };
}

function endEvents(raw: ServerResponse): void {
  if (raw.writableEnded || raw.destroyed) return;
  raw.end('data: [DONE]\n\n');
}

/**
 * A request's text as tokens arrive: UTF-8-safe deltas (createDetokenizer, special tokens
 * dropped) cut at the first stop string (which may span tokens and is never sent). `used` is
 * the tokens up to the one that completed the text (usage.completion_tokens).
 */
function textStream(tokenizer: Tokenizer, stops: readonly string[]) {
  const detokenizer = createDetokenizer({
    decode: (ids) => tokenizer.decode(ids, { skipSpecialTokens: true }),
  });
  const matcher = createStopMatcher(stops);
  let used = 0;
  let stopped = false;
  return {
    push(tokens: readonly number[], finish: string | undefined): string {
      let out = '';
      for (const [i, token] of tokens.entries()) {
        if (stopped) break;
        used++;
        const last = finish !== undefined && i === tokens.length - 1;
        let delta = detokenizer.push(token);
        if (last) delta += detokenizer.flush();
        const released = matcher.push(delta, last);
        out += released.text;
        stopped = released.stopped;
      }
      return out;
    },
    get used() {
      return used;
    },
    get stopped() {
      return stopped;
    },
  };
}
