import { type CausalLm, generate, initBackend, randomCausalLm, type TokenEvent } from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { firstValueFrom, lastValueFrom, take, toArray } from 'rxjs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { fixturePath } from '../../../test-support/fixtures.js';
import { type StreamChunk, type TokenChunk, tokenStream } from '../src/token-stream.js';

const CONFIG = {
  vocabSize: 40,
  hiddenSize: 16,
  layers: 1,
  heads: 2,
  kvHeads: 2,
  headDim: 8,
  norm: 'rms' as const,
  normEps: 1e-6,
  activation: 'silu' as const,
  gatedMlp: true,
  positions: { kind: 'rotary' as const, rotary: { theta: 10000 } },
};
let model: CausalLm;

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  model = randomCausalLm(CONFIG, { seed: 4, std: 0.5 });
});
afterAll(() => model.dispose());

/** Token id i spells letter i (two ids per multi-byte character would need real BPE; models tests cover that). */
const letters = 'abcdefghijklmnopqrstuvwxyz0123456789 .,!';
const detokenizer = () => ({ push: (id: number) => letters[id], flush: () => '' });

async function plain(prompt: number[], maxNewTokens: number): Promise<number[]> {
  const out: number[] = [];
  for await (const e of generate({ model, prompt, maxNewTokens })) out.push(e.token);
  return out;
}

const tokens = (chunks: StreamChunk[]) => chunks.filter((c): c is TokenChunk => c.type === 'token');
const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

describe('tokenStream', () => {
  test('cold: each subscription runs its own generation; text and usage arrive', async () => {
    let starts = 0;
    const stream = tokenStream(
      (signal) => {
        starts++;
        return generate({ model, prompt: [1, 2, 3], maxNewTokens: 12, signal });
      },
      { detokenizer },
    );
    expect(starts).toBe(0);
    const a = await lastValueFrom(stream.pipe(toArray()));
    const b = await lastValueFrom(stream.pipe(toArray()));
    expect(starts).toBe(2);
    const want = await plain([1, 2, 3], 12);
    expect(tokens(a).map((c) => c.id)).toEqual(want);
    expect(
      tokens(a)
        .map((c) => c.text)
        .join(''),
    ).toBe(want.map((i) => letters[i]).join(''));
    expect(a.at(-1)).toMatchObject({ type: 'usage', tokens: [12] });
    expect(tokens(b).map((c) => c.id)).toEqual(want);
  });

  test('unsubscribing aborts within one step and frees every tensor', async () => {
    const before = tf.memory().numTensors;
    let steps = 0;
    const stream = tokenStream(async function* (signal) {
      for await (const e of generate({ model, prompt: [5], maxNewTokens: 200, signal })) {
        steps++;
        yield e;
      }
    });
    const firstThree = await lastValueFrom(stream.pipe(take(3), toArray()));
    expect(firstThree).toHaveLength(3);
    await settle();
    expect(steps).toBeLessThanOrEqual(4);
    expect(tf.memory().numTensors).toBe(before);
  });

  test('a stop string spanning tokens ends the stream and is not emitted', async () => {
    const want = await plain([7, 8], 30);
    const text = want.map((i) => letters[i]).join('');
    // A stop made of the 4th-6th generated letters: it spans three tokens.
    const stop = text.slice(3, 6);
    const cut = text.indexOf(stop);
    const before = tf.memory().numTensors;
    const chunks = await lastValueFrom(
      tokenStream((signal) => generate({ model, prompt: [7, 8], maxNewTokens: 30, signal }), {
        detokenizer,
        stopStrings: [stop],
      }).pipe(toArray()),
    );
    const emitted = tokens(chunks);
    expect(emitted.map((c) => c.text).join('')).toBe(text.slice(0, cut));
    expect(emitted.at(-1)?.finishReason).toBe('stop');
    expect(emitted.length).toBe(cut + stop.length);
    await settle();
    expect(tf.memory().numTensors).toBe(before);
  });

  test('errors arrive as error notifications', async () => {
    const failing = tokenStream(async function* (): AsyncGenerator<TokenEvent> {
      yield { row: 0, token: 1, position: 1, index: 0, timings: { stepMs: 0, elapsedMs: 0 } };
      throw new Error('model fell over');
    });
    await expect(lastValueFrom(failing)).rejects.toThrow('model fell over');
    await expect(firstValueFrom(failing)).resolves.toMatchObject({ type: 'token', id: 1 });
  });

  test('stop strings without a detokenizer are refused', () => {
    expect(() =>
      tokenStream(() => generate({ model, prompt: [1], maxNewTokens: 1 }), { stopStrings: ['x'] }),
    ).toThrow(/stopStrings need a detokenizer/);
  });
});

describe('tokenStream over speculative decoding', () => {
  test('same tokens as plain greedy; unsubscribing mid-run frees every tensor', async () => {
    const { promptLookupDrafter, speculativeGenerate } = await import('@specstream/speculative');
    const want = await plain([3, 4, 3, 4, 3], 16);
    const stream = tokenStream(
      (signal) =>
        speculativeGenerate({
          target: model,
          draft: promptLookupDrafter(),
          k: 4,
          prompt: [3, 4, 3, 4, 3],
          maxNewTokens: 16,
          signal,
        }),
      { detokenizer },
    );
    const chunks = await lastValueFrom(stream.pipe(toArray()));
    expect(tokens(chunks).map((c) => c.id)).toEqual(want);
    const before = tf.memory().numTensors;
    await lastValueFrom(stream.pipe(take(2), toArray()));
    await settle();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('tokenStream with a real byte-level BPE tokenizer', () => {
  test('multi-byte characters split across tokens are never emitted in halves; stop strings across tokens hold', async () => {
    const { createDetokenizer, loadTokenizer } = await import('@specstream/models');
    const tokenizer = await loadTokenizer(fixturePath('tokenizer/'));
    const text = 'naïve café → 世界, ok! done';
    const ids = tokenizer.encode(text, { addSpecialTokens: false });
    // The fixture's byte-level BPE (trained on ASCII text) spells non-ASCII characters byte by
    // byte, so some prefix of the ids ends inside a character: the case this test is about.
    expect(ids.some((_, i) => tokenizer.decode(ids.slice(0, i + 1)).endsWith('\uFFFD'))).toBe(true);
    const replay = (signal: AbortSignal) =>
      (async function* (): AsyncGenerator<TokenEvent> {
        for (const [index, token] of ids.entries()) {
          if (signal.aborted) return;
          const finishReason = index === ids.length - 1 ? ('length' as const) : undefined;
          yield { row: 0, token, position: index, index, finishReason, timings: { stepMs: 0, elapsedMs: 0 } };
        }
      })();
    const chunks = tokens(
      await lastValueFrom(
        tokenStream(replay, { detokenizer: () => createDetokenizer(tokenizer) }).pipe(toArray()),
      ),
    );
    expect(chunks.map((c) => c.text).join('')).toBe(text);
    expect(chunks.some((c) => c.text.includes('\uFFFD'))).toBe(false);
    const stopped = tokens(
      await lastValueFrom(
        tokenStream(replay, { detokenizer: () => createDetokenizer(tokenizer), stopStrings: ['→ 世'] }).pipe(
          toArray(),
        ),
      ),
    );
    expect(stopped.map((c) => c.text).join('')).toBe('naïve café ');
    expect(stopped.at(-1)?.finishReason).toBe('stop');
  });
});
