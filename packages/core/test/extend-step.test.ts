import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { kernelSetCases } from '../../../test-support/kernel-sets.js';
import { initBackend } from '../src/backend.js';
import { type CausalLmLayerWeights, createCausalLm, prepareCausalLmLayer } from '../src/causal-lm.js';
import { type KernelSetName, kernelSet } from '../src/kernel-sets/index.js';
import { useWasmKernels } from '../src/kernel-sets/wasm/packed-linear.js';
import type { KvCacheKind } from '../src/kv-cache/index.js';
import { randomCausalLmWeights } from '../src/random-model.js';
import { createConstants } from '../src/transformer/constants.js';
import { TINY_CONFIGS } from './models.js';
import { cloneWeights, disposeWeights, referenceLogits } from './reference-forward.js';

/** Deterministic PRNG for test scenarios (not under test itself). */
function scenarioRng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const KINDS: KvCacheKind[] = ['inplace', 'blocks', 'concat', 'static'];

/** Every kernel set on the cpu and wasm backends (the webgpu set runs these in the webgpu suites). */
const SETS = await kernelSetCases(['cpu', 'wasm']);

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

const CASES = SETS.flatMap(({ backend, kernels, label }) =>
  Object.entries(TINY_CONFIGS).map(([name, config]) => ({ backend, kernels, label, name, config })),
);

describe.each(CASES)('extendStep semantics ($name, $label)', ({ backend, kernels, name, config }) => {
  const length = 40;
  const batch = 3;
  let weights: ReturnType<typeof randomCausalLmWeights>;
  let sequences: number[][];
  let expected: Float32Array[];

  beforeAll(async () => {
    await initBackend({ backend });
    weights = randomCausalLmWeights(config, { seed: 7, std: 0.2, biases: name === 'mqa' || name === 'gpt2' });
    const rng = scenarioRng(11);
    sequences = Array.from({ length: batch }, () =>
      Array.from({ length }, () => Math.floor(rng() * config.vocabSize)),
    );
    expected = sequences.map((ids) => referenceLogits(config, weights, ids));
  });
  afterAll(() => disposeWeights(weights));

  test.each(KINDS)('random splits, ragged rows and rollback match the full forward (%s cache)', (kind) => {
    const model = createCausalLm({ ...config, kvCache: kind }, cloneWeights(weights), { kernels });
    const before = tf.memory().numTensors;
    const state = model.createState({ batch, maxLength: length });
    const V = config.vocabSize;
    // got[r][p] = the latest logits computed for row r at position p.
    const got = sequences.map(() => new Array<Float32Array | undefined>(length));
    const rng = scenarioRng(kind.length * 101 + name.length);
    for (let call = 0; call < 200; call++) {
      const room = Math.min(...Array.from(state.lengths, (l) => length - l));
      if (room === 0) break;
      const steps = 1 + Math.floor(rng() * Math.min(room, 9));
      const starts = Array.from(state.lengths);
      const tokens = sequences.map((seq, r) => seq.slice(starts[r], starts[r] + steps));
      const { logits } = model.extendStep(state, tokens);
      const values = logits.dataSync<'float32'>();
      logits.dispose();
      for (let r = 0; r < batch; r++) {
        for (let s = 0; s < steps; s++)
          got[r][starts[r] + s] = values.slice((r * steps + s) * V, (r * steps + s + 1) * V);
      }
      // Ragged rows: each row forgets a random part of what it just added.
      if (rng() < 0.5) {
        model.rollback(
          state,
          Array.from(state.lengths, (l) => l - Math.floor(rng() * (steps + 1))),
        );
      }
    }
    let compared = 0;
    for (let r = 0; r < batch; r++) {
      for (let p = 0; p < state.lengths[r]; p++) {
        const want = expected[r].subarray(p * V, (p + 1) * V);
        const have = got[r][p]!;
        let maxErr = 0;
        for (let i = 0; i < V; i++) maxErr = Math.max(maxErr, Math.abs(have[i] - want[i]));
        expect(maxErr, `row ${r} position ${p}`).toBeLessThan(1e-4);
        compared++;
      }
    }
    // The scenario must actually have covered most positions of every row.
    expect(compared).toBeGreaterThan(batch * length * 0.6);
    model.disposeState(state);
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  test('logits selection: last and per-row indices equal the matching rows of all', () => {
    const model = createCausalLm(config, cloneWeights(weights), { kernels });
    const tokens = sequences.map((s) => s.slice(0, 6));
    const run = (logits: 'all' | 'last' | number[]) => {
      const state = model.createState({ batch, maxLength: length });
      const { logits: out } = model.extendStep(state, tokens, { logits });
      const result = { shape: out.shape, values: out.arraySync() };
      out.dispose();
      model.disposeState(state);
      return result;
    };
    const all = run('all');
    const last = run('last');
    const picked = run([2, 5, 0]);
    expect(last.shape).toEqual([batch, 1, config.vocabSize]);
    for (let r = 0; r < batch; r++) {
      expect(last.values[r][0]).toEqual(all.values[r][5]);
      expect(picked.values[r][0]).toEqual(all.values[r][[2, 5, 0][r]]);
    }
    model.dispose();
  });

  test("logits 'none' projects nothing but extends the state; unknown keywords are rejected", () => {
    const model = createCausalLm(config, cloneWeights(weights), { kernels });
    const before = tf.memory().numTensors;
    const a = model.createState({ batch, maxLength: length });
    const b = model.createState({ batch, maxLength: length });
    const head = sequences.map((s) => s.slice(0, 6));
    const next = sequences.map((s) => s.slice(6, 9));
    const none = model.extendStep(a, head, { logits: 'none' }).logits;
    expect(none.shape).toEqual([batch, 0, config.vocabSize]);
    none.dispose();
    model.extendStep(b, head).logits.dispose();
    expect(Array.from(a.lengths)).toEqual(Array.from(b.lengths));
    const afterNone = model.extendStep(a, next).logits;
    const afterAll = model.extendStep(b, next).logits;
    expect(afterNone.arraySync()).toEqual(afterAll.arraySync());
    tf.dispose([afterNone, afterAll]);
    expect(() => model.extendStep(a, next, { logits: 'first' as 'last' })).toThrow(
      /logits must be 'all', 'last', 'none' or one index per row, got 'first'/,
    );
    expect(Array.from(a.lengths)).toEqual([9, 9, 9]);
    model.disposeState(a);
    model.disposeState(b);
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });
});

describe('norms folded into the linear layers after them', () => {
  // LayerNorm's bias lands in projections that had none: the case GPT-2-shaped random
  // weights hit (and the wasm fused matmul once rejected the folded bias's layout).
  test.each(SETS)(
    'LayerNorm with bias-free linears matches the reference ($label)',
    async ({ backend, kernels }) => {
      await initBackend({ backend });
      const config = TINY_CONFIGS.gpt2;
      const weights = randomCausalLmWeights(config, { seed: 5, std: 0.2 });
      const ids = Array.from({ length: 12 }, (_, i) => (i * 7 + 3) % config.vocabSize);
      const want = referenceLogits(config, weights, ids);
      const model = createCausalLm(config, cloneWeights(weights), { kernels });
      const state = model.createState({ batch: 1, maxLength: 12 });
      const { logits } = model.extendStep(state, [ids]);
      const have = logits.dataSync();
      logits.dispose();
      let maxErr = 0;
      for (let i = 0; i < want.length; i++) maxErr = Math.max(maxErr, Math.abs(have[i] - want[i]));
      expect(maxErr).toBeLessThanOrEqual(1e-4);
      model.disposeState(state);
      model.dispose();
      disposeWeights(weights);
    },
  );
});

describe('long windows (head-by-head attention on wasm)', () => {
  test.each(
    SETS.filter((c) => c.backend === 'wasm').flatMap((c) =>
      ['llama', 'gpt2'].map((name) => ({ ...c, name })),
    ),
  )(
    '$name: windows of 35 and 40 steps, ragged rows, match the reference ($label)',
    async ({ backend, kernels, name }) => {
      await initBackend({ backend });
      const config = TINY_CONFIGS[name];
      const weights = randomCausalLmWeights(config, { seed: 9, std: 0.2, biases: name === 'gpt2' });
      const rng = scenarioRng(5);
      const sequences = [0, 1].map(() =>
        Array.from({ length: 75 }, () => Math.floor(rng() * config.vocabSize)),
      );
      const model = createCausalLm(config, cloneWeights(weights), { kernels });
      const state = model.createState({ batch: 2, maxLength: 80 });
      const V = config.vocabSize;
      const first = model.extendStep(
        state,
        sequences.map((s) => s.slice(0, 35)),
      );
      const firstValues = first.logits.dataSync();
      first.logits.dispose();
      model.rollback(state, [35, 30]); // row 1 forgets 5 positions
      const second = model.extendStep(state, [sequences[0].slice(35, 75), sequences[1].slice(30, 70)]);
      const secondValues = second.logits.dataSync();
      second.logits.dispose();
      let maxErr = 0;
      for (const [r, start, take] of [
        [0, 35, 40],
        [1, 30, 40],
      ] as const) {
        const want = referenceLogits(config, weights, sequences[r].slice(0, start + take));
        for (let p = 0; p < start + take; p++) {
          const have =
            p < start
              ? firstValues.subarray((r * 35 + p) * V, (r * 35 + p + 1) * V)
              : secondValues.subarray((r * 40 + p - start) * V, (r * 40 + p - start + 1) * V);
          for (let i = 0; i < V; i++) maxErr = Math.max(maxErr, Math.abs(have[i] - want[p * V + i]));
        }
      }
      expect(maxErr).toBeLessThanOrEqual(1e-4);
      model.disposeState(state);
      model.dispose();
      disposeWeights(weights);
    },
  );
});

describe('model-owned tensors', () => {
  test.each(SETS)(
    'dispose frees every tensor the model made: fused weights and its scalar constants ($label)',
    async ({ backend, kernels }) => {
      await initBackend({ backend });
      for (const config of [TINY_CONFIGS.gpt2, TINY_CONFIGS.llama]) {
        const before = tf.memory().numTensors;
        const model = createCausalLm(config, randomCausalLmWeights(config, { seed: 2 }), { kernels });
        const state = model.createState({ batch: 1, maxLength: 8 });
        model.extendStep(state, [[1, 2, 3]]).logits.dispose();
        // A step creates no tensor that outlives it apart from the state's cache.
        const afterOne = tf.memory().numTensors;
        model.extendStep(state, [[4]]).logits.dispose();
        expect(tf.memory().numTensors).toBe(afterOne);
        model.disposeState(state);
        model.dispose();
        expect(tf.memory().numTensors).toBe(before);
      }
    },
  );

  test('createConstants keeps one scalar per distinct value, passes others through, frees on dispose', () => {
    const before = tf.memory().numTensors;
    const constants = createConstants([1e-5, 0.5, 1e-5]);
    expect(tf.memory().numTensors).toBe(before + 2);
    const eps = constants.of(1e-5);
    expect(eps).toBeInstanceOf(tf.Tensor);
    expect((eps as tf.Scalar).dataSync()[0]).toBeCloseTo(1e-5, 12);
    expect(constants.of(1e-5)).toBe(eps);
    expect(constants.of(3)).toBe(3);
    constants.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

/** The tiny Llama's random weights (the caller disposes them) and a model on a copy of them. */
async function tinyLlama(backend: (typeof SETS)[number]['backend'], kernels: KernelSetName, seed: number) {
  await initBackend({ backend });
  const config = TINY_CONFIGS.llama;
  const weights = randomCausalLmWeights(config, { seed, std: 0.2 });
  return { config, weights, model: createCausalLm(config, cloneWeights(weights), { kernels }) };
}

describe('extendStepOnDevice', () => {
  test.each(SETS)(
    'ids in an int32 tensor, or split (first column from the host), give the logits of the same ids as numbers; bad ones are rejected ($label)',
    async ({ backend, kernels }) => {
      const { config, weights, model: a } = await tinyLlama(backend, kernels, 4);
      const before = tf.memory().numTensors;
      const sa = a.createState({ batch: 2, maxLength: 16 });
      const sb = a.createState({ batch: 2, maxLength: 16 });
      const rows = [
        [3, 9, 4],
        [7, 1, 1],
      ];
      a.extendStep(sa, [[5], [6]]).logits.dispose();
      a.extendStep(sb, [[5], [6]]).logits.dispose();
      const want = a.extendStep(sa, rows).logits;
      const ids = tf.tensor2d(rows, [2, 3], 'int32');
      const got = a.extendStepOnDevice(sb, ids).logits;
      expect(Array.from(sb.lengths)).toEqual([4, 4]);
      const w = want.dataSync();
      const g = got.dataSync();
      expect(g.length).toBe(w.length);
      let maxErr = 0;
      for (let i = 0; i < w.length; i++) maxErr = Math.max(maxErr, Math.abs(g[i] - w[i]));
      expect(maxErr).toBeLessThanOrEqual(1e-6);
      tf.dispose([want, got]);
      const floats = tf.tensor2d([[1], [2]], [2, 1], 'float32');
      const wrongBatch = tf.tensor2d([[1, 2]], [1, 2], 'int32');
      expect(() => a.extendStepOnDevice(sb, floats)).toThrow(
        /int32 tensor \[2, steps\], got float32 \[2,1\]/,
      );
      expect(() => a.extendStepOnDevice(sb, wrongBatch)).toThrow(/got int32 \[1,2\]/);
      const long = tf.zeros([2, 13], 'int32') as tf.Tensor2D;
      expect(() => a.extendStepOnDevice(sb, long)).toThrow(/maxLength|capacity|exceed/);
      expect(Array.from(sb.lengths)).toEqual([4, 4]); // unchanged by the rejected calls
      // Split ids: each row's first id from the host, the rest in a tensor.
      const next = [
        [2, 8],
        [4, 0],
      ];
      const wantNext = a.extendStep(sa, next).logits;
      const rest = tf.tensor2d([[8], [0]], [2, 1], 'int32');
      const gotNext = a.extendStepOnDevice(sb, { first: [2, 4], rest }).logits;
      expect(maxAbs(await gotNext.data(), await wantNext.data())).toBeLessThanOrEqual(1e-6);
      tf.dispose([wantNext, gotNext]);
      expect(() => a.extendStepOnDevice(sb, { first: [2], rest })).toThrow(
        /first must hold one id per row \(2\)/,
      );
      expect(() => a.extendStepOnDevice(sb, { first: [2, config.vocabSize], rest })).toThrow(
        /first id \d+ of row 1 is outside the vocabulary/,
      );
      expect(() => a.extendStepOnDevice(sb, { first: [2, 4], rest: floats })).toThrow(
        /rest must be an int32 tensor/,
      );
      expect(Array.from(sb.lengths)).toEqual([6, 6]);
      tf.dispose([ids, floats, wrongBatch, long, rest]);
      a.disposeState(sa);
      a.disposeState(sb);
      expect(tf.memory().numTensors).toBe(before);
      a.dispose();
      disposeWeights(weights);
    },
  );
});

describe('reuseStates', () => {
  test.each(SETS)(
    "a kept cache, holding an earlier state's keys, gives the logits a fresh one does; memory stays flat and dispose frees it ($label)",
    async ({ backend, kernels }) => {
      const { config, weights, model: fresh } = await tinyLlama(backend, kernels, 5);
      const before = tf.memory().numTensors;
      const kept = createCausalLm(config, cloneWeights(weights), { kernels, reuseStates: 1 });
      const vocab = config.vocabSize;
      const rows = (batch: number, steps: number, seed: number) =>
        Array.from({ length: batch }, (_, r) =>
          Array.from({ length: steps }, (_, s) => (seed + 7 * r + 3 * s) % vocab),
        );
      // A long first use fills the cache well past what the second reads.
      const first = kept.createState({ batch: 2, maxLength: 40 });
      kept.extendStep(first, rows(2, 30, 1)).logits.dispose();
      kept.disposeState(first);
      const afterFirst = tf.memory().numTensors;
      for (const maxLength of [24, 60]) {
        const a = kept.createState({ batch: 2, maxLength });
        const b = fresh.createState({ batch: 2, maxLength });
        for (const window of [rows(2, 5, 11), rows(2, 1, 4), rows(2, 3, 9)]) {
          const got = kept.extendStep(a, window).logits;
          const want = fresh.extendStep(b, window).logits;
          expect(maxAbs(await got.data(), await want.data())).toBeLessThanOrEqual(1e-6);
          tf.dispose([got, want]);
        }
        kept.disposeState(a);
        fresh.disposeState(b);
        expect(tf.memory().numTensors).toBe(afterFirst);
      }
      // Another batch size takes a cache of its own; with reuseStates 1 the older is freed.
      const other = kept.createState({ batch: 3, maxLength: 8 });
      kept.disposeState(other);
      expect(tf.memory().numTensors).toBe(afterFirst);
      kept.dispose();
      expect(tf.memory().numTensors).toBe(before);
      fresh.dispose();
      expect(() => createCausalLm(config, weights, { kernels, reuseStates: -1 })).toThrow(
        /reuseStates must be an integer ≥ 0, got -1/,
      );
      disposeWeights(weights);
    },
  );
});

describe('kernel set choice', () => {
  test('by option, by SPECSTREAM_KERNELS, else the fastest; what cannot run is named and changes nothing', async () => {
    await initBackend({ backend: 'wasm' });
    expect(kernelSet().name).toBe('wasm');
    expect(kernelSet('reference').name).toBe('reference');
    expect(() => kernelSet('webgpu')).toThrow(
      /the webgpu kernel set cannot run here: .*webgpu backend \(current: wasm\)/,
    );
    expect(() => kernelSet('fast' as KernelSetName)).toThrow(
      /unknown kernel set "fast"; known: reference, wasm, webgpu/,
    );
    for (const [setting, check] of [
      ['reference', () => expect([kernelSet().name, useWasmKernels()]).toEqual(['reference', false])],
      [
        'fastest',
        () =>
          expect(() => kernelSet()).toThrow(
            /SPECSTREAM_KERNELS must be auto, reference, wasm, webgpu; got "fastest"/,
          ),
      ],
    ] as const) {
      process.env.SPECSTREAM_KERNELS = setting;
      try {
        check();
      } finally {
        delete process.env.SPECSTREAM_KERNELS;
      }
    }
    expect(useWasmKernels()).toBe(true);
  });

  test('layers prepared for one set are refused by a model built with another, before it owns anything', async () => {
    await initBackend({ backend: 'wasm' });
    const config = TINY_CONFIGS.llama;
    const before = tf.memory().numTensors;
    const weights = randomCausalLmWeights(config, { seed: 1 });
    const [first, ...rest] = weights.layers as CausalLmLayerWeights[];
    const prepared = prepareCausalLmLayer(config, first, { kernels: 'reference' });
    expect(prepared.kernels).toBe('reference');
    expect(() =>
      createCausalLm(config, { ...weights, layers: [prepared, ...rest] }, { kernels: 'wasm' }),
    ).toThrow(
      /a layer was prepared for the reference kernel set with f32 weights, the model is built with wasm and f32/,
    );
    // Still whole: the same weights build a reference model that runs.
    const model = createCausalLm(
      config,
      { ...weights, layers: [prepared, ...rest] },
      { kernels: 'reference' },
    );
    const state = model.createState({ batch: 1, maxLength: 4 });
    model.extendStep(state, [[1, 2]]).logits.dispose();
    model.disposeState(state);
    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
