import { InvalidArgumentError, initBackend } from '@specstream/core';
import {
  createGriffinLimVocoder,
  createReferenceSynthesizer,
  type GriffinLimVocoder,
  type ReferenceSynthesizer,
  randomSynthesizerWeights,
  TINY_SYNTHESIZER_CONFIG,
  TINY_VOCODER_OPTIONS,
} from '@specstream/models';
import * as tf from '@tensorflow/tfjs-core';
import {
  concatMap,
  from,
  lastValueFrom,
  map,
  type Observable,
  of,
  Subject,
  take,
  throwError,
  timer,
  toArray,
} from 'rxjs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { maxAbsDiff } from '../../../test-support/max-abs-diff.js';
import { type AudioChunk, streamingSynthesize } from '../src/synthesize.js';

const CONFIG = TINY_SYNTHESIZER_CONFIG;
const TEXT = [3, 17, 5, 29, 8, 1, 12, 30, 7, 21, 14, 2, 9, 9, 4, 18];
const CHUNKS = [[3, 17], [5], [29, 8, 1, 12], [30, 7, 21], [14, 2, 9, 9, 4, 18]];
/** Float rounding of encoding the text in other chunks, carried through Griffin-Lim. */
const TOLERANCE = 1e-4;

/** Everything at once: appendText, endText, generate until stop or capacity, vocode. */
async function offlineSynthesis(
  synth: ReferenceSynthesizer,
  vocoder: GriffinLimVocoder,
  text: number[],
  maxFrames: number,
): Promise<Float32Array> {
  const state = synth.createState({ batch: 1, maxFrames });
  synth.appendText(state, [text]);
  synth.endText(state);
  const { frames, validFrames } = await synth.extendStep(state, synth.readySteps(state));
  const values = (frames.dataSync() as Float32Array).slice(0, validFrames[0] * CONFIG.nMels);
  frames.dispose();
  synth.disposeState(state);
  return vocoder.vocode(values);
}

function concatChunks(chunks: AudioChunk[]): Float32Array {
  const out = new Float32Array(chunks.reduce((n, c) => n + c.samples.length, 0));
  let at = 0;
  for (const c of chunks) {
    expect(c.frameStart * CONFIG.hop).toBe(at);
    expect(c.sampleRate).toBe(CONFIG.sampleRate);
    out.set(c.samples, at);
    at += c.samples.length;
  }
  return out;
}

const spaced = (chunks: number[][], ms: number): Observable<number[]> =>
  from(chunks).pipe(concatMap((chunk) => timer(ms).pipe(map(() => chunk))));

const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

let synth: ReferenceSynthesizer;
let stopping: ReferenceSynthesizer;
let vocoder: GriffinLimVocoder;

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  synth = createReferenceSynthesizer(CONFIG, randomSynthesizerWeights(CONFIG, 3, { stopBias: -20 }));
  stopping = createReferenceSynthesizer(CONFIG, randomSynthesizerWeights(CONFIG, 3, { stopBias: 20 }));
  vocoder = createGriffinLimVocoder(TINY_VOCODER_OPTIONS);
});

afterAll(() => {
  synth.dispose();
  stopping.dispose();
  vocoder.dispose();
});

describe('streamingSynthesize', () => {
  test('text arriving in chunks yields audio whose concatenation equals offline synthesis', async () => {
    const maxFrames = 60;
    const offline = await offlineSynthesis(synth, vocoder, TEXT, maxFrames);
    expect(offline.length).toBe(maxFrames * CONFIG.hop);
    const byToken = TEXT.map((t) => [t]);
    const sources: Array<[string, Observable<number[]>, number, number?]> = [
      ['all at once', of(TEXT), 4],
      ['all at once, encoded 3 tokens at a time', of(TEXT), 4, 3],
      ['synchronous chunks', from(CHUNKS), 1],
      ['chunks 3 ms apart', spaced(CHUNKS, 3), 2],
      ['token by token 1 ms apart', spaced(byToken, 1), 3],
    ];
    for (const [name, source, stepsPerCall, textChunkTokens] of sources) {
      const before = tf.memory().numTensors;
      const operator = streamingSynthesize(synth, vocoder, { stepsPerCall, maxFrames, textChunkTokens });
      const chunks = await lastValueFrom(source.pipe(operator, toArray()));
      expect(chunks.length, name).toBeGreaterThan(1);
      const diff = maxAbsDiff(concatChunks(chunks), offline);
      expect(diff, name).toBeLessThanOrEqual(TOLERANCE);
      // Time to first audio is the first chunk's `ms`; later chunks come later.
      expect(Number.isFinite(chunks[0].ms)).toBe(true);
      for (let i = 1; i < chunks.length; i++) expect(chunks[i].ms).toBeGreaterThanOrEqual(chunks[i - 1].ms);
      console.log(
        `${name}: ${chunks.length} chunks, time to first audio ${chunks[0].ms.toFixed(1)} ms, max |diff| ${diff}`,
      );
      expect(tf.memory().numTensors, name).toBe(before);
    }
  });

  test('the stream ends where the model stops', async () => {
    const maxFrames = 200;
    const offline = await offlineSynthesis(stopping, vocoder, TEXT, maxFrames);
    // 16 tokens, wait-k 2 + ⌊s/2⌋: the first step seeing all of them is 28, so 29 steps of 2 frames.
    expect(offline.length).toBe(29 * 2 * CONFIG.hop);
    const chunks = await lastValueFrom(
      spaced(CHUNKS, 2).pipe(
        streamingSynthesize(stopping, vocoder, { stepsPerCall: 3, maxFrames }),
        toArray(),
      ),
    );
    expect(maxAbsDiff(concatChunks(chunks), offline)).toBeLessThanOrEqual(TOLERANCE);
  });

  test('unsubscribing mid-stream frees every tensor', async () => {
    const before = tf.memory().numTensors;
    const chunks = await lastValueFrom(
      of(TEXT).pipe(
        streamingSynthesize(synth, vocoder, { stepsPerCall: 1, maxFrames: 60 }),
        take(2),
        toArray(),
      ),
    );
    expect(chunks.length).toBe(2);
    await settle();
    expect(tf.memory().numTensors).toBe(before);

    // Text still open: the operator waits for more, and unsubscribing frees the state.
    const text = new Subject<number[]>();
    const received: AudioChunk[] = [];
    const subscription = text
      .pipe(streamingSynthesize(synth, vocoder, { stepsPerCall: 2, maxFrames: 60 }))
      .subscribe((chunk) => received.push(chunk));
    text.next(TEXT.slice(0, 10));
    await settle();
    expect(received.length).toBeGreaterThan(0);
    expect(tf.memory().numTensors).toBeGreaterThan(before);
    subscription.unsubscribe();
    await settle();
    expect(tf.memory().numTensors).toBe(before);
  });

  test('errors: bad text, a failing source, a mismatched vocoder; no leaks', async () => {
    const before = tf.memory().numTensors;
    const run = (source: Observable<number[]>) =>
      lastValueFrom(source.pipe(streamingSynthesize(synth, vocoder, { maxFrames: 20 }), toArray()));
    await expect(run(of([]))).rejects.toThrow(/no text/);
    await expect(run(of([1, 2], [CONFIG.vocabSize]))).rejects.toThrow(InvalidArgumentError);
    await expect(run(throwError(() => new Error('source failed')))).rejects.toThrow('source failed');
    await expect(run(of('abc' as unknown as number[]))).rejects.toThrow(/array of token ids/);
    await settle();
    expect(tf.memory().numTensors).toBe(before);
    const other = createGriffinLimVocoder({ ...TINY_VOCODER_OPTIONS, nMels: 24 });
    expect(() => streamingSynthesize(synth, other, { maxFrames: 20 })).toThrow(/nMels/);
    expect(() => streamingSynthesize(synth, vocoder, { maxFrames: 20, stepsPerCall: 0 })).toThrow(
      InvalidArgumentError,
    );
  });
});
