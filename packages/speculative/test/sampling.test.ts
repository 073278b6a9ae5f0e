import { type CausalLm, createRng, initBackend, randomCausalLm, sampleFrom } from '@specstream/core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { acceptDraft } from '../src/index.js';
import { chiSquare, SAMPLING_CONFIG, V, wrongRule } from './sampling-law.js';

/**
 * Exactness of speculative sampling, end to end (sampling-law.ts): 20,000
 * seeded rows of one batched run against the exact joint law of the first
 * two tokens. A known-wrong rule (draw from p instead of the residual after
 * a rejection) must fail the same test, showing it can fail.
 */
const N = 20_000;

let target: CausalLm;
let draft: CausalLm;

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  target = randomCausalLm(SAMPLING_CONFIG, { seed: 11, std: 0.08 });
  draft = randomCausalLm(SAMPLING_CONFIG, { seed: 29, std: 0.08 });
});
afterAll(() => {
  target.dispose();
  draft.dispose();
});

describe('speculative sampling reproduces the target distribution', () => {
  test.each([
    { temperature: 1, topK: 0, topP: 1, k: 2, seed: 7 },
    { temperature: 0.7, topK: 0, topP: 1, k: 3, seed: 8 },
    { temperature: 1, topK: 3, topP: 1, k: 2, seed: 9 },
    { temperature: 1, topK: 0, topP: 0.75, k: 2, seed: 10 },
    { temperature: 1.3, topK: 3, topP: 0.8, k: 4, seed: 12 },
  ])(
    'temperature $temperature, top-k $topK, top-p $topP, k=$k: correct rule passes chi-square, wrong rule fails',
    async (filters) => {
      const good = await chiSquare({ target, draft, rows: N, ...filters });
      const critical = good.critical;
      expect(good.impossible).toBe(0);
      // Preconditions that make the test meaningful: every possible cell expected ≥ 20 times,
      // a filter that cuts (some pairs impossible) when one is set, and a draft that disagrees
      // often enough for the residual to matter.
      expect(good.minExpected).toBeGreaterThan(20);
      if (filters.topK > 0 || filters.topP < 1) expect(good.cells).toBeLessThan(V * V);
      expect(good.rates.acceptanceRate).toBeLessThan(0.9);
      expect(good.rates.acceptanceRate).toBeGreaterThan(0.2);
      expect(good.chi2).toBeLessThan(critical);

      const bad = await chiSquare({ target, draft, rows: N, rule: wrongRule, ...filters });
      expect(bad.chi2).toBeGreaterThan(critical * 3);
    },
  );
});

test("a draft with a shorter vocabulary (3 of the target's 4 ids, id 3 in the prompt): chi-square passes, wrong rule fails", async () => {
  const short = randomCausalLm({ ...SAMPLING_CONFIG, vocabSize: V - 1 }, { seed: 29, std: 0.08 });
  try {
    const filters = { temperature: 1, topK: 0, topP: 1, k: 2, seed: 13 };
    const good = await chiSquare({ target, draft: short, rows: N, ...filters });
    expect(good.impossible).toBe(0);
    expect(good.rates.acceptanceRate).toBeGreaterThan(0.2);
    expect(good.chi2).toBeLessThan(good.critical);
    const bad = await chiSquare({ target, draft: short, rows: N, rule: wrongRule, ...filters });
    expect(bad.chi2).toBeGreaterThan(good.critical * 3);
  } finally {
    short.dispose();
  }
});

describe('acceptDraft on explicit distributions', () => {
  test('one position: the emitted token follows p whatever q is (50,000 draws)', () => {
    const p = new Float32Array([0.5, 0.3, 0.15, 0.05]);
    const q = new Float32Array([0.1, 0.2, 0.3, 0.4]);
    const rng = createRng(3);
    const counts = [0, 0, 0, 0];
    const draws = 50_000;
    for (let i = 0; i < draws; i++) {
      const d = sampleFrom(q, rng);
      const { accepted, next } = acceptDraft({ draft: [d], q: [q], p: () => p, rng });
      // With one drafted token the first emitted token is d if accepted, else the residual draw.
      counts[accepted === 1 ? d : next]++;
    }
    const chi2 = counts.reduce((s, c, i) => s + (c - draws * p[i]) ** 2 / (draws * p[i]), 0);
    expect(chi2).toBeLessThan(16.3); // 3 dof, 0.1%
  });

  test('greedy p accepts exactly while the argmax agrees, then emits the argmax', () => {
    const oneHot = (i: number) => Float32Array.from({ length: 5 }, (_, j) => (j === i ? 1 : 0));
    const targetArgmax = [2, 4, 1, 0];
    const rng = createRng(1);
    const p = (i: number) => oneHot(targetArgmax[i]);
    expect(acceptDraft({ draft: [2, 4, 1], p, rng })).toEqual({ accepted: 3, next: 0 });
    expect(acceptDraft({ draft: [2, 3, 1], p, rng })).toEqual({ accepted: 1, next: 4 });
    expect(acceptDraft({ draft: [], p, rng })).toEqual({ accepted: 0, next: 2 });
  });

  test('a draft vocabulary shorter than the target (padded) gives the extra ids zero q', () => {
    const p = new Float32Array([0, 0, 0, 1]); // all mass on an id the draft cannot propose
    const q = new Float32Array([0.5, 0.5, 0]);
    const { accepted, next } = acceptDraft({ draft: [0], q: [q], p: () => p, rng: createRng(2) });
    expect(accepted).toBe(0);
    expect(next).toBe(3);
  });

  test('mismatched q list is an error', () => {
    expect(() =>
      acceptDraft({
        draft: [1, 2],
        q: [new Float32Array(3)],
        p: () => new Float32Array(3),
        rng: Math.random,
      }),
    ).toThrow(/2 drafted tokens but 1 q distributions/);
  });
});
