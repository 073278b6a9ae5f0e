import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { kernelSetCases } from '../../../test-support/kernel-sets.js';
import { maxAbsDiff } from '../../../test-support/max-abs-diff.js';
import { initBackend } from '../src/backend.js';
import { createCausalLm } from '../src/causal-lm.js';
import type { Decoder, DecoderState } from '../src/decoder.js';
import { CacheOverflowError, DisposedError, InvalidArgumentError, NonFiniteError } from '../src/errors.js';
import { generate, type TokenEvent } from '../src/generate.js';
import { MAX_PREFILL_CHUNK, planPrefillChunks, prefill } from '../src/prefill.js';
import { randomCausalLmWeights } from '../src/random-model.js';
import { scoreSequences } from '../src/score.js';
import { TINY_CONFIGS } from './models.js';
import { cloneWeights, disposeWeights, referenceLogits } from './reference-forward.js';

const config = TINY_CONFIGS.llama;
const V = config.vocabSize;
let weights: ReturnType<typeof randomCausalLmWeights>;

/** Every kernel set the wasm backend has: each runs the whole file. */
const SETS = await kernelSetCases(['wasm']);

beforeAll(async () => {
  weights = randomCausalLmWeights(config, { seed: 3, std: 0.3 });
});
afterAll(() => disposeWeights(weights));

function argmax(values: ArrayLike<number>, from: number, to: number): number {
  let best = from;
  for (let i = from; i < to; i++) if (values[i] > values[best]) best = i;
  return best - from;
}

/** Greedy decoding by recomputing the naive full forward each step: slow, independent. */
function referenceGreedy(prompt: number[], count: number): number[] {
  const seq = [...prompt];
  for (let i = 0; i < count; i++) {
    const logits = referenceLogits(config, weights, seq);
    seq.push(argmax(logits, (seq.length - 1) * V, seq.length * V));
  }
  return seq.slice(prompt.length);
}

async function collect(events: AsyncIterable<TokenEvent>): Promise<TokenEvent[]> {
  const out: TokenEvent[] = [];
  for await (const e of events) out.push(e);
  return out;
}

/** Wraps a decoder to record the step count of every extendStep call. */
function recordingSteps<S extends DecoderState>(inner: Decoder<S>): { model: Decoder<S>; steps: number[] } {
  const steps: number[] = [];
  return {
    steps,
    model: {
      ...inner,
      extendStep: (s, tokens, o) => (steps.push(tokens[0].length), inner.extendStep(s, tokens, o)),
    },
  };
}

describe.each(SETS)('$label', ({ backend, kernels }) => {
  beforeAll(async () => {
    await initBackend({ backend });
  });

  const model = () => createCausalLm(config, cloneWeights(weights), { kernels });

  describe('bucketed prefill', () => {
    test('chunk plan takes the largest buckets first', () => {
      const plan = planPrefillChunks(1501, [512, 64, 8, 1]);
      const count = (n: number) => plan.filter((c) => c === n).length;
      expect([count(512), count(64), count(8), count(1)]).toEqual([2, 7, 3, 5]);
      expect(plan.reduce((a, b) => a + b, 0)).toBe(1501);
      expect(new Set(plan).size).toBe(4);
      // Without a bucket of 1 the remainder becomes one padded chunk of the smallest bucket.
      expect(planPrefillChunks(21, [16, 4])).toEqual([16, 4, 4]);
      expect(() => planPrefillChunks(5, [4, 0])).toThrow(InvalidArgumentError);
    });

    test("'any' chunks: full chunks of MAX_PREFILL_CHUNK, then the rest unpadded; a model on shape-free kernels prefills in one pass", () => {
      expect(planPrefillChunks(24, 'any')).toEqual([24]);
      expect(planPrefillChunks(2 * MAX_PREFILL_CHUNK + 3, 'any')).toEqual([
        MAX_PREFILL_CHUNK,
        MAX_PREFILL_CHUNK,
        3,
      ]);
      expect(planPrefillChunks(MAX_PREFILL_CHUNK, 'any')).toEqual([MAX_PREFILL_CHUNK]);
      const inner = model();
      expect(inner.prefillBuckets).toBe('any');
      const { model: m, steps } = recordingSteps(inner);
      const prompts = [
        Array.from({ length: 21 }, (_, i) => (i * 7) % V),
        Array.from({ length: 9 }, (_, i) => (i * 5 + 2) % V),
      ];
      const state = m.createState({ batch: 2, maxLength: 32 });
      const logits = prefill(m, state, prompts);
      expect(steps).toEqual([21]);
      expect(Array.from(state.lengths)).toEqual([21, 9]);
      const values = logits.dataSync();
      prompts.forEach((p, r) => {
        const want = referenceLogits(config, weights, p).subarray((p.length - 1) * V, p.length * V);
        for (let i = 0; i < V; i++) expect(Math.abs(values[r * V + i] - want[i])).toBeLessThan(1e-4);
      });
      logits.dispose();
      m.disposeState(state);
      inner.dispose();
    });

    test('ragged prompts: last-token logits match the full forward, shapes stay within the bucket set', () => {
      const inner = model();
      const { model: m, steps } = recordingSteps(inner);
      const prompts = [
        Array.from({ length: 45 }, (_, i) => (i * 7) % V),
        Array.from({ length: 13 }, (_, i) => (i * 5 + 2) % V),
      ];
      const before = tf.memory().numTensors;
      const state = m.createState({ batch: 2, maxLength: 64 });
      const logits = prefill(m, state, prompts, { buckets: [16, 4] });
      expect(Array.from(state.lengths)).toEqual([45, 13]);
      // 45 → 16+16+4+4+4+4 (padded last chunk): only the two bucket shapes appear.
      expect(new Set(steps)).toEqual(new Set([16, 4]));
      const values = logits.dataSync();
      prompts.forEach((p, r) => {
        const want = referenceLogits(config, weights, p).subarray((p.length - 1) * V, p.length * V);
        for (let i = 0; i < V; i++) expect(Math.abs(values[r * V + i] - want[i])).toBeLessThan(1e-4);
      });
      logits.dispose();
      m.disposeState(state);
      expect(tf.memory().numTensors).toBe(before);
      inner.dispose();
    });
  });

  describe('scoreSequences', () => {
    test('gives each position the reference argmax and −log softmax of the next token; frees what it made', async () => {
      const m = model();
      const sequences = [
        Array.from({ length: 9 }, (_, i) => (i * 11 + 4) % V),
        Array.from({ length: 4 }, (_, i) => (i * 3 + 1) % V),
      ];
      const before = tf.memory().numTensors;
      const { top1, crossEntropy } = await scoreSequences(m, sequences);
      expect(tf.memory().numTensors).toBe(before);
      const wantTop1: number[] = [];
      const wantCe: number[] = [];
      for (const ids of sequences) {
        const logits = referenceLogits(config, weights, ids);
        for (let t = 0; t < ids.length; t++) {
          wantTop1.push(argmax(logits, t * V, (t + 1) * V));
          if (t + 1 === ids.length) continue;
          const row = Array.from(logits.subarray(t * V, (t + 1) * V));
          const z = row.reduce((a, v) => a + Math.exp(v), 0);
          wantCe.push(Math.log(z) - row[ids[t + 1]]);
        }
      }
      expect(Array.from(top1)).toEqual(wantTop1);
      expect(crossEntropy.length).toBe(wantCe.length);
      expect(maxAbsDiff(crossEntropy, wantCe)).toBeLessThan(1e-4);
      await expect(scoreSequences(m, [[]])).rejects.toThrow(/sequence 0 is empty/);
      m.dispose();
    });
  });

  describe('generate', () => {
    test('greedy output equals naive greedy decoding; batched rows equal running them alone', async () => {
      const m = model();
      const prompts = [
        [5, 17, 3, 88, 42, 9, 1],
        [60, 2],
      ];
      const before = tf.memory().numTensors;
      const events = await collect(generate({ model: m, prompt: prompts, maxNewTokens: 12 }));
      expect(tf.memory().numTensors).toBe(before);
      const rows = prompts.map((_, r) => events.filter((e) => e.row === r));
      prompts.forEach((p, r) => {
        expect(rows[r].map((e) => e.token)).toEqual(referenceGreedy(p, 12));
        expect(rows[r].map((e) => e.position)).toEqual(Array.from({ length: 12 }, (_, i) => p.length + i));
        expect(rows[r].at(-1)!.finishReason).toBe('length');
      });
      for (const [r, p] of prompts.entries()) {
        const alone = await collect(generate({ model: m, prompt: p, maxNewTokens: 12 }));
        expect(alone.map((e) => e.token)).toEqual(rows[r].map((e) => e.token));
      }
      m.dispose();
    });

    test('a stop token ends its row only; seeded sampling is reproducible', async () => {
      const m = model();
      const prompts = [
        [5, 17, 3],
        [60, 2, 8],
      ];
      const greedy = await collect(generate({ model: m, prompt: prompts, maxNewTokens: 8 }));
      const row0 = greedy.filter((e) => e.row === 0).map((e) => e.token);
      const stop = row0[2];
      const row1 = greedy.filter((e) => e.row === 1).map((e) => e.token);
      const stopped = await collect(
        generate({ model: m, prompt: prompts, maxNewTokens: 8, stopTokens: [stop] }),
      );
      const s0 = stopped.filter((e) => e.row === 0);
      expect(s0.map((e) => e.token)).toEqual(row0.slice(0, row0.indexOf(stop) + 1));
      expect(s0.at(-1)!.finishReason).toBe('stop');
      const s1 = stopped.filter((e) => e.row === 1).map((e) => e.token);
      expect(s1).toEqual(row1.slice(0, row1.includes(stop) ? row1.indexOf(stop) + 1 : 8));

      const sampling = { temperature: 1.5, topK: 20, seed: 99 };
      const a = await collect(generate({ model: m, prompt: prompts, maxNewTokens: 10, sampling }));
      const b = await collect(generate({ model: m, prompt: prompts, maxNewTokens: 10, sampling }));
      const c = await collect(
        generate({ model: m, prompt: prompts, maxNewTokens: 10, sampling: { ...sampling, seed: 100 } }),
      );
      expect(a.map((e) => e.token)).toEqual(b.map((e) => e.token));
      expect(a.map((e) => e.token)).not.toEqual(c.map((e) => e.token));
      m.dispose();
    });

    test('abort: throws the signal reason within one step and frees every tensor', async () => {
      const m = model();
      const before = tf.memory().numTensors;
      const controller = new AbortController();
      const seen: TokenEvent[] = [];
      const run = async () => {
        for await (const e of generate({
          model: m,
          prompt: [1, 2, 3],
          maxNewTokens: 30,
          signal: controller.signal,
        })) {
          seen.push(e);
          if (seen.length === 3) controller.abort();
        }
      };
      await expect(run()).rejects.toMatchObject({ name: 'AbortError' });
      expect(seen).toHaveLength(3);
      expect(tf.memory().numTensors).toBe(before);
      // An abort from a timer lands too: the loop yields to the event loop between steps.
      const timed = new AbortController();
      setTimeout(() => timed.abort(), 5);
      const long = collect(
        generate({ model: m, prompt: [1, 2, 3], maxNewTokens: 1000, maxLength: 1100, signal: timed.signal }),
      );
      await expect(long).rejects.toMatchObject({ name: 'AbortError' });
      expect(tf.memory().numTensors).toBe(before);
      m.dispose();
    });

    test('NaN logits raise NonFiniteError and free every tensor', async () => {
      const w = cloneWeights(weights);
      const poisoned = w.lmHead!;
      w.lmHead = tf.fill(poisoned.shape, Number.NaN) as tf.Tensor2D;
      poisoned.dispose();
      const m = createCausalLm(config, w, { kernels });
      const before = tf.memory().numTensors;
      await expect(collect(generate({ model: m, prompt: [1, 2], maxNewTokens: 3 }))).rejects.toBeInstanceOf(
        NonFiniteError,
      );
      expect(tf.memory().numTensors).toBe(before);
      m.dispose();
    });

    test('bad options are rejected before anything is allocated', async () => {
      const m = model();
      const before = tf.memory().numTensors;
      await expect(collect(generate({ model: m, prompt: [1], maxNewTokens: 0 }))).rejects.toThrow(
        /maxNewTokens/,
      );
      await expect(
        collect(generate({ model: m, prompt: [1], maxNewTokens: 4, maxLength: 3 })),
      ).rejects.toThrow(/maxLength/);
      await expect(
        collect(generate({ model: m, prompt: [1], maxNewTokens: 4, sampling: { topP: 2 } })),
      ).rejects.toThrow(/topP/);
      await expect(collect(generate({ model: m, prompt: [V + 3], maxNewTokens: 2 }))).rejects.toThrow(
        /vocabulary/,
      );
      expect(tf.memory().numTensors).toBe(before);
      m.dispose();
    });
  });

  describe('bad input to extendStep and rollback leaves the state usable', () => {
    test.each([
      [
        'token outside the vocabulary',
        (m: Decoder, s: DecoderState) => m.extendStep(s, [[1, V]]),
        InvalidArgumentError,
        /outside the vocabulary/,
      ],
      [
        'negative token id',
        (m: Decoder, s: DecoderState) => m.extendStep(s, [[-1]]),
        InvalidArgumentError,
        /row 0, step 0/,
      ],
      [
        'batch mismatch',
        (m: Decoder, s: DecoderState) => m.extendStep(s, [[1], [2]]),
        InvalidArgumentError,
        /expected 1 rows, got 2/,
      ],
      [
        'cache overflow',
        (m: Decoder, s: DecoderState) => m.extendStep(s, [Array(7).fill(1)]),
        CacheOverflowError,
        /maxLength 8/,
      ],
      [
        'rollback past the current length',
        (m: Decoder, s: DecoderState) => m.rollback(s, [3]),
        InvalidArgumentError,
        /outside \[0, 2\]/,
      ],
      [
        'rollback with the wrong row count',
        (m: Decoder, s: DecoderState) => m.rollback(s, [1, 1]),
        InvalidArgumentError,
        /one length per row/,
      ],
      [
        'logits index outside the window',
        (m: Decoder, s: DecoderState) => m.extendStep(s, [[1, 2]], { logits: [2] }),
        InvalidArgumentError,
        /outside the window/,
      ],
    ])('%s', (_, bad, errorClass, message) => {
      const m = model();
      const state = m.createState({ batch: 1, maxLength: 8 });
      m.extendStep(state, [[4, 9]]).logits.dispose();
      const before = tf.memory().numTensors;
      expect(() => bad(m, state)).toThrow(errorClass);
      expect(() => bad(m, state)).toThrow(message);
      expect(tf.memory().numTensors).toBe(before);
      expect(Array.from(state.lengths)).toEqual([2]);
      // Still usable: the next step gives what the naive forward gives.
      const { logits } = m.extendStep(state, [[11]]);
      const want = referenceLogits(config, weights, [4, 9, 11]).subarray(2 * V, 3 * V);
      const got = logits.dataSync();
      for (let i = 0; i < V; i++) expect(Math.abs(got[i] - want[i])).toBeLessThan(1e-4);
      logits.dispose();
      m.disposeState(state);
      m.dispose();
    });

    test('a disposed state is rejected by name; createState validates its options', () => {
      const m = model();
      const state = m.createState({ batch: 1, maxLength: 8 });
      m.disposeState(state);
      m.disposeState(state);
      expect(() => m.extendStep(state, [[1]])).toThrow(DisposedError);
      expect(() => m.rollback(state, [0])).toThrow(DisposedError);
      expect(() => m.createState({ batch: 0, maxLength: 8 })).toThrow(/batch must be a positive integer/);
      expect(() => m.createState({ batch: 1, maxLength: 2.5 })).toThrow(/maxLength/);
      m.dispose();
    });
  });
});
