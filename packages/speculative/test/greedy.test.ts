import { type CausalLm, generate, initBackend } from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { promptLookupDrafter, speculativeGenerate } from '../src/index.js';
import {
  collect,
  FIXTURE_VOCAB,
  fixtureGreedy,
  loadFixture,
  noisyPair,
  plainGreedy,
  prompts,
  SMALL_LLAMA,
} from './helpers.js';

const NEW = 20;
let models: Record<'llama' | 'qwen2' | 'gpt2' | 'llama2', CausalLm>;

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  models = {
    llama: await loadFixture('llama'),
    qwen2: await loadFixture('qwen2'),
    gpt2: await loadFixture('gpt2'),
    llama2: await loadFixture('llama'),
  };
});
afterAll(() => {
  for (const m of Object.values(models)) m.dispose();
});

describe('greedy speculative decoding equals target-only greedy', () => {
  test.each([1, 2, 3, 4, 5, 6, 7, 8])(
    'HF greedy_output of the llama fixture with a qwen2 draft, k=%i',
    async (k) => {
      const { prompt, output } = await fixtureGreedy('llama');
      const run = speculativeGenerate({
        target: models.llama,
        draft: models.qwen2,
        k,
        prompt,
        maxNewTokens: output.length - prompt.length,
      });
      const [tokens] = await collect(run);
      expect(tokens).toEqual(output.slice(prompt.length));
    },
  );

  // Every ordered pair of fixture models (they share the fixture tokenizer), plus
  // the llama fixture loaded twice (a draft that is always right).
  const pairs = [
    ['llama', 'qwen2'],
    ['qwen2', 'llama'],
    ['qwen2', 'gpt2'],
    ['gpt2', 'qwen2'],
    ['gpt2', 'llama'],
    ['llama', 'gpt2'],
    ['llama', 'llama2'],
  ] as const;
  const rows = prompts(6, FIXTURE_VOCAB, 42, 1, 14);
  const expected = new Map<string, number[][]>();

  test.each(pairs)('target %s, draft %s: 6 batched prompts, k = 1..8', async (targetName, draftName) => {
    const target = models[targetName];
    if (!expected.has(targetName)) {
      expected.set(targetName, await Promise.all(rows.map((p) => plainGreedy(target, p, NEW))));
    }
    const want = expected.get(targetName);
    let accepted = 0;
    for (let k = 1; k <= 8; k++) {
      const run = speculativeGenerate({
        target,
        draft: models[draftName],
        k,
        prompt: rows,
        maxNewTokens: NEW,
      });
      expect(await collect(run, rows.length)).toEqual(want);
      accepted += run.metrics.acceptedTokens;
      expect(run.metrics.emittedTokens).toBe(rows.length * NEW);
    }
    if (draftName === 'llama2') expect(accepted).toBeGreaterThan(6 * 8 * (NEW - 1) * 0.5);
  });

  test('a draft that is often right: noisy copy of the target, batched prompts of different lengths', async () => {
    const { target, draft } = noisyPair(SMALL_LLAMA, 0.02);
    const batch = prompts(5, SMALL_LLAMA.vocabSize, 7, 1, 20);
    const want = await Promise.all(batch.map((p) => plainGreedy(target, p, 30)));
    for (const k of [1, 3, 8]) {
      const run = speculativeGenerate({ target, draft, k, prompt: batch, maxNewTokens: 30 });
      expect(await collect(run, batch.length)).toEqual(want);
      const { acceptanceRate } = run.rates();
      // Rows accept different numbers of tokens per pass: per-row rollback is exercised.
      expect(acceptanceRate).toBeGreaterThan(0.2);
      expect(acceptanceRate).toBeLessThan(1);
    }
    target.dispose();
    draft.dispose();
  });

  test('greedy with a repetition penalty (the general acceptance path) equals plain decoding', async () => {
    const sampling = { repetitionPenalty: 1.3 };
    for (const prompt of rows.slice(0, 3)) {
      const want: number[] = [];
      for await (const e of generate({ model: models.llama, prompt, maxNewTokens: NEW, sampling }))
        want.push(e.token);
      for (const k of [2, 5]) {
        const run = speculativeGenerate({
          target: models.llama,
          draft: models.qwen2,
          k,
          prompt,
          maxNewTokens: NEW,
          sampling,
        });
        expect((await collect(run))[0]).toEqual(want);
      }
    }
  });

  test('prompt lookup drafting (no draft model) equals plain greedy', async () => {
    const batch = prompts(4, FIXTURE_VOCAB, 9, 4, 30).map((p) => [...p, ...p]);
    const want = await Promise.all(batch.map((p) => plainGreedy(models.gpt2, p, NEW)));
    const run = speculativeGenerate({
      target: models.gpt2,
      draft: promptLookupDrafter(),
      k: 5,
      prompt: batch,
      maxNewTokens: NEW,
    });
    expect(await collect(run, batch.length)).toEqual(want);
    expect(run.metrics.draftedTokens).toBeGreaterThan(0);
  });

  test('stop tokens end a row inside an accepted run; no tensors are left', async () => {
    const before = tf.memory().numTensors;
    const [prompt] = prompts(1, FIXTURE_VOCAB, 3, 5, 5);
    const full = await plainGreedy(models.llama, prompt, NEW);
    const stop = full[7];
    const cut = full.slice(0, full.indexOf(stop) + 1);
    const events = [];
    for await (const e of speculativeGenerate({
      target: models.llama,
      draft: models.llama2,
      k: 6,
      prompt,
      maxNewTokens: NEW,
      stopTokens: [stop],
    }))
      events.push(e);
    expect(events.map((e) => e.token)).toEqual(cut);
    expect(events.at(-1)?.finishReason).toBe('stop');
    expect(events.map((e) => e.position)).toEqual(cut.map((_, i) => prompt.length + i));
    expect(tf.memory().numTensors).toBe(before);
  });
});
