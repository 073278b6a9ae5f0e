import type { CtcFinalEvent } from '@specstream/streaming';
import type { FastifyReply, FastifyRequest } from 'fastify';
import {
  type AudioContext,
  checkOpen,
  type RequestAbort,
  runAudioJob,
  streamFailed,
} from './audio-context.js';
import { readAudioForm } from './audio-form.js';
import { type TranscriptionParams, transcriptionParams } from './audio-params.js';
import { recognizeStream } from './audio-recognize.js';
import { checkWavContainer, decodeUploadedWav } from './audio-wav.js';
import { invalidRequest } from './errors.js';

/**
 * POST /v1/audio/transcriptions, as OpenAI's: a multipart form with the audio (WAV, any rate
 * and channels: downmixed and resampled to the recognizer's 16 kHz) and `model`; the answer is
 * json ({ text, usage }), text, or verbose_json (duration, one segment, words on request), or,
 * with stream=true, server-sent transcript.text.delta events as the streaming CTC decoder
 * produces text, then transcript.text.done.
 */
export async function transcribe(
  context: AudioContext,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<unknown> {
  checkOpen(context);
  const form = await readAudioForm(request, context.maxAudioBytes);
  const params = transcriptionParams(form.fields);
  const served = context.models.recognizer(params.model);
  const file = form.file;
  if (file === undefined) {
    throw invalidRequest("'file' is required: the audio to transcribe, as WAV", 'file', 'missing');
  }
  checkWavContainer(file);
  return runAudioJob(context, request, reply, served.queue, async (abort) => {
    // Decoded in the model's turn: one decoded file (floats, 2-4x the upload) in memory at a time.
    const audio = await decodeUploadedWav(file);
    const started = performance.now();
    // Streamed: greedy, whose deltas never need revising; whole: the models' transcript decoder.
    const recognize = async (onDelta?: (delta: string) => void) => {
      const decoder = onDelta === undefined ? context.models.transcriptDecoder : 'greedy';
      const final = await recognizeStream(served.model, audio, abort.signal, onDelta, decoder);
      const seconds = (performance.now() - started) / 1000;
      context.metrics.audioJob('transcription', final.audioSeconds, seconds);
      return final;
    };
    if (params.stream) {
      await streamTranscript(context, request, reply, abort, recognize);
      return reply;
    }
    const final = await recognize();
    context.countRequest(request, 200);
    if (params.format === 'text') return reply.type('text/plain; charset=utf-8').send(final.text);
    return reply.send(transcriptBody(params, final));
  });
}

/** The json or verbose_json answer (OpenAI's Transcription and TranscriptionVerbose). */
function transcriptBody(params: TranscriptionParams, final: CtcFinalEvent): Record<string, unknown> {
  const { text, words, audioSeconds: duration } = final;
  const usage = { type: 'duration', seconds: Math.ceil(duration) };
  if (params.format === 'json') return { text, usage };
  // One segment: CTC has no segmenter, and the fields Whisper fills from its decoder (tokens,
  // log-probabilities, compression) have no counterpart here, so they are neutral values.
  const segment = {
    id: 0,
    seek: 0,
    start: 0,
    end: duration,
    text,
    tokens: [],
    temperature: 0,
    avg_logprob: 0,
    compression_ratio: 1,
    no_speech_prob: text === '' ? 1 : 0,
  };
  return {
    task: 'transcribe',
    language: 'english',
    duration,
    text,
    ...(params.segments ? { segments: text === '' ? [] : [segment] } : {}),
    ...(params.words ? { words } : {}),
    usage,
  };
}

/**
 * Answers with server-sent events: a transcript.text.delta per piece of new text, then
 * transcript.text.done. The response is taken over here (headers go out before the work), so
 * errors after that are sent in the stream, as the text endpoints do.
 */
async function streamTranscript(
  context: AudioContext,
  request: FastifyRequest,
  reply: FastifyReply,
  abort: RequestAbort,
  run: (onDelta: (delta: string) => void) => Promise<CtcFinalEvent>,
): Promise<void> {
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  const send = (value: unknown) => {
    if (!raw.writableEnded && !raw.destroyed) raw.write(`data: ${JSON.stringify(value)}\n\n`);
  };
  try {
    const final = await run((delta) => send({ type: 'transcript.text.delta', delta }));
    send({ type: 'transcript.text.done', text: final.text });
    context.countRequest(request, 200);
  } catch (error) {
    send(streamFailed(context, request, abort, error, 'transcription').body());
  } finally {
    if (!raw.writableEnded && !raw.destroyed) raw.end();
  }
}
