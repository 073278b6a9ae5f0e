import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { concatFloat32, InvalidArgumentError, initBackend } from '@specstream/core';
import {
  CTC_GREEDY_START,
  type CtcDecoder,
  ctcGreedyChunk,
  ctcText,
  ctcWords,
  loadSpeechRecognizer,
  RECOGNIZER_TAIL_PADDING_SECONDS,
  recognizeAudio,
  type SpeechRecognizer,
  trainCharNgramLm,
  withTailPadding,
} from '@specstream/models';
import * as tf from '@tensorflow/tfjs-core';
import { from, lastValueFrom, Subject, toArray } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wavFileSource } from '../src/audio/index.js';
import { type CtcFinalEvent, type CtcTranscriptEvent, ctcTranscription } from '../src/ctc-transcription.js';

/** tools/speech/fixture_recognizer.py's tiny random recognizer (its text is noise, but deterministic noise). */
const RECOGNIZER = fileURLToPath(
  new URL('../../models/test/fixtures/speech-recognizer-tiny/', import.meta.url),
);
/** Real speech (espeak-ng, 2.9 s; fixtures/README.md). */
const SPEECH = fileURLToPath(new URL('./fixtures/speech-16k.wav', import.meta.url));

const tick = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

async function speechSamples(chunkSamples: number) {
  const wav = await wavFileSource(SPEECH, { chunkSamples });
  expect(wav.sampleRate).toBe(16000);
  return wav.samples;
}

describe('ctcTranscription', () => {
  let recognizer: SpeechRecognizer;
  let baseline = 0;
  beforeAll(async () => {
    await initBackend({ backend: 'wasm' });
    recognizer = await loadSpeechRecognizer(RECOGNIZER);
    baseline = tf.memory().numTensors;
  });
  afterAll(() => recognizer?.dispose());

  it.each([
    [1234, undefined],
    [160, 4],
    [4096, 7],
    [999, 32],
  ])(
    'streamed text equals the offline text (audio chunks of %i samples, %s frames per call); tensors freed',
    async (chunkSamples, chunkFrames) => {
      const samples = await speechSamples(chunkSamples);
      const all = concatFloat32(await lastValueFrom(samples.pipe(toArray())));
      const offline = await recognizeAudio(recognizer, all);
      const events = await lastValueFrom(
        samples.pipe(ctcTranscription(recognizer, { chunkFrames }), toArray()),
      );
      const final = events.at(-1) as CtcFinalEvent;
      expect(final.type).toBe('final');
      expect(final.text).toBe(offline.text);
      expect(final.words).toEqual(offline.words);
      expect(final.audioSeconds).toBe(all.length / 16000);
      expect(offline.text.length).toBeGreaterThan(3);

      const partials = events.slice(0, -1);
      const frames = chunkFrames ?? recognizer.config.chunkFrames;
      const { hop, sampleRate } = recognizer.config;
      // The encoder also reads the tail padding's frames.
      const padding = Math.round(RECOGNIZER_TAIL_PADDING_SECONDS * sampleRate);
      const melFrames = Math.floor((all.length + padding) / hop);
      // One partial per encoder call that completes an output frame: every call but perhaps the last.
      const calls = Math.ceil(melFrames / frames);
      expect(partials.length).toBeGreaterThanOrEqual(calls - 1);
      partials.forEach((event, i) => {
        expect(event.type).toBe('partial');
        expect(final.text.startsWith(event.text)).toBe(true);
        if (i > 0) expect(event.text.startsWith(partials[i - 1].text)).toBe(true);
        if (event.type !== 'partial') return;
        // Audio received, never the padding.
        expect(event.audioSeconds).toBeCloseTo(Math.min((i + 1) * frames * hop, all.length) / sampleRate, 9);
        expect(event.latencyMs).toBeGreaterThanOrEqual(0);
      });
      expect(partials.at(-1)?.text).toBe(final.text);
      expect(tf.memory().numTensors).toBe(baseline);
    },
  );

  it.each([
    ['a beam of 4', 1234, 8, false],
    ['a beam of 6 with an LM', 999, 32, true],
  ])(
    '%s: streamed text and words equal the offline decode (chunks of %i samples, %i frames per call)',
    async (_, chunkSamples, chunkFrames, withLm) => {
      const lm = trainCharNgramLm(['the cat sat on the mat', "it's a dog"], recognizer.vocabulary, {
        order: 3,
      });
      const decoder: CtcDecoder = withLm ? { beamWidth: 6, lm } : { beamWidth: 4 };
      const samples = await speechSamples(chunkSamples);
      const all = concatFloat32(await lastValueFrom(samples.pipe(toArray())));
      const offline = await recognizeAudio(recognizer, all, { decoder });
      const events = await lastValueFrom(
        samples.pipe(ctcTranscription(recognizer, { chunkFrames, decoder }), toArray()),
      );
      const final = events.at(-1) as CtcFinalEvent;
      expect(final).toMatchObject({ type: 'final', text: offline.text, words: offline.words });
      expect(offline.text.length).toBeGreaterThan(3);
      const partials = events.slice(0, -1);
      expect(partials.length).toBeGreaterThan(3);
      expect(partials.every((e) => e.type === 'partial')).toBe(true);
      expect(tf.memory().numTensors).toBe(baseline);
    },
  );

  it('rejects a bad beam width when the operator is made', () => {
    expect(() => ctcTranscription(recognizer, { decoder: { beamWidth: 0 } })).toThrow(
      /beam width must be a positive integer/,
    );
  });

  it("gives the PyTorch twin's greedy text on the fixture's audio", async () => {
    const reference = JSON.parse(readFileSync(`${RECOGNIZER}reference.json`, 'utf8'));
    const samples = Float32Array.from(reference.audio.pcm16 as number[], (v) => v / 32768);
    const twinLogits = Float32Array.from(reference.audio.logits.values as number[]);
    const twin = ctcGreedyChunk(CTC_GREEDY_START, twinLogits, recognizer.config.encoder.vocabSize);
    const chunks = [samples.subarray(0, 3000), samples.subarray(3000, 3001), samples.subarray(3001)];
    // The twin saw the audio alone.
    const unpadded = ctcTranscription(recognizer, { tailPaddingSeconds: 0 });
    const events = await lastValueFrom(from(chunks).pipe(unpadded, toArray()));
    expect(events.at(-1)?.text).toBe(ctcText(twin.emitted.labels, recognizer.vocabulary));
  });

  it.each([0, 0.05, 0.7])(
    'a tail padding of %f s gives the offline text of the same padding, and the audio seconds received',
    async (tailPaddingSeconds) => {
      const samples = await speechSamples(2345);
      const all = concatFloat32(await lastValueFrom(samples.pipe(toArray())));
      const offline = await recognizeAudio(recognizer, all, { tailPaddingSeconds });
      const { hop, sampleRate, chunkFrames } = recognizer.config;
      const events = await lastValueFrom(
        samples.pipe(ctcTranscription(recognizer, { tailPaddingSeconds }), toArray()),
      );
      const final = events.at(-1) as CtcFinalEvent;
      expect(final).toMatchObject({ type: 'final', text: offline.text, words: offline.words });
      expect(final.audioSeconds).toBe(all.length / sampleRate);
      expect(Math.max(...events.map((e) => e.audioSeconds))).toBe(all.length / sampleRate);
      for (const w of final.words) expect(w.end).toBeLessThanOrEqual(final.audioSeconds);
      // With the longest padding the fixture's noise model spells letters into it: the clamp is at work.
      const unclamped = ctcWords(offline.emissions, recognizer.vocabulary, recognizer.config);
      const past = unclamped.filter((w) => w.end > final.audioSeconds).length;
      if (tailPaddingSeconds === 0) expect(past).toBe(0);
      if (tailPaddingSeconds === 0.7) expect(past).toBeGreaterThan(0);
      // The padding's frames reached the encoder: a partial for every call but perhaps the last.
      const padded = withTailPadding(all, tailPaddingSeconds, sampleRate);
      expect(events.length - 1).toBeGreaterThanOrEqual(
        Math.ceil(Math.floor(padded.length / hop) / chunkFrames) - 1,
      );
      expect(tf.memory().numTensors).toBe(baseline);
    },
  );

  it('refuses a bad tail padding when the operator is made', () => {
    for (const tailPaddingSeconds of [-1, Number.NaN]) {
      expect(() => ctcTranscription(recognizer, { tailPaddingSeconds })).toThrow(
        /tail padding must be a finite number of seconds ≥ 0/,
      );
    }
  });

  it('unsubscribing mid-stream frees every tensor', async () => {
    const all = concatFloat32(await lastValueFrom((await speechSamples(4000)).pipe(toArray())));
    const source = new Subject<Float32Array>();
    const seen: CtcTranscriptEvent[] = [];
    const subscription = source
      .pipe(ctcTranscription(recognizer, { chunkFrames: 8 }))
      .subscribe((e) => seen.push(e));
    for (let at = 0; seen.length < 2; at += 1600) {
      source.next(all.subarray(at, at + 1600));
      await tick();
    }
    // More audio queued behind a running call, then the subscriber leaves.
    source.next(all.subarray(16000, 32000));
    subscription.unsubscribe();
    await tick();
    expect(seen.every((e) => e.type === 'partial')).toBe(true);
    expect(tf.memory().numTensors).toBe(baseline);
  });

  it('an error from the source arrives as the error and frees every tensor', async () => {
    const source = new Subject<Float32Array>();
    const done = lastValueFrom(source.pipe(ctcTranscription(recognizer), toArray()));
    source.next(new Float32Array(8000).fill(0.1));
    await tick();
    source.error(new Error('microphone unplugged'));
    await expect(done).rejects.toThrow('microphone unplugged');
    expect(tf.memory().numTensors).toBe(baseline);
  });

  it('audio too short for one log-mel frame is an InvalidArgumentError', async () => {
    const done = lastValueFrom(from([new Float32Array(100)]).pipe(ctcTranscription(recognizer), toArray()));
    await expect(done).rejects.toThrow(InvalidArgumentError);
    expect(tf.memory().numTensors).toBe(baseline);
  });

  it('rejects a chunkFrames that is not a positive integer', () => {
    expect(() => ctcTranscription(recognizer, { chunkFrames: 0 })).toThrow(
      /chunkFrames must be a positive integer/,
    );
    expect(() => ctcTranscription(recognizer, { chunkFrames: 2.5 })).toThrow(InvalidArgumentError);
  });
});
