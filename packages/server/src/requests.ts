import { invalidRequest } from './errors.js';

/** A chat message as the server reads it (text content only). */
export interface ChatMessage {
  role: string;
  content: string;
}

/** What both endpoints share once checked. */
export interface CommonParams {
  model: string;
  /** Explicit max_tokens (or max_completion_tokens); undefined = the server's default. */
  maxTokens?: number;
  temperature: number;
  topP: number;
  stop: string[];
  seed?: number;
  stream: boolean;
  includeUsage: boolean;
}

export interface CompletionParams extends CommonParams {
  /** A text prompt, or token ids. */
  prompt: string | number[];
}

export interface ChatParams extends CommonParams {
  messages: ChatMessage[];
}

type Body = Record<string, unknown>;

const ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool']);

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

function wrongType(param: string, expected: string, value: unknown): never {
  throw invalidRequest(`'${param}' must be ${expected}, got ${typeName(value)}`, param, 'invalid_type');
}

function outOfRange(param: string, rule: string, value: unknown): never {
  throw invalidRequest(`'${param}' must be ${rule}, got ${JSON.stringify(value)}`, param, 'invalid_value');
}

/** A JSON object body, or a 400 naming what came instead. */
export function asObject(body: unknown): Body {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw invalidRequest(
      `the request body must be a JSON object, got ${typeName(body)}`,
      null,
      'invalid_body',
    );
  }
  return body as Body;
}

function optionalNumber(body: Body, param: string, accept: (n: number) => boolean, rule: string) {
  const value = body[param];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value)) wrongType(param, 'a number', value);
  if (!accept(value)) outOfRange(param, rule, value);
  return value;
}

function optionalInteger(body: Body, param: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  const value = body[param];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value)) wrongType(param, 'an integer', value);
  if (value < min || value > max) {
    outOfRange(param, max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`, value);
  }
  return value;
}

function optionalBoolean(body: Body, param: string): boolean | undefined {
  const value = body[param];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') wrongType(param, 'a boolean', value);
  return value;
}

/**
 * The fields both endpoints take. Unknown fields are ignored (clients send many); fields the
 * server cannot honour are refused by name: n and best_of other than 1, logprobs, echo.
 */
function commonParams(body: Body, defaultTemperature: number): CommonParams {
  const model = body.model;
  if (model === undefined || model === null) throw invalidRequest("'model' is required", 'model', 'missing');
  if (typeof model !== 'string') wrongType('model', 'a string', model);
  const n = optionalInteger(body, 'n', 1);
  if (n !== undefined && n !== 1) {
    throw invalidRequest(`only n = 1 is supported, got ${n}`, 'n', 'unsupported_value');
  }
  const bestOf = optionalInteger(body, 'best_of', 1);
  if (bestOf !== undefined && bestOf !== 1) {
    throw invalidRequest(`only best_of = 1 is supported, got ${bestOf}`, 'best_of', 'unsupported_value');
  }
  for (const param of ['logprobs', 'echo'] as const) {
    const value = body[param];
    if (value !== undefined && value !== null && value !== false) {
      throw invalidRequest(`'${param}' is not supported by this server`, param, 'unsupported_parameter');
    }
  }
  const maxTokens =
    optionalInteger(body, 'max_completion_tokens', 1) ?? optionalInteger(body, 'max_tokens', 1);
  const temperature =
    optionalNumber(body, 'temperature', (t) => t >= 0 && t <= 2, 'in [0, 2]') ?? defaultTemperature;
  const topP = optionalNumber(body, 'top_p', (p) => p > 0 && p <= 1, 'in (0, 1]') ?? 1;
  const seed = optionalInteger(body, 'seed', Number.MIN_SAFE_INTEGER);
  const stream = optionalBoolean(body, 'stream') ?? false;
  let includeUsage = false;
  const options = body.stream_options;
  if (options !== undefined && options !== null) {
    if (typeof options !== 'object' || Array.isArray(options)) {
      wrongType('stream_options', 'an object', options);
    }
    if (!stream) {
      throw invalidRequest(
        "'stream_options' is only allowed with stream: true",
        'stream_options',
        'invalid_value',
      );
    }
    const value = (options as Body).include_usage;
    if (value !== undefined && value !== null && typeof value !== 'boolean') {
      wrongType('stream_options.include_usage', 'a boolean', value);
    }
    includeUsage = value === true;
  }
  return { model, maxTokens, temperature, topP, stop: stopStrings(body.stop), seed, stream, includeUsage };
}

function stopStrings(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (typeof value === 'string') return value === '' ? [] : [value];
  if (!Array.isArray(value)) wrongType('stop', 'a string or an array of strings', value);
  if (value.length > 4) outOfRange('stop', 'at most 4 strings', value);
  value.forEach((s, i) => {
    if (typeof s !== 'string') wrongType(`stop[${i}]`, 'a string', s);
  });
  return (value as string[]).filter((s) => s !== '');
}

/** POST /v1/completions. Default temperature 1, as OpenAI's. */
export function completionParams(raw: unknown): CompletionParams {
  const body = asObject(raw);
  const common = commonParams(body, 1);
  const prompt = body.prompt;
  if (prompt === undefined || prompt === null)
    throw invalidRequest("'prompt' is required", 'prompt', 'missing');
  if (typeof prompt === 'string') return { ...common, prompt };
  if (!Array.isArray(prompt)) wrongType('prompt', 'a string, an array of one string or of token ids', prompt);
  if (prompt.length > 0 && prompt.every((t) => typeof t === 'number')) {
    prompt.forEach((t, i) => {
      if (!Number.isInteger(t) || t < 0) outOfRange(`prompt[${i}]`, 'a token id (an integer >= 0)', t);
    });
    return { ...common, prompt: prompt as number[] };
  }
  if (prompt.length === 1 && typeof prompt[0] === 'string') return { ...common, prompt: prompt[0] };
  if (prompt.length > 1 && prompt.every((p) => typeof p === 'string' || Array.isArray(p))) {
    throw invalidRequest(
      `one prompt per request is supported, got ${prompt.length}`,
      'prompt',
      'unsupported_value',
    );
  }
  return wrongType('prompt', 'a string, an array of one string or of token ids', prompt);
}

/** POST /v1/chat/completions. Default temperature 1, as OpenAI's. */
export function chatParams(raw: unknown): ChatParams {
  const body = asObject(raw);
  const common = commonParams(body, 1);
  const messages = body.messages;
  if (messages === undefined || messages === null) {
    throw invalidRequest("'messages' is required", 'messages', 'missing');
  }
  if (!Array.isArray(messages)) wrongType('messages', 'an array', messages);
  if (messages.length === 0) outOfRange('messages', 'a non-empty array', messages);
  const checked = messages.map((m, i): ChatMessage => {
    const param = `messages[${i}]`;
    if (typeof m !== 'object' || m === null || Array.isArray(m)) wrongType(param, 'an object', m);
    const { role, content } = m as Body;
    if (typeof role !== 'string') wrongType(`${param}.role`, 'a string', role);
    if (!ROLES.has(role)) outOfRange(`${param}.role`, `one of ${[...ROLES].join(', ')}`, role);
    return { role, content: messageText(content, `${param}.content`) };
  });
  return { ...common, messages: checked };
}

/** A string, or an array of text parts ({ type: 'text', text }) joined; null (assistant tool calls) is ''. */
function messageText(content: unknown, param: string): string {
  if (content === null || content === undefined) return '';
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) wrongType(param, 'a string or an array of text parts', content);
  return content
    .map((part, i) => {
      const { type, text } = (typeof part === 'object' && part !== null ? part : {}) as Body;
      if (type !== 'text') {
        throw invalidRequest(
          `${param}[${i}]: only text parts are supported, got ${typeof type === 'string' ? `'${type}'` : typeName(part)}`,
          `${param}[${i}]`,
          'unsupported_value',
        );
      }
      if (typeof text !== 'string') wrongType(`${param}[${i}].text`, 'a string', text);
      return text;
    })
    .join('');
}

/**
 * The default chat template, for models without one the server can apply (the shipped pair
 * has none; a tokenizer_config.json chat_template is Jinja, which this server does not run):
 * one line per message, "System: …", "User: …", "Assistant: …" (developer messages read as
 * System, tool results as Tool), then "Assistant:" for the reply. Chat requests also stop at
 * a new "\nUser:" line so that the model does not write the user's next turn.
 */
export function defaultChatPrompt(messages: readonly ChatMessage[]): string {
  const label = (role: string) =>
    role === 'developer' ? 'System' : `${role.slice(0, 1).toUpperCase()}${role.slice(1)}`;
  return `${messages.map((m) => `${label(m.role)}: ${m.content}\n`).join('')}Assistant:`;
}

/** The stop strings the default chat template adds. */
export const CHAT_STOPS = ['\nUser:'];
