import { fileURLToPath } from 'node:url';
import { concatFloat32, initBackend } from '@specstream/core';
import {
  loadSpeechSynthesizer,
  type SpeechSynthesizer,
  speechFrameBudget,
  synthesizeSpeech,
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
  tap,
  throwError,
  timer,
  toArray,
} from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maxAbsDiff } from '../../../test-support/max-abs-diff.js';
import { type AudioChunk, speakText } from '../src/index.js';

/** tools/speech/fixture_synthesizer.py's tiny random synthesizer (it stops once it has seen all the text). */
const FIXTURE = fileURLToPath(
  new URL('../../models/test/fixtures/speech-synthesizer-tiny/', import.meta.url),
);
/** Long enough that the wait-k policy lets speech start well before the text is complete. */
const TEXT =
  'The list data type has 3 more methods. Here are all of them, 1,234 in all: ' +
  "don't append 2.5 items; it's 100% faster, isn't it?";

/** The text in pieces of 1–7 characters, as an LM's tokens arrive (a word or number split across them). */
function pieces(text: string, seed: number): string[] {
  const out: string[] = [];
  let x = seed;
  for (let at = 0; at < text.length; ) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const length = 1 + (x % 7);
    out.push(text.slice(at, at + length));
    at += length;
  }
  return out;
}

const spaced = (parts: string[], ms: number): Observable<string> =>
  from(parts).pipe(concatMap((part) => timer(ms).pipe(map(() => part))));

const samplesOf = (chunks: AudioChunk[]) => concatFloat32(chunks.map((c) => c.samples));
const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

let speech: SpeechSynthesizer;
let maxFrames: number;
beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  speech = await loadSpeechSynthesizer(FIXTURE);
  maxFrames = speechFrameBudget(speech.config.model, speech.textToIds(TEXT).length);
});
afterAll(() => speech?.dispose());

describe('speakText', () => {
  it('gives the audio of offline synthesis of the whole text, however the text arrives', async () => {
    const offline = await synthesizeSpeech(speech, TEXT, { maxFrames });
    expect(offline.stopped).toBe(true);
    const sources: Array<[string, Observable<string>]> = [
      ['all at once', of(TEXT)],
      ['in pieces, synchronously', from(pieces(TEXT, 1))],
      ['in pieces 1 ms apart', spaced(pieces(TEXT, 2), 1)],
      ['character by character', from([...TEXT])],
    ];
    for (const [name, source] of sources) {
      const before = tf.memory().numTensors;
      const chunks = await lastValueFrom(
        source.pipe(speakText(speech, { maxFrames, stepsPerCall: 3 }), toArray()),
      );
      // The text's encoding does not depend on how it was appended (on wasm, bit for bit), nor the
      // vocoder's output on how the frames were grouped.
      expect(maxAbsDiff(samplesOf(chunks), offline.samples), name).toBe(0);
      expect(chunks[0].frameStart).toBe(0);
      expect(tf.memory().numTensors, name).toBe(before);
    }
  });

  it('starts speaking before the text is complete', async () => {
    let textComplete = false;
    let firstAudioWhileWriting: boolean | undefined;
    const text = spaced(pieces(TEXT, 3), 4).pipe(tap({ complete: () => (textComplete = true) }));
    const chunks = await lastValueFrom(
      text.pipe(
        speakText(speech, { maxFrames, stepsPerCall: 2 }),
        tap(() => (firstAudioWhileWriting ??= !textComplete)),
        toArray(),
      ),
    );
    expect(firstAudioWhileWriting).toBe(true);
    expect(samplesOf(chunks).length).toBe(
      (await synthesizeSpeech(speech, TEXT, { maxFrames })).samples.length,
    );
  });

  it('frees every tensor on completion, error and unsubscription', async () => {
    const before = tf.memory().numTensors;
    const operator = speakText(speech, { maxFrames, stepsPerCall: 1 });
    // Unsubscribed after two chunks.
    const two = await lastValueFrom(of(TEXT).pipe(operator, take(2), toArray()));
    expect(two.length).toBe(2);
    await settle();
    expect(tf.memory().numTensors).toBe(before);

    // The text source fails while speech is being made.
    const failing = new Subject<string>();
    const received: AudioChunk[] = [];
    const failed = new Promise<unknown>((resolve) =>
      failing.pipe(operator).subscribe({ next: (c) => received.push(c), error: resolve }),
    );
    for (const part of pieces(TEXT, 4).slice(0, 20)) failing.next(part);
    await settle();
    expect(received.length).toBeGreaterThan(0);
    expect(tf.memory().numTensors).toBeGreaterThan(before);
    failing.error(new Error('the LM failed'));
    expect(((await failed) as Error).message).toBe('the LM failed');
    await settle();
    expect(tf.memory().numTensors).toBe(before);

    // Text still open: waiting for more, then unsubscribed.
    const open = new Subject<string>();
    const subscription = open.pipe(operator).subscribe();
    open.next(TEXT.slice(0, 40));
    await settle();
    expect(tf.memory().numTensors).toBeGreaterThan(before);
    subscription.unsubscribe();
    await settle();
    expect(tf.memory().numTensors).toBe(before);

    // An abort signal stops the speech even after the text has ended.
    const controller = new AbortController();
    const aborted = lastValueFrom(
      of(TEXT).pipe(speakText(speech, { maxFrames, stepsPerCall: 1, signal: controller.signal }), toArray()),
    );
    await settle();
    controller.abort(new Error('Ctrl-C'));
    await expect(aborted).rejects.toThrow('Ctrl-C');
    await settle();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a text with nothing to say completes silently; a notification that is not text fails', async () => {
    const before = tf.memory().numTensors;
    const operator = speakText(speech, { maxFrames });
    expect(await lastValueFrom(from(['', ' -- ', '...']).pipe(operator, toArray()))).toEqual([]);
    expect(await lastValueFrom(of<string>().pipe(operator, toArray()))).toEqual([]);
    await expect(lastValueFrom(of(3 as unknown as string).pipe(operator))).rejects.toThrow(
      /must be a string/,
    );
    await expect(lastValueFrom(throwError(() => new Error('no text')).pipe(operator))).rejects.toThrow(
      'no text',
    );
    await settle();
    expect(tf.memory().numTensors).toBe(before);
    expect(() => speakText(speech, { maxFrames: 0 })).toThrow(/maxFrames/);
  });
});
