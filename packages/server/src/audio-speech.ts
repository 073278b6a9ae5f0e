import { type SpeechSynthesizer, speechFrameBudget } from '@specstream/models';
import { pcmWritableSink, resample, speakText } from '@specstream/streaming';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { identity, lastValueFrom, map, of } from 'rxjs';
import {
  type AudioContext,
  checkOpen,
  type RequestAbort,
  runAudioJob,
  streamFailed,
} from './audio-context.js';
import { type SpeechParams, speechParams } from './audio-params.js';
import { streamingWavHeader } from './audio-wav.js';
import { invalidRequest } from './errors.js';

/** OpenAI's pcm: raw 16-bit little-endian mono at 24 kHz (the synthesizer's 16 kHz is resampled to it). */
export const PCM_SAMPLE_RATE = 24_000;

/**
 * POST /v1/audio/speech, as OpenAI's: JSON { model, input, voice, response_format, speed }.
 * The audio is streamed as it is synthesized (chunked transfer): wav is a 16-bit mono WAV at the
 * synthesizer's rate whose header has 0xFFFFFFFF sizes, as OpenAI's streamed wav has; pcm is
 * raw s16le mono at 24 kHz. The samples are those of @specstream/models' synthesizeSpeech of
 * the same input, bit for bit (speakText guarantees it), as 16-bit integers.
 */
export async function speak(
  context: AudioContext,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<unknown> {
  checkOpen(context);
  const arrived = performance.now();
  const params = speechParams(request.body);
  const served = context.models.synthesizer(params.model);
  const symbols = spokenLength(served.model, params.input);
  return runAudioJob(context, request, reply, served.queue, async (abort) => {
    await streamSpeech(context, { request, reply, abort, arrived }, served.model, params, symbols);
    return reply;
  });
}

/** The input's length in the synthesizer's symbols, or a 400 when it has none or too many. */
function spokenLength(speech: SpeechSynthesizer, input: string): number {
  const symbols = speech.textToIds(input).length;
  if (symbols === 0) {
    throw invalidRequest('nothing to speak: the input has no letters or digits', 'input', 'invalid_value');
  }
  const most = speech.synthesizer.maxTextTokens;
  if (symbols > most) {
    throw invalidRequest(
      `the input is ${symbols} symbols long once normalised (numbers and symbols spelled out); the speech synthesizer takes at most ${most}`,
      'input',
      'string_above_max_length',
    );
  }
  return symbols;
}

interface Exchange {
  request: FastifyRequest;
  reply: FastifyReply;
  abort: RequestAbort;
  /** performance.now() when the request arrived. */
  arrived: number;
}

/**
 * Takes the response over and writes the audio as speakText produces it; pcmWritableSink
 * keeps to the socket's backpressure. A failure after the headers cuts the connection (a
 * truncated body is all HTTP can say by then); the client going away stops the synthesis.
 */
async function streamSpeech(
  context: AudioContext,
  exchange: Exchange,
  speech: SpeechSynthesizer,
  params: SpeechParams,
  symbols: number,
): Promise<void> {
  const { request, reply, abort, arrived } = exchange;
  const rate = speech.synthesizer.sampleRate;
  const started = performance.now();
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, {
    'content-type': params.format === 'wav' ? 'audio/wav' : 'audio/pcm',
    'cache-control': 'no-cache',
    'x-accel-buffering': 'no',
  });
  if (params.format === 'wav') raw.write(streamingWavHeader(rate));
  let audioSeconds = 0;
  const maxFrames = speechFrameBudget(speech.config.model, symbols);
  const written = of(params.input).pipe(
    speakText(speech, { maxFrames, signal: abort.signal }),
    map((chunk) => {
      if (audioSeconds === 0) context.metrics.timeToFirstAudio.observe((performance.now() - arrived) / 1000);
      audioSeconds += chunk.samples.length / chunk.sampleRate;
      return chunk.samples;
    }),
    params.format === 'pcm' ? resample(rate, PCM_SAMPLE_RATE) : identity,
    pcmWritableSink(raw, { format: 's16le' }),
  );
  try {
    await lastValueFrom(written);
    context.metrics.audioJob('speech', audioSeconds, (performance.now() - started) / 1000);
    context.countRequest(request, 200);
  } catch (error) {
    streamFailed(context, request, abort, error, 'speech synthesis');
    raw.destroy();
  }
}
