import { invalidRequest } from './errors.js';
import { asObject } from './requests.js';

/** OpenAI's limit on POST /v1/audio/speech's input, in characters. */
export const MAX_SPEECH_INPUT_CHARS = 4096;

export type TranscriptFormat = 'json' | 'text' | 'verbose_json';

/** POST /v1/audio/transcriptions once checked (the file is read apart). */
export interface TranscriptionParams {
  model: string;
  format: TranscriptFormat;
  /** verbose_json: word times (timestamp_granularities[] has word). */
  words: boolean;
  /** verbose_json: segments (timestamp_granularities[] has segment, or names nothing: OpenAI's default). */
  segments: boolean;
  stream: boolean;
}

/** wav: 16-bit mono at the model's rate; pcm: raw s16le mono at 24 kHz, as OpenAI's pcm. */
export type SpeechFormat = 'wav' | 'pcm';

/** POST /v1/audio/speech once checked. */
export interface SpeechParams {
  model: string;
  input: string;
  format: SpeechFormat;
}

/** A multipart form's text fields: name (without a trailing []) → its values in order. */
export type FormFields = ReadonlyMap<string, readonly string[]>;

const TRANSCRIPT_FORMATS: readonly string[] = ['json', 'text', 'verbose_json'];
const ENGLISH = new Set(['en', 'english']);
const SPEECH_FORMATS: readonly string[] = ['wav', 'pcm'];
/** OpenAI's other speech formats: named so that the refusal says what to ask for instead. */
const ENCODED_SPEECH_FORMATS: readonly string[] = ['mp3', 'opus', 'aac', 'flac'];

function oneField(fields: FormFields, name: string): string | undefined {
  const values = fields.get(name);
  if (values === undefined || values.length === 0) return undefined;
  if (values.length > 1) {
    throw invalidRequest(`'${name}' was given ${values.length} times; give it once`, name, 'invalid_value');
  }
  return values[0];
}

function formBoolean(fields: FormFields, name: string): boolean {
  const value = oneField(fields, name);
  if (value === undefined || value === '' || value === 'false') return false;
  if (value === 'true') return true;
  throw invalidRequest(`'${name}' must be true or false, got ${JSON.stringify(value)}`, name, 'invalid_type');
}

/**
 * The form fields of a transcription. Refused by name: formats other than json, text and
 * verbose_json (srt, vtt, diarized_json), a language other than English (the recognizer
 * knows English only), include[]=logprobs, timestamps without verbose_json, a streamed
 * verbose_json. Ignored, as hints this recognizer has no use for: prompt, temperature,
 * chunking_strategy; unknown fields are ignored too.
 */
export function transcriptionParams(fields: FormFields): TranscriptionParams {
  const model = oneField(fields, 'model');
  if (model === undefined || model === '') throw invalidRequest("'model' is required", 'model', 'missing');
  const format = oneField(fields, 'response_format') || 'json';
  if (!TRANSCRIPT_FORMATS.includes(format)) {
    throw invalidRequest(
      `response_format '${format}' is not supported; use one of ${TRANSCRIPT_FORMATS.join(', ')}`,
      'response_format',
      'unsupported_value',
    );
  }
  const language = oneField(fields, 'language');
  if (language !== undefined && language !== '' && !ENGLISH.has(language.toLowerCase())) {
    throw invalidRequest(
      `language '${language}' is not supported: the speech recognizer knows English ('en') only`,
      'language',
      'unsupported_value',
    );
  }
  if ((fields.get('include') ?? []).length > 0) {
    throw invalidRequest(
      "'include' (logprobs) is not supported by this server",
      'include',
      'unsupported_parameter',
    );
  }
  const granularities = fields.get('timestamp_granularities') ?? [];
  for (const value of granularities) {
    if (value !== 'word' && value !== 'segment') {
      throw invalidRequest(
        `timestamp_granularities must be word and/or segment, got ${JSON.stringify(value)}`,
        'timestamp_granularities',
        'invalid_value',
      );
    }
  }
  if (granularities.length > 0 && format !== 'verbose_json') {
    throw invalidRequest(
      'timestamp_granularities needs response_format verbose_json',
      'timestamp_granularities',
      'invalid_value',
    );
  }
  const stream = formBoolean(fields, 'stream');
  if (stream && format === 'verbose_json') {
    throw invalidRequest(
      'a streamed transcription is json or text; verbose_json is not streamed',
      'stream',
      'unsupported_value',
    );
  }
  return {
    model,
    format: format as TranscriptFormat,
    words: granularities.includes('word'),
    segments: granularities.length === 0 || granularities.includes('segment'),
    stream,
  };
}

/**
 * The JSON body of a speech request. `voice` is required, as OpenAI requires it, and any
 * voice is taken: the synthesizer has one voice. Refused by name: mp3, opus, aac and flac
 * (wav and pcm are made), a speed other than 1, instructions, stream_format sse.
 */
export function speechParams(raw: unknown): SpeechParams {
  const body = asObject(raw);
  const model = body.model;
  if (model === undefined || model === null) throw invalidRequest("'model' is required", 'model', 'missing');
  if (typeof model !== 'string') throw invalidRequest("'model' must be a string", 'model', 'invalid_type');
  const input = body.input;
  if (input === undefined || input === null) throw invalidRequest("'input' is required", 'input', 'missing');
  if (typeof input !== 'string') throw invalidRequest("'input' must be a string", 'input', 'invalid_type');
  if (input.length > MAX_SPEECH_INPUT_CHARS) {
    throw invalidRequest(
      `'input' is ${input.length} characters long; the most is ${MAX_SPEECH_INPUT_CHARS}`,
      'input',
      'string_above_max_length',
    );
  }
  checkVoice(body.voice);
  const format = speechFormat(body.response_format);
  const speed = body.speed;
  if (speed !== undefined && speed !== null && speed !== 1) {
    throw invalidRequest(
      `only speed 1.0 is supported, got ${JSON.stringify(speed)}`,
      'speed',
      'unsupported_value',
    );
  }
  const instructions = body.instructions;
  if (instructions !== undefined && instructions !== null && instructions !== '') {
    throw invalidRequest(
      "'instructions' is not supported: the synthesizer has one voice and style",
      'instructions',
      'unsupported_parameter',
    );
  }
  const streamFormat = body.stream_format;
  if (streamFormat !== undefined && streamFormat !== null && streamFormat !== 'audio') {
    throw invalidRequest(
      `stream_format must be 'audio' (the audio is always streamed as it is made), got ${JSON.stringify(streamFormat)}`,
      'stream_format',
      'unsupported_value',
    );
  }
  return { model, input, format };
}

function checkVoice(voice: unknown): void {
  if (voice === undefined || voice === null) {
    throw invalidRequest(
      "'voice' is required (any voice is taken: the synthesizer has one)",
      'voice',
      'missing',
    );
  }
  const id = typeof voice === 'object' && !Array.isArray(voice) ? (voice as { id?: unknown }).id : voice;
  if (typeof id !== 'string') {
    throw invalidRequest("'voice' must be a string or { id: string }", 'voice', 'invalid_type');
  }
}

function speechFormat(value: unknown): SpeechFormat {
  if (value === undefined || value === null) return 'wav';
  if (typeof value === 'string' && SPEECH_FORMATS.includes(value)) return value as SpeechFormat;
  const known = typeof value === 'string' && ENCODED_SPEECH_FORMATS.includes(value);
  throw invalidRequest(
    `response_format ${JSON.stringify(value)} is ${known ? 'not available on this server' : 'unknown'}; use wav (16-bit, the model's rate) or pcm (raw 16-bit little-endian, 24 kHz mono)`,
    'response_format',
    known ? 'unsupported_value' : 'invalid_value',
  );
}
