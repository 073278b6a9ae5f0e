import {
  AbortError,
  type CausalLm,
  getLogger,
  InvalidArgumentError,
  initBackend,
  type Logger,
  randomCausalLm,
  setLogger,
} from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  adaptiveK,
  type Drafter,
  emptyMetrics,
  promptLookupDrafter,
  rates,
  speculativeGenerate,
  speculativePair,
} from '../src/index.js';
import { collect, noisyPair, plainGreedy, SMALL_LLAMA } from './helpers.js';

let target: CausalLm;
let draft: CausalLm;

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  ({ target, draft } = noisyPair(SMALL_LLAMA, 0.02));
});
afterAll(() => {
  target.dispose();
  draft.dispose();
});

const PROMPT = [5, 17, 3, 60, 2];

describe('same surface as plain generation', () => {
  test('no tensor is left after a run, an abort or an error', async () => {
    const before = tf.memory().numTensors;
    await collect(speculativeGenerate({ target, draft, k: 4, prompt: PROMPT, maxNewTokens: 12 }));
    expect(tf.memory().numTensors).toBe(before);

    const controller = new AbortController();
    const run = speculativeGenerate({
      target,
      draft,
      k: 4,
      prompt: PROMPT,
      maxNewTokens: 40,
      signal: controller.signal,
      sampling: { temperature: 0.8, seed: 1 },
    });
    let seen = 0;
    await expect(async () => {
      for await (const _ of run) if (++seen === 3) controller.abort();
    }).rejects.toThrow();
    // The abort lands within one iteration: at most one more draft-and-verify round (≤ k+1 tokens).
    expect(seen).toBeLessThanOrEqual(3 + 5);
    expect(tf.memory().numTensors).toBe(before);

    const failing: Drafter = {
      name: 'failing',
      vocabSize: SMALL_LLAMA.vocabSize,
      start: () => ({
        propose: async () => {
          throw new Error('drafter broke');
        },
        dispose() {},
      }),
    };
    await expect(
      collect(speculativeGenerate({ target, draft: failing, prompt: PROMPT, maxNewTokens: 5 })),
    ).rejects.toThrow('drafter broke');
    expect(tf.memory().numTensors).toBe(before);

    // A drafter proposing an id the target cannot embed: the target's own check names it.
    const outOfRange: Drafter = {
      name: 'bad ids',
      start: () => ({
        propose: async ({ histories }) => histories.map(() => ({ tokens: [1000] })),
        dispose() {},
      }),
    };
    await expect(
      collect(speculativeGenerate({ target, draft: outOfRange, prompt: PROMPT, maxNewTokens: 5 })),
    ).rejects.toThrow(/1000/);
    expect(tf.memory().numTensors).toBe(before);
    // The models are still usable afterwards.
    const [tokens] = await collect(speculativeGenerate({ target, draft, prompt: PROMPT, maxNewTokens: 3 }));
    expect(tokens).toHaveLength(3);
  });

  test('an already-aborted signal rejects before any work', async () => {
    const controller = new AbortController();
    controller.abort(new AbortError('caller gave up'));
    const run = speculativeGenerate({
      target,
      draft,
      prompt: PROMPT,
      maxNewTokens: 3,
      signal: controller.signal,
    });
    await expect(collect(run)).rejects.toThrow('caller gave up');
  });

  test('events carry positions, indices, drafted flags and one finish reason per row', async () => {
    const events = [];
    for await (const e of speculativeGenerate({
      target,
      draft,
      k: 3,
      prompt: [PROMPT, [9, 9]],
      maxNewTokens: 10,
    }))
      events.push(e);
    for (const row of [0, 1]) {
      const mine = events.filter((e) => e.row === row);
      expect(mine.map((e) => e.index)).toEqual([...Array(10).keys()]);
      expect(mine.map((e) => e.position)).toEqual(mine.map((e) => e.index + (row === 0 ? 5 : 2)));
      expect(mine.filter((e) => e.finishReason !== undefined).map((e) => e.finishReason)).toEqual(['length']);
      expect(mine[0].drafted).toBe(false); // the first token comes from the target's prefill
    }
  });
});

describe('metrics', () => {
  test('per call and cumulative counters add up', async () => {
    const totals = emptyMetrics();
    const a = speculativeGenerate({ target, draft, k: 4, prompt: PROMPT, maxNewTokens: 16, totals });
    const [tokensA] = await collect(a);
    const b = speculativeGenerate({
      target,
      draft,
      k: 2,
      prompt: [PROMPT, [1, 2, 3]],
      maxNewTokens: 8,
      totals,
    });
    await collect(b, 2);
    const m = a.metrics;
    expect(m.emittedTokens).toBe(tokensA.length);
    expect(m.acceptedTokens).toBeLessThanOrEqual(m.draftedTokens);
    // Every emitted token is the prefill's, an accepted draft, or one target token per row per pass.
    expect(m.emittedTokens).toBeLessThanOrEqual(1 + m.acceptedTokens + m.rowPasses);
    expect(m.emittedTokens).toBeGreaterThanOrEqual(m.rowPasses);
    // k = 4 but for the last passes, which draft no further than the tokens still needed.
    expect(m.kSum).toBeLessThanOrEqual(4 * m.iterations);
    // (at most 4 passes start with 4 or fewer tokens still needed)
    expect(m.kSum).toBeGreaterThanOrEqual(4 * (m.iterations - 4));
    expect(m.draftedTokens).toBe(m.kSum);
    expect(m.draftMs).toBeGreaterThan(0);
    // The draft read the prompt's first 4 tokens; that is part of the prefill time.
    expect(m.draftPrefillMs).toBeGreaterThan(0);
    expect(m.draftPrefillMs).toBeLessThan(m.prefillMs);
    expect(m.verifyMs).toBeGreaterThan(0);
    expect(totals.emittedTokens).toBe(16 + 16);
    expect(totals.iterations).toBe(a.metrics.iterations + b.metrics.iterations);
    const r = rates(totals);
    expect(r.acceptanceRate).toBeCloseTo(
      totals.acceptedTokens / (totals.acceptedTokens + totals.rejections),
      12,
    );
    expect(r.acceptedFraction).toBeCloseTo(totals.acceptedTokens / totals.draftedTokens, 12);
    // At most one rejection per row per pass, and none without drafted tokens left over.
    expect(totals.rejections).toBeLessThanOrEqual(totals.rowPasses);
    expect(totals.rejections).toBeLessThanOrEqual(totals.draftedTokens - totals.acceptedTokens);
    expect(a.rates().tokensPerPass).toBeGreaterThan(1); // the noisy draft is right often
  });

  test('each call logs its metrics and rates at debug level', async () => {
    const lines: { level: string; fields: Record<string, unknown>; message: string }[] = [];
    // A stand-in for pino: records what the library logs, by level.
    const record =
      (level: string) =>
      (fields: Record<string, unknown>, message: string): void => {
        lines.push({ level, fields, message });
      };
    const fake = {
      debug: record('debug'),
      info: record('info'),
      warn: record('warn'),
      error: record('error'),
      child: () => fake,
    };
    const saved = Object.getPrototypeOf(getLogger('speculative')) as Logger;
    setLogger(fake as unknown as Logger);
    try {
      const run = speculativeGenerate({ target, draft, k: 3, prompt: PROMPT, maxNewTokens: 12 });
      await collect(run);
      const logged = lines.filter((l) => l.message === 'speculative generation');
      expect(logged.map((l) => l.level)).toEqual(['debug']);
      const { fields } = logged[0];
      expect(fields.drafter).toBe('model');
      for (const key of [
        'emittedTokens',
        'acceptedTokens',
        'draftedTokens',
        'iterations',
        'draftMs',
        'verifyMs',
      ] as const) {
        expect(fields[key]).toBe(run.metrics[key]);
      }
      expect(fields.acceptanceRate).toBe(run.rates().acceptanceRate);
      expect(fields.tokensPerSecond).toBe(run.rates().tokensPerSecond);
    } finally {
      setLogger(saved);
    }
  });

  test('drafts no further than the tokens still needed, and stays exact', async () => {
    for (const maxNewTokens of [2, 3, 5]) {
      const run = speculativeGenerate({ target, draft, k: 8, prompt: PROMPT, maxNewTokens });
      const [tokens] = await collect(run);
      expect(tokens).toEqual(await plainGreedy(target, PROMPT, maxNewTokens));
      // After the prefill's token, maxNewTokens − 1 are needed and a pass yields up to k + 1.
      expect(run.metrics.draftedTokens).toBeLessThanOrEqual(
        Math.max(0, maxNewTokens - 2) * run.metrics.iterations,
      );
      if (maxNewTokens === 2) expect(run.metrics.draftedTokens).toBe(0);
    }
  });

  test('adaptive k runs exactly and records its choices', async () => {
    const run = speculativeGenerate({
      target,
      draft,
      k: adaptiveK({ maxK: 6 }),
      prompt: PROMPT,
      maxNewTokens: 30,
    });
    const [tokens] = await collect(run);
    const plain = await collect(
      speculativeGenerate({ target, draft, k: 1, prompt: PROMPT, maxNewTokens: 30 }),
    );
    expect(tokens).toEqual(plain[0]);
    // The draft is as large as the target, so plain steps (k = 0) may well be chosen.
    expect(run.metrics.kSum).toBeLessThanOrEqual(6 * run.metrics.iterations);
  });

  test('one adaptive policy reused across calls (and batch sizes) stays exact', async () => {
    const policy = adaptiveK({ maxK: 6 });
    const want = await plainGreedy(target, PROMPT, 24);
    const first = speculativeGenerate({ target, draft, k: policy, prompt: PROMPT, maxNewTokens: 24 });
    expect((await collect(first))[0]).toEqual(want);
    const other = [9, 8, 7];
    const second = speculativeGenerate({
      target,
      draft,
      k: policy,
      prompt: [PROMPT, other],
      maxNewTokens: 24,
    });
    expect(await collect(second, 2)).toEqual([want, await plainGreedy(target, other, 24)]);
  });

  test('with a draft that is never right, adaptive k falls back to plain steps and stays exact', async () => {
    // An unrelated model four times as deep: α near 1/97, and a draft step costs about four
    // target steps, so drafting loses even at the policy's optimistic α and with the odd
    // 10× pause in a 0.3 ms step (seen when test files run in parallel).
    const stranger = randomCausalLm(
      { ...SMALL_LLAMA, layers: 4 * SMALL_LLAMA.layers },
      { seed: 77, std: 0.3 },
    );
    try {
      const before = tf.memory().numTensors;
      const run = speculativeGenerate({
        target,
        draft: stranger,
        k: adaptiveK(),
        prompt: PROMPT,
        maxNewTokens: 80,
      });
      const [tokens] = await collect(run);
      expect(tokens).toEqual(await plainGreedy(target, PROMPT, 80));
      expect(run.rates().acceptanceRate).toBeLessThan(0.2);
      // Warm-up drafts 4, 2 and 8 tokens; then mostly plain steps (k = 0), with k = 1 now and then.
      expect(run.metrics.kSum).toBeLessThan(run.metrics.iterations / 2);
      expect(run.metrics.iterations).toBeGreaterThan(60);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      stranger.dispose();
    }
  });
});

describe('configuration errors name the problem', () => {
  test('vocabularies', () => {
    const wide = { ...draft, vocabSize: SMALL_LLAMA.vocabSize + 1, extendStep: draft.extendStep } as CausalLm;
    expect(() => speculativePair({ target, draft: wide })).toThrow(
      /draft vocabulary \(98 ids\) is larger than the target's \(97\)/,
    );
    const tok = (names: string[]) => ({
      vocabSize: names.length,
      idToToken: (i: number) => names[i],
      decode: () => '',
    });
    const names = Array.from({ length: 97 }, (_, i) => `t${i}`);
    const other = [...names];
    other[40] = 'x';
    expect(() =>
      speculativePair({ target, draft, tokenizers: { target: tok(names), draft: tok(other) } }),
    ).toThrow('vocabularies differ at id 40: target "t40", draft "x"');
    expect(() =>
      speculativePair({ target, draft, tokenizers: { target: tok(names), draft: tok(names) } }),
    ).not.toThrow();
  });

  test('arguments', () => {
    expect(() => speculativePair({ target, draft, k: 0 })).toThrow(
      /k must be an integer in \[1, 64\], got 0/,
    );
    expect(() => speculativePair({ target, draft: {} as Drafter })).toThrow(
      /draft must be a Decoder or a Drafter/,
    );
    expect(() => speculativeGenerate({ target, draft, prompt: [], maxNewTokens: 2 })).toThrow(
      /prompt of row 0 is empty/,
    );
    expect(() => speculativeGenerate({ target, draft, prompt: [3, 200], maxNewTokens: 2 })).toThrow(
      /prompt row 0 position 1: token id 200 is outside \[0, 97\)/,
    );
    expect(() => speculativeGenerate({ target, draft, prompt: [3], maxNewTokens: 0 })).toThrow(
      InvalidArgumentError,
    );
    expect(() => promptLookupDrafter({ minNgram: 3, maxNgram: 2 })).toThrow(/1 <= minNgram <= maxNgram/);
  });
});
