import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { CausalLm } from '@specstream/core';
import {
  CTC_BEAM_WIDTH,
  type CtcDecoder,
  loadSpeechRecognizer,
  loadSpeechRecognizerLm,
  loadSpeechSynthesizer,
  recognizeAudio,
  type SpeechRecognizer,
  type SpeechSynthesizer,
  synthesizeSpeech,
  type Tokenizer,
  wordErrorRate,
} from '@specstream/models';
import { resample, wavFileSource } from '@specstream/streaming';
import * as tf from '@tensorflow/tfjs-core';
import type OpenAI from 'openai';
import { toFile } from 'openai';
import { from, lastValueFrom, toArray } from 'rxjs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { SpecstreamServer } from '../src/index.js';
import { eventually, failure, loadShippedPair, MODEL_ID, SHIPPED_TARGET, startServer } from './helpers.js';

/** The shipped speech models sit beside the shipped text pair. */
const RECOGNIZER_DIR = join(dirname(SHIPPED_TARGET), 'specstream-speech-recognizer');
const SYNTHESIZER_DIR = join(dirname(SHIPPED_TARGET), 'specstream-speech-synthesizer');
const RECOGNIZER_ID = 'specstream-speech-recognizer';
const SYNTHESIZER_ID = 'specstream-speech-synthesizer';
const REFERENCE = JSON.parse(readFileSync(join(RECOGNIZER_DIR, 'reference', 'reference.json'), 'utf8')) as {
  wav: string;
  text: string;
}[];
/** A sentence in one of the voices the recognizer was trained on. */
const SPOKEN = REFERENCE.find((r) => r.wav.startsWith('heldout-trained-voices'))!;
const SPOKEN_WAV = join(RECOGNIZER_DIR, 'reference', SPOKEN.wav);
const SYNTHESIZER_CONFIG = JSON.parse(readFileSync(join(SYNTHESIZER_DIR, 'config.json'), 'utf8')) as {
  sample_rate: number;
  max_text_tokens: number;
};
const SENTENCE = 'Lists have an append method.';

let target: CausalLm;
let tokenizer: Tokenizer;
let recognizer: SpeechRecognizer;
let synthesizer: SpeechSynthesizer;
let server: SpecstreamServer;
let url: string;
let client: OpenAI;
let closed = false;
/** Tensors held before the server loaded its own copies of the speech models. */
let tensorsBeforeServer: number;
/** The reference sentence at the recognizer's rate, and the library's transcript of it. */
let samples: Float32Array;
/** The whole transcript the server gives: a beam of CTC_BEAM_WIDTH with the folder's character LM. */
let expectedText: string;
/** The streamed one: greedy, whose text only grows. */
let greedyText: string;
let wholeDecoder: CtcDecoder;

beforeAll(async () => {
  let draft: CausalLm;
  ({ target, draft, tokenizer } = await loadShippedPair());
  draft.dispose();
  recognizer = await loadSpeechRecognizer(RECOGNIZER_DIR);
  synthesizer = await loadSpeechSynthesizer(SYNTHESIZER_DIR);
  const wav = await wavFileSource(SPOKEN_WAV);
  expect(wav.sampleRate).toBe(recognizer.config.sampleRate);
  samples = concat(await lastValueFrom(wav.samples.pipe(toArray())));
  greedyText = (await recognizeAudio(recognizer, samples)).text;
  wholeDecoder = {
    beamWidth: CTC_BEAM_WIDTH,
    lm: await loadSpeechRecognizerLm(RECOGNIZER_DIR, recognizer.config),
  };
  expectedText = (await recognizeAudio(recognizer, samples, { decoder: wholeDecoder })).text;
  // The server loads its own copies from the folders (and frees them on close).
  tensorsBeforeServer = tf.memory().numTensors;
  ({ server, url, client } = await startServer({
    target,
    tokenizer,
    recognizer: RECOGNIZER_DIR,
    synthesizer: SYNTHESIZER_DIR,
  }));
});
afterAll(async () => {
  if (!closed) await server?.close();
  target?.dispose();
  recognizer?.dispose();
  synthesizer?.dispose();
});

function concat(chunks: Float32Array[]): Float32Array {
  const out = new Float32Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/** floatToInt16 of @specstream/streaming (×32768, rounded, clipped); `| 0` makes -0 a 0, as Int16Array holds it. */
const toInt16 = (x: number) => Math.max(-32768, Math.min(32767, Math.round(x * 32768))) | 0;

/** A 16-bit PCM WAV file of `channels` (equal lengths) at `rate`. */
function wavBytes(channels: Float32Array[], rate: number): Buffer {
  const frames = channels[0].length;
  const header = Buffer.alloc(44);
  const dataBytes = frames * channels.length * 2;
  header.write('RIFF', 0, 'latin1');
  header.writeUInt32LE(36 + dataBytes, 4);
  header.write('WAVEfmt ', 8, 'latin1');
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20);
  header.writeUInt16LE(channels.length, 22);
  header.writeUInt32LE(rate, 24);
  header.writeUInt32LE(rate * channels.length * 2, 28);
  header.writeUInt16LE(channels.length * 2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36, 'latin1');
  header.writeUInt32LE(dataBytes, 40);
  const data = Buffer.alloc(dataBytes);
  for (let f = 0; f < frames; f++) {
    channels.forEach((channel, c) => {
      data.writeInt16LE(toInt16(channel[f]), (f * channels.length + c) * 2);
    });
  }
  return Buffer.concat([header, data]);
}

/** A streamed WAV answer: its header's fields and its samples. */
function readStreamedWav(bytes: Buffer) {
  return {
    riff: bytes.toString('latin1', 0, 4),
    riffSize: bytes.readUInt32LE(4),
    wave: bytes.toString('latin1', 8, 16),
    format: bytes.readUInt16LE(20),
    channels: bytes.readUInt16LE(22),
    sampleRate: bytes.readUInt32LE(24),
    bits: bytes.readUInt16LE(34),
    data: bytes.toString('latin1', 36, 40),
    dataSize: bytes.readUInt32LE(40),
    samples: Array.from(
      new Int16Array(bytes.buffer.slice(bytes.byteOffset + 44, bytes.byteOffset + bytes.length)),
    ),
  };
}

async function postForm(base: string, form: FormData) {
  const response = await fetch(`${base}/v1/audio/transcriptions`, { method: 'POST', body: form });
  return { status: response.status, body: (await response.json()) as { error: Record<string, unknown> } };
}

/** Polls an asynchronous check until it holds or `ms` pass; returns whether it held. */
async function eventuallyAsync(check: () => Promise<boolean>, ms = 5000): Promise<boolean> {
  const until = performance.now() + ms;
  while (!(await check())) {
    if (performance.now() > until) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return true;
}

const speechFile = () => toFile(readFileSync(SPOKEN_WAV), SPOKEN.wav, { type: 'audio/wav' });

describe('POST /v1/audio/transcriptions', () => {
  test('json: the transcript is the library recognizer’s for the same samples', async () => {
    const out = await client.audio.transcriptions.create({ file: await speechFile(), model: RECOGNIZER_ID });
    expect(out.text).toBe(expectedText);
    // The trained voice is recognised well (the models' own tests bound the error rate).
    expect(wordErrorRate(SPOKEN.text.replace(/[^a-z' ]/gi, ' '), out.text)).toBeLessThan(0.5);
    expect(out.usage).toEqual({ type: 'duration', seconds: Math.ceil(samples.length / 16000) });
    const text = await client.audio.transcriptions.create({
      file: await speechFile(),
      model: RECOGNIZER_ID,
      response_format: 'text',
    });
    expect(text).toBe(expectedText);
  });

  test('verbose_json: duration, one segment, words in order with increasing times', async () => {
    const out = await client.audio.transcriptions.create({
      file: await speechFile(),
      model: RECOGNIZER_ID,
      response_format: 'verbose_json',
      timestamp_granularities: ['word', 'segment'],
    });
    const duration = samples.length / recognizer.config.sampleRate;
    expect(out).toMatchObject({ task: 'transcribe', language: 'english', text: expectedText, duration });
    expect(out.segments).toHaveLength(1);
    expect(out.segments![0]).toMatchObject({ id: 0, start: 0, end: duration, text: expectedText });
    const words = out.words!;
    expect(words.map((w) => w.word)).toEqual(expectedText.split(/\s+/).filter(Boolean));
    words.forEach((word, i) => {
      expect(word.end).toBeGreaterThan(word.start);
      expect(word.end).toBeLessThanOrEqual(duration + 0.05);
      if (i > 0) expect(word.start).toBeGreaterThanOrEqual(words[i - 1].end);
    });
    const segmentsOnly = await client.audio.transcriptions.create({
      file: await speechFile(),
      model: RECOGNIZER_ID,
      response_format: 'verbose_json',
    });
    expect(segmentsOnly.words).toBeUndefined();
    expect(segmentsOnly.segments).toHaveLength(1);
  });

  test("whole transcripts (the beam + the folder's LM) make fewer word errors than streamed (greedy) ones", async () => {
    const reference = SPOKEN.text.replace(/[.,?!]/g, ' ').toLowerCase();
    const whole = await client.audio.transcriptions.create({
      file: await speechFile(),
      model: RECOGNIZER_ID,
    });
    expect(whole.text).toBe(expectedText);
    expect(wordErrorRate(reference, whole.text)).toBeLessThan(wordErrorRate(reference, greedyText));
  });

  test('stream: transcript.text.delta events concatenate to transcript.text.done’s text', async () => {
    const stream = await client.audio.transcriptions.create({
      file: await speechFile(),
      model: RECOGNIZER_ID,
      stream: true,
    });
    const deltas: string[] = [];
    let done: string | undefined;
    for await (const event of stream) {
      if (event.type === 'transcript.text.delta') deltas.push(event.delta);
      if (event.type === 'transcript.text.done') done = event.text;
    }
    expect(deltas.length).toBeGreaterThan(2);
    expect(deltas.join('')).toBe(greedyText);
    expect(done).toBe(greedyText);
  });

  test('48 kHz stereo (over the JSON body limit) is downmixed and resampled as the library does', async () => {
    const at48 = concat(await lastValueFrom(from([samples]).pipe(resample(16000, 48000), toArray())));
    const bytes = wavBytes([at48, at48], 48000);
    expect(bytes.length).toBeGreaterThan(1024 * 1024);
    // What the server must hear: the file's 16-bit samples, back at 16 kHz.
    const decoded = Float32Array.from(at48, (x) => toInt16(x) / 32768);
    const back = concat(await lastValueFrom(from([decoded]).pipe(resample(48000, 16000), toArray())));
    const expected = (await recognizeAudio(recognizer, back, { decoder: wholeDecoder })).text;
    const out = await client.audio.transcriptions.create({
      file: await toFile(bytes, 'stereo.wav'),
      model: RECOGNIZER_ID,
    });
    expect(out.text).toBe(expected);
  });
});

/** The test sentence spoken by the shipped-format synthesizer, with these request fields. */
const speak = (fields: { voice: string; response_format?: string }) =>
  client.audio.speech.create({ model: SYNTHESIZER_ID, input: SENTENCE, ...fields } as Parameters<
    typeof client.audio.speech.create
  >[0]);

describe('POST /v1/audio/speech', () => {
  test('wav: a streamed 16-bit WAV whose samples are synthesizeSpeech’s', async () => {
    const response = await speak({ voice: 'alloy', response_format: 'wav' });
    expect(response.headers.get('content-type')).toBe('audio/wav');
    expect(response.headers.get('transfer-encoding')).toBe('chunked');
    const wav = readStreamedWav(Buffer.from(await response.arrayBuffer()));
    expect(wav).toMatchObject({
      riff: 'RIFF',
      riffSize: 0xffffffff,
      wave: 'WAVEfmt ',
      format: 1,
      channels: 1,
      sampleRate: SYNTHESIZER_CONFIG.sample_rate,
      bits: 16,
      data: 'data',
      dataSize: 0xffffffff,
    });
    const expected = await synthesizeSpeech(synthesizer, SENTENCE);
    expect(wav.samples.length).toBeGreaterThan(0);
    expect(wav.samples).toEqual(Array.from(expected.samples, toInt16));
  });

  test('pcm: raw s16le at 24 kHz, synthesizeSpeech’s samples resampled', async () => {
    const response = await speak({ voice: 'nova', response_format: 'pcm' });
    expect(response.headers.get('content-type')).toBe('audio/pcm');
    const bytes = Buffer.from(await response.arrayBuffer());
    const got = Array.from(new Int16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2));
    const spoken = await synthesizeSpeech(synthesizer, SENTENCE);
    const at24 = concat(
      await lastValueFrom(
        from([spoken.samples]).pipe(resample(SYNTHESIZER_CONFIG.sample_rate, 24000), toArray()),
      ),
    );
    expect(got.length).toBe(Math.round((spoken.samples.length * 24000) / SYNTHESIZER_CONFIG.sample_rate));
    expect(got).toEqual(Array.from(at24, toInt16));
  });
});

describe('bad input', () => {
  test('transcriptions: no file, not WAV, not multipart, unknown or wrong model, two files', async () => {
    const noFile = new FormData();
    noFile.append('model', RECOGNIZER_ID);
    const missing = await postForm(url, noFile);
    expect(missing.status).toBe(400);
    expect(missing.body.error).toMatchObject({
      type: 'invalid_request_error',
      param: 'file',
      code: 'missing',
    });

    const mp3 = Buffer.concat([Buffer.from('ID3\u0004\u0000\u0000', 'latin1'), Buffer.alloc(2000, 0x55)]);
    const notWav = await failure(
      client.audio.transcriptions.create({ file: await toFile(mp3, 'talk.mp3'), model: RECOGNIZER_ID }),
    );
    expect(notWav.status).toBe(400);
    expect(notWav.code).toBe('invalid_file_format');
    expect(notWav.message).toMatch(/talk\.mp3.*MP3.*WAV/);
    const broken = Buffer.from(readFileSync(SPOKEN_WAV));
    broken.write('XXXX', 12, 'latin1'); // the fmt chunk's id
    const unreadable = await failure(
      client.audio.transcriptions.create({ file: await toFile(broken, 'broken.wav'), model: RECOGNIZER_ID }),
    );
    expect(unreadable.status).toBe(400);
    expect(unreadable.message).toMatch(/broken\.wav/);
    expect(unreadable.message).not.toMatch(/specstream-upload/);

    const json = await fetch(`${url}/v1/audio/transcriptions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: RECOGNIZER_ID }),
    });
    expect(json.status).toBe(415);
    const octets = await fetch(`${url}/v1/audio/transcriptions`, {
      method: 'POST',
      headers: { 'content-type': 'audio/wav' },
      body: readFileSync(SPOKEN_WAV),
    });
    expect(octets.status).toBe(415);
    expect(((await octets.json()) as { error: { message: string } }).error.message).toMatch(/multipart/);

    const completionForm = new FormData();
    completionForm.append('model', MODEL_ID);
    const textEndpoint = await fetch(`${url}/v1/completions`, { method: 'POST', body: completionForm });
    expect(textEndpoint.status).toBe(415); // multipart is parsed for transcriptions only

    const unknown = await failure(
      client.audio.transcriptions.create({ file: await speechFile(), model: 'whisper-1' }),
    );
    expect(unknown.status).toBe(404);
    expect(unknown.code).toBe('model_not_found');
    const wrongKind = await failure(
      client.audio.transcriptions.create({ file: await speechFile(), model: SYNTHESIZER_ID }),
    );
    expect(wrongKind.status).toBe(400);
    expect(wrongKind.param).toBe('model');

    const two = new FormData();
    two.append('model', RECOGNIZER_ID);
    two.append('file', new Blob([readFileSync(SPOKEN_WAV)]), 'a.wav');
    two.append('file', new Blob([readFileSync(SPOKEN_WAV)]), 'b.wav');
    const twoFiles = await postForm(url, two);
    expect(twoFiles.status).toBe(400);
    expect(twoFiles.body.error.code).toBe('too_many_files');

    const cases: [Record<string, unknown>, string][] = [
      [{ response_format: 'srt' }, 'response_format'],
      [{ language: 'fr' }, 'language'],
      [{ timestamp_granularities: ['word'] }, 'timestamp_granularities'],
      [{ response_format: 'verbose_json', stream: true }, 'stream'],
    ];
    for (const [fields, param] of cases) {
      const error = await failure(
        client.audio.transcriptions.create({
          file: await speechFile(),
          model: RECOGNIZER_ID,
          ...fields,
        } as never),
      );
      expect(error.status, JSON.stringify(fields)).toBe(400);
      expect(error.param, JSON.stringify(fields)).toBe(param);
    }
  });

  test('speech: mp3, too long an input, speed, no voice, unknown model', async () => {
    const ask = (fields: Record<string, unknown>) => failure(speak({ voice: 'alloy', ...fields } as never));
    const mp3 = await ask({ response_format: 'mp3' });
    expect(mp3.status).toBe(400);
    expect(mp3.param).toBe('response_format');
    expect(mp3.message).toMatch(/wav.*pcm/);
    const overOpenAi = await ask({ input: 'word '.repeat(900) });
    expect(overOpenAi.status).toBe(400);
    expect(overOpenAi.code).toBe('string_above_max_length');
    // Within 4096 characters but past the synthesizer's text capacity (its config's max_text_tokens).
    const overModel = await ask({ input: 'a'.repeat(SYNTHESIZER_CONFIG.max_text_tokens + 1) });
    expect(overModel.status).toBe(400);
    expect(overModel.param).toBe('input');
    expect(overModel.message).toContain(String(SYNTHESIZER_CONFIG.max_text_tokens));
    const nothing = await ask({ input: '...' });
    expect(nothing.status).toBe(400);
    expect(nothing.param).toBe('input');
    const fast = await ask({ speed: 1.5 });
    expect(fast.param).toBe('speed');
    const noVoice = await ask({ voice: undefined });
    expect(noVoice.param).toBe('voice');
    const unknown = await ask({ model: 'tts-1' });
    expect(unknown.status).toBe(404);
    expect(unknown.code).toBe('model_not_found');
  });

  test('a server without speech models answers 404 saying so; a small upload limit answers 413', async () => {
    const {
      server: plain,
      client: c,
      url: plainUrl,
    } = await startServer({
      target,
      tokenizer,
      maxAudioBytes: 50_000,
    });
    try {
      expect((await c.models.list()).data.map((m) => m.id)).toEqual([MODEL_ID]);
      const speech = await failure(
        c.audio.speech.create({ model: SYNTHESIZER_ID, input: SENTENCE, voice: 'alloy' }),
      );
      expect(speech.status).toBe(404);
      expect(speech.code).toBe('model_not_found');
      expect(speech.message).toMatch(/no speech synthesizer/);
      const small = new FormData();
      small.append('model', RECOGNIZER_ID);
      small.append('file', new Blob([readFileSync(SPOKEN_WAV).subarray(0, 1000)]), 'short.wav');
      const transcription = await postForm(plainUrl, small);
      expect(transcription.status).toBe(404);
      expect(transcription.body.error.message).toMatch(/no speech recognizer/);
      const big = new FormData();
      big.append('model', RECOGNIZER_ID);
      big.append('file', new Blob([readFileSync(SPOKEN_WAV)]), 'big.wav');
      const tooLarge = await postForm(plainUrl, big);
      expect(tooLarge.status).toBe(413);
      expect(tooLarge.body.error).toMatchObject({ code: 'file_too_large', param: 'file' });
      expect(tooLarge.body.error.message).toContain('50000');
    } finally {
      await plain.close();
    }
  });
});

describe('jobs', () => {
  /** A long input (within the synthesizer's capacity) whose speech takes many model calls. */
  const longInput = () => {
    const sentence = 'The for statement iterates over the items of a sequence. ';
    return sentence.repeat(Math.floor((SYNTHESIZER_CONFIG.max_text_tokens - 1) / sentence.length));
  };

  test('a client that aborts mid-speech stops the synthesis and frees its tensors', async () => {
    const before = tf.memory().numTensors;
    const controller = new AbortController();
    const response = await fetch(`${url}/v1/audio/speech`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: SYNTHESIZER_ID, input: longInput(), voice: 'alloy' }),
      signal: controller.signal,
    });
    const reader = response.body!.getReader();
    let bytes = 0;
    while (bytes <= 44) bytes += (await reader.read()).value?.length ?? 0;
    controller.abort();
    await reader.closed.catch(() => undefined);
    const queue = () => server.metrics.registry.getSingleMetricAsString('specstream_audio_jobs_running');
    expect(await eventually(() => tf.memory().numTensors === before, 5000)).toBe(true);
    expect(await queue()).toMatch(new RegExp(`model="${SYNTHESIZER_ID}"} 0`));
    const requests = await server.metrics.registry.getSingleMetricAsString('specstream_requests_total');
    expect(requests).toMatch(/endpoint="\/v1\/audio\/speech",status="499"/);
  });

  test('a client that aborts a streamed transcription stops the recognition and frees its tensors', async () => {
    const long = wavBytes([concat(Array.from({ length: 12 }, () => samples))], 16000);
    const before = tf.memory().numTensors;
    const controller = new AbortController();
    const stream = await client.audio.transcriptions.create(
      { file: await toFile(long, 'long.wav'), model: RECOGNIZER_ID, stream: true },
      { signal: controller.signal },
    );
    let deltas = 0;
    await (async () => {
      for await (const event of stream) {
        if (event.type === 'transcript.text.done') throw new Error('the transcription ran to its end');
        if (++deltas === 2) controller.abort();
      }
    })().catch((error: Error) => {
      if (error.message.includes('ran to its end')) throw error;
    });
    expect(await eventually(() => tf.memory().numTensors === before, 5000)).toBe(true);
    const requests = await server.metrics.registry.getSingleMetricAsString('specstream_requests_total');
    expect(requests).toMatch(/endpoint="\/v1\/audio\/transcriptions",status="499"/);
  });

  test('one speech job at a time: the next waits (and leaves when aborted), past the queue 429 + Retry-After', async () => {
    const {
      server: small,
      url: smallUrl,
      client: c,
    } = await startServer({
      target,
      tokenizer,
      synthesizer,
      maxAudioQueue: 1,
    });
    const gauge = async (name: string) =>
      Number(/ (\d+)$/m.exec(await small.metrics.registry.getSingleMetricAsString(name))?.[1]);
    const speak = (signal: AbortSignal) =>
      fetch(`${smallUrl}/v1/audio/speech`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: SYNTHESIZER_ID, input: longInput(), voice: 'alloy' }),
        signal,
      });
    try {
      const running = new AbortController();
      const first = await speak(running.signal);
      expect(first.status).toBe(200);
      const waiting = new AbortController();
      const second = speak(waiting.signal).catch(() => undefined);
      expect(await eventuallyAsync(async () => (await gauge('specstream_audio_queue_length')) === 1)).toBe(
        true,
      );
      const refused = await failure(
        c.audio.speech.create({ model: SYNTHESIZER_ID, input: SENTENCE, voice: 'x' }),
      );
      expect(refused.status).toBe(429);
      expect(refused.code).toBe('queue_full');
      expect(refused.headers?.get('retry-after')).toBe('1');
      waiting.abort();
      await second;
      expect(await eventuallyAsync(async () => (await gauge('specstream_audio_queue_length')) === 0)).toBe(
        true,
      );
      expect(await gauge('specstream_audio_jobs_running')).toBe(1);
      running.abort();
      await first.body?.cancel().catch(() => undefined);
      expect(await eventuallyAsync(async () => (await gauge('specstream_audio_jobs_running')) === 0)).toBe(
        true,
      );
    } finally {
      await small.close();
    }
  });

  test('metrics: audio seconds, real-time factors, time to first audio, queues', async () => {
    const text = await (await fetch(`${url}/metrics`)).text();
    for (const line of [
      'specstream_audio_seconds_total{task="transcription"}',
      'specstream_audio_seconds_total{task="speech"}',
      'specstream_audio_real_time_factor_bucket{le="0.1",task="transcription"}',
      'specstream_audio_real_time_factor_count{task="speech"}',
      'specstream_speech_time_to_first_audio_seconds_count',
      `specstream_audio_queue_length{model="${RECOGNIZER_ID}"} 0`,
      `specstream_audio_jobs_running{model="${SYNTHESIZER_ID}"} 0`,
      'specstream_requests_total{endpoint="/v1/audio/speech",status="200"}',
    ]) {
      expect(text).toContain(line);
    }
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual([MODEL_ID, RECOGNIZER_ID, SYNTHESIZER_ID]);
  });

  test('close frees the speech models the server loaded', async () => {
    expect(tf.memory().numTensors).toBeGreaterThan(tensorsBeforeServer);
    closed = true;
    await server.close();
    expect(tf.memory().numTensors).toBe(tensorsBeforeServer);
  });
});
