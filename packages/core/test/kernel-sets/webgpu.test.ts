/**
 * Core's WGSL programs against float64 references written here. They need a
 * WebGPU adapter: a GPU, or Mesa's lavapipe on a CPU (scripts/lavapipe.sh
 * sets one up); where initBackend cannot start webgpu the suite is skipped
 * and says why.
 */
import * as tf from '@tensorflow/tfjs-core';
import seedrandom from 'seedrandom';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { referenceAttention } from '../../../../test-support/attention-reference.js';
import { maxAbsDiff } from '../../../../test-support/max-abs-diff.js';
import { randomArray, randomPackedQkv } from '../../../../test-support/random-arrays.js';
import { webgpuUnavailable } from '../../../../test-support/webgpu-programs.js';
import { webGpuErrors } from '../../src/backend/candidates.js';
import { initBackend } from '../../src/backend.js';
import { createCausalLm } from '../../src/causal-lm.js';
import { halfToFloat } from '../../src/kernel-sets/wasm/quant-matrix.js';
import { activateRows } from '../../src/kernel-sets/webgpu/activation.js';
import { embedRows } from '../../src/kernel-sets/webgpu/embed.js';
import { greedyRows } from '../../src/kernel-sets/webgpu/greedy-rows.js';
import { recordPass } from '../../src/kernel-sets/webgpu/pass-tape.js';
import { rotatePacked } from '../../src/kernel-sets/webgpu/rotary-packed.js';
import {
  packF16Rows,
  quantizeRowsQ4,
  quantizeRowsQ8,
  rowLinear,
} from '../../src/kernel-sets/webgpu/row-linear.js';
import { candidateLogits, topKRows } from '../../src/kernel-sets/webgpu/top-k-rows.js';
import { webGpuPrograms } from '../../src/kernel-sets/webgpu/webgpu-program.js';
import {
  attentionSplits,
  causalAttention,
  causalAttentionSupported,
} from '../../src/kernels/causal-attention.js';
import { standardizeRows, standardizeRowsSupported } from '../../src/kernels/standardize.js';
import { createKvCache } from '../../src/kv-cache/index.js';
import { randomCausalLmWeights } from '../../src/random-model.js';
import { greedyToken } from '../../src/sampling/sampler.js';
import { topKIds } from '../../src/sampling/top-k.js';
import { rotaryCosSin, rotaryInverseFrequencies } from '../../src/transformer/rotary.js';
import { TINY_CONFIGS } from '../models.js';

const unavailable = await webgpuUnavailable(initBackend, 'webgpu kernel tests');

/** erf by its Taylor series, exact to float64 rounding for |z| ≤ 3. */
function erf(z: number): number {
  let term = z;
  let sum = z;
  for (let n = 1; n < 80; n++) {
    term *= (-z * z) / n;
    sum += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

const ACTIVATIONS = {
  silu: (x: number) => x / (1 + Math.exp(-x)),
  gelu_tanh: (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))),
  gelu: (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
  relu: (x: number) => Math.max(x, 0),
} as const;

/**
 * Rows packed by packF16Rows, quantizeRowsQ8 or quantizeRowsQ4, read back after their layout is
 * checked ([rows, cols / per word] int32, scales [rows, cols / 32]): q(r, c) the stored integer
 * (q8 a signed byte; q4 word ⌊c/8⌋, byte c mod 4, the high nibble when c mod 8 ≥ 4, less 8),
 * d(r, c) its block's scale, value(r, c) what the weight stands for (f16: the half).
 */
async function readPacked(
  format: 'f16' | 'q8' | 'q4',
  packed: { weightRows: tf.Tensor2D; scales?: tf.Tensor2D },
  rows: number,
  cols: number,
) {
  const perWord = { f16: 2, q8: 4, q4: 8 }[format];
  expect([packed.weightRows.shape, packed.weightRows.dtype, packed.scales?.shape]).toEqual([
    [rows, cols / perWord],
    'int32',
    format === 'f16' ? undefined : [rows, cols / 32],
  ]);
  const words = (await packed.weightRows.data()).buffer.slice(0);
  const [int8, uint8, uint16] = [new Int8Array(words), new Uint8Array(words), new Uint16Array(words)];
  const scales = packed.scales ? await packed.scales.data() : new Float32Array(0);
  const q = (r: number, c: number) => {
    if (format === 'q8') return int8[r * cols + c];
    const byte = uint8[(r * cols) / 2 + 4 * Math.floor(c / 8) + (c % 4)];
    return (c % 8 < 4 ? byte & 15 : byte >> 4) - 8;
  };
  const d = (r: number, c: number) => scales[r * (cols / 32) + Math.floor(c / 32)];
  const value = (r: number, c: number) =>
    format === 'f16' ? halfToFloat(uint16[r * cols + c]) : q(r, c) * d(r, c);
  return { q, d, value };
}

describe.skipIf(unavailable !== undefined)('core WGSL programs (webgpu)', () => {
  beforeAll(async () => {
    await initBackend({ backend: 'webgpu' });
  });

  test('are what the backend runs, unless SPECSTREAM_KERNELS=reference', () => {
    expect(webGpuPrograms()).toBeDefined();
    expect([standardizeRowsSupported(8), causalAttentionSupported(80)]).toEqual([true, true]);
    process.env.SPECSTREAM_KERNELS = 'reference';
    try {
      expect([standardizeRowsSupported(8), causalAttentionSupported(80)]).toEqual([false, false]);
    } finally {
      delete process.env.SPECSTREAM_KERNELS;
    }
  });

  test.each([
    [1, 768, true],
    [9, 768, false],
    [3, 100, true],
    [2, 4096, true],
    [5, 64, false],
  ])('standardizeRows of [%i, %i] (center %s) matches the closed form', async (rows, cols, center) => {
    const rng = seedrandom(`std${rows}x${cols}`);
    // An offset and spread like a residual stream's, so centering matters.
    const values = randomArray(rows * cols, rng, 4).map((v) => v + 3);
    const eps = 1e-5;
    const expected = new Float64Array(rows * cols);
    for (let r = 0; r < rows; r++) {
      const row = values.subarray(r * cols, (r + 1) * cols);
      const mean = center ? row.reduce((a, b) => a + b, 0) / cols : 0;
      const variance = row.reduce((a, b) => a + (b - mean) ** 2, 0) / cols;
      for (let c = 0; c < cols; c++) expected[r * cols + c] = (row[c] - mean) / Math.sqrt(variance + eps);
    }
    const x = tf.tensor2d(values, [rows, cols]);
    const before = tf.memory().numTensors;
    const y = standardizeRows(x, eps, center);
    expect(tf.memory().numTensors).toBe(before + 1);
    expect(maxAbsDiff(await y.data(), expected)).toBeLessThan(2e-5);
    tf.dispose([x, y]);
  });

  test.each(
    (['silu', 'gelu_tanh', 'gelu', 'relu'] as const).flatMap((kind) => [
      [kind, false],
      [kind, true],
    ]),
  )('activateRows %s (gated %s) matches its formula', async (kind, gated) => {
    const rng = seedrandom(`act-${kind}-${gated}`);
    const [rows, cols] = [3, 2 * 130];
    const values = randomArray(rows * cols, rng, 4);
    const f = ACTIVATIONS[kind];
    const outCols = gated ? cols / 2 : cols;
    const expected = Float64Array.from({ length: rows * outCols }, (_, i) => {
      const [r, c] = [Math.floor(i / outCols), i % outCols];
      return gated ? f(values[r * cols + c]) * values[r * cols + outCols + c] : f(values[i]);
    });
    const x = tf.tensor2d(values, [rows, cols]);
    const y = activateRows(kind, x, gated);
    expect(y.shape).toEqual([rows, outCols]);
    // gelu's erf is a 1.5e-7 approximation, scaled by |x·up| ≤ 16.
    expect(maxAbsDiff(await y.data(), expected)).toBeLessThan(1e-5);
    tf.dispose([x, y]);
  });

  test('split ids (first column from the host, the rest copied row by row on the device) score what the same ids as numbers do, recorded and replayed', async () => {
    const config = TINY_CONFIGS.llama;
    const model = createCausalLm(config, randomCausalLmWeights(config, { seed: 8, std: 0.2 }), {
      kernels: 'webgpu',
    });
    const rng = seedrandom('split ids');
    const id = () => Math.floor(rng() * config.vocabSize);
    const before = tf.memory().numTensors;
    const batch = 3;
    const host = model.createState({ batch, maxLength: 32 });
    const split = model.createState({ batch, maxLength: 32 });
    const start = Array.from({ length: batch }, () => [id()]);
    model.extendStep(host, start).logits.dispose();
    model.extendStep(split, start).logits.dispose();
    // The first pass of a shape is recorded (its ids already written the split way), the rest replay it.
    for (let round = 0; round < 4; round++) {
      const rows = Array.from({ length: batch }, () => [id(), id(), id(), id()]);
      const want = model.extendStep(host, rows).logits;
      const rest = tf.tensor2d(
        rows.map((r) => r.slice(1)),
        [batch, 3],
        'int32',
      );
      const got = model.extendStepOnDevice(split, { first: rows.map((r) => r[0]), rest }).logits;
      expect(maxAbsDiff(await got.data(), await want.data())).toBeLessThanOrEqual(1e-5);
      tf.dispose([want, got, rest]);
    }
    expect(Array.from(split.lengths)).toEqual(Array.from(host.lengths));
    model.disposeState(host);
    model.disposeState(split);
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  test('with reuseStates a later state replays the passes recorded on its kept cache (no program through tfjs) and scores what a fresh state does', async () => {
    const config = TINY_CONFIGS.llama;
    const fresh = createCausalLm(config, randomCausalLmWeights(config, { seed: 9, std: 0.2 }), {
      kernels: 'webgpu',
    });
    const before = tf.memory().numTensors;
    const kept = createCausalLm(config, randomCausalLmWeights(config, { seed: 9, std: 0.2 }), {
      kernels: 'webgpu',
      reuseStates: 1,
    });
    const backend = tf.backend() as unknown as { runWebGPUProgram: (...args: unknown[]) => unknown };
    const run = backend.runWebGPUProgram;
    let programs = 0;
    backend.runWebGPUProgram = function (this: unknown, ...args: unknown[]) {
      programs++;
      return run.apply(this, args);
    };
    const windows = [
      [[3], [8]],
      [
        [1, 2, 3],
        [4, 5, 6],
      ],
      [[7], [9]],
    ];
    const generation = async (model: typeof kept, maxLength: number) => {
      const state = model.createState({ batch: 2, maxLength });
      const out: Float32Array[] = [];
      for (const window of windows) {
        const { logits } = model.extendStep(state, window);
        out.push((await logits.data()) as Float32Array);
        logits.dispose();
      }
      model.disposeState(state);
      return out;
    };
    try {
      await generation(kept, 40); // records each window's pass on the cache, which is then kept
      programs = 0;
      const again = await generation(kept, 50); // the same capacity bucket: the kept cache
      expect(programs).toBe(0);
      const want = await generation(fresh, 50);
      expect(programs).toBeGreaterThan(0); // a fresh state's first passes run through tfjs
      for (const [i, w] of want.entries()) expect(maxAbsDiff(again[i], w)).toBeLessThanOrEqual(1e-6);
    } finally {
      backend.runWebGPUProgram = run;
    }
    kept.dispose();
    expect(tf.memory().numTensors).toBe(before);
    fresh.dispose();
  });

  test('a recorded pass replays its programs on the values its input buffers hold then, its output a new tensor each time', async () => {
    const gpuBytes = () => (tf.memory() as tf.MemoryInfo & { numBytesInGPU: number }).numBytesInGPU;
    const rng = seedrandom('tape');
    const [rows, inner, out] = [3, 64, 24];
    const weight = tf.tensor2d(randomArray(out * inner, rng, 1), [out, inner]);
    const x = tf.tensor2d(randomArray(rows * inner, rng, 1), [rows, inner]);
    const pass = () =>
      tf.tidy(() =>
        activateRows(
          'silu',
          rowLinear(x, { weightRows: weight }, { norm: { kind: 'rms', eps: 1e-5 } }),
          false,
        ),
      );
    const expected = async () => {
      const y = pass();
      const values = await y.data();
      y.dispose();
      return values;
    };
    const first = await expected();
    // Measured once the weights are on the device and the first run's work was submitted.
    const flush = async () => {
      const one = tf.tidy(() => tf.add(tf.scalar(1), tf.scalar(1)));
      await one.data();
      one.dispose();
    };
    await flush();
    const tensorsBefore = tf.memory().numTensors;
    const bytesBefore = gpuBytes();
    const { result, tape, why } = recordPass(pass);
    expect(why).toBeUndefined();
    expect(tape!.dispatches).toBe(2);
    expect(Array.from(await result.data())).toEqual(Array.from(first));
    // New inputs in the same buffer (the tape's writes do this for a pass's ids and starts).
    const fresh = randomArray(rows * inner, rng, 1);
    const backend = tf.backend() as unknown as {
      queue: { writeBuffer(b: unknown, o: number, d: Float32Array): void };
      tensorMap: { get(id: object): { resource: unknown } };
    };
    backend.queue.writeBuffer(backend.tensorMap.get(x.dataId).resource, 0, fresh);
    const replayed = tape!.replay([]);
    const again = tape!.replay([]);
    const reference = tf.tidy(() =>
      activateRows(
        'silu',
        rowLinear(
          tf.tensor2d(fresh, [rows, inner]),
          { weightRows: weight },
          { norm: { kind: 'rms', eps: 1e-5 } },
        ),
        false,
      ),
    );
    const want = await reference.data();
    expect(maxAbsDiff(await replayed.data(), want)).toBeLessThan(1e-6);
    expect(maxAbsDiff(await again.data(), want)).toBeLessThan(1e-6);
    // The recorded result kept its values: each replay writes a tensor of its own.
    expect(Array.from(await result.data())).toEqual(Array.from(first));
    tf.dispose([result, replayed, again, reference]);
    tape!.dispose();
    expect(() => tape!.replay([])).toThrow(/disposed/);
    await flush();
    expect([tf.memory().numTensors, gpuBytes()]).toEqual([tensorsBefore, bytesBefore]);
    tf.dispose([x, weight]);
  });

  test('a pass running a tfjs kernel is not recorded, says why, and still returns its result', async () => {
    const x = tf.tensor2d([1, 2, 3, 4], [2, 2]);
    const before = tf.memory().numTensors;
    const { result, tape, why } = recordPass(() =>
      tf.tidy(() => activateRows('relu', tf.add(x, x) as tf.Tensor2D, false)),
    );
    expect(tape).toBeUndefined();
    expect(why).toMatch(/tfjs program/);
    expect(Array.from(await result.data())).toEqual([2, 4, 6, 8]);
    result.dispose();
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
  });

  test.each([1, 5, 40])(
    'topKRows gives each row the k largest logits, ties to the lower id, as topKIds does (k = %i)',
    async (k) => {
      const rng = seedrandom(`topk${k}`);
      const vocab = 1000;
      const rows: Float32Array[] = [
        Float32Array.from(randomArray(vocab, rng, 3)),
        // Coarse values: many ties, at the k-th among them.
        Float32Array.from(randomArray(vocab, rng, 3), (v) => Math.round(v * 4) / 4),
        // Fewer finite logits than k (the rest masked).
        Float32Array.from({ length: vocab }, (_, i) => (i % 400 === 7 ? i / 100 : Number.NEGATIVE_INFINITY)),
        // Negative logits only, with a masked id.
        Float32Array.from(randomArray(vocab, rng, 1), (v, i) =>
          i === 3 ? Number.NEGATIVE_INFINITY : -5 - Math.abs(v),
        ),
      ];
      const logits = tf.tensor2d(
        rows.flatMap((r) => Array.from(r)),
        [rows.length, vocab],
      );
      const before = tf.memory().numTensors;
      const picked = topKRows(logits, k);
      const output = (await picked.data()) as Int32Array;
      picked.dispose();
      expect(tf.memory().numTensors).toBe(before);
      for (const [r, row] of rows.entries()) {
        const given = candidateLogits(output, r, k, vocab);
        const ties = row.filter(
          (v) => v === row[topKIds(row, k).reduce((a, id) => (row[id] < row[a] ? id : a))],
        ).length;
        if (ties > k) {
          // More ties at the k-th than k: the program says so and the caller reads the row.
          expect(given).toBeUndefined();
          continue;
        }
        const ids = Array.from(topKIds(row, k));
        const kept = Array.from(given!.keys()).filter((i) => given![i] !== Number.NEGATIVE_INFINITY);
        expect(kept).toEqual(ids);
        expect(kept.map((i) => given![i])).toEqual(ids.map((i) => row[i]));
      }
      logits.dispose();
    },
  );

  test('topKRows refuses a row holding NaN or +Infinity (the caller then reads it), and a k it cannot take', async () => {
    const row = Array.from({ length: 300 }, (_, i) => Math.sin(i));
    const logits = tf.tensor2d(
      [
        ...row,
        ...row.map((v, i) => (i === 17 ? Number.NaN : v)),
        ...row.map((v, i) => (i === 5 ? Number.POSITIVE_INFINITY : v)),
      ],
      [3, 300],
    );
    const picked = topKRows(logits, 4);
    const output = (await picked.data()) as Int32Array;
    expect([0, 1, 2].map((r) => candidateLogits(output, r, 4, 300) === undefined)).toEqual([
      false,
      true,
      true,
    ]);
    expect(() => topKRows(logits, 0)).toThrow(/top 0/);
    tf.dispose([picked, logits]);
  });

  test('activateRows rejects a gated input with an odd width, naming it', () => {
    const x = tf.zeros([2, 5]) as tf.Tensor2D;
    expect(() => activateRows('silu', x, true)).toThrow(/gated silu to \[2,5\]/);
    x.dispose();
  });

  test.each([
    // batch, steps, heads, kvHeads, headDim, slots, window
    [1, 1, 12, 12, 64, 160, Number.POSITIVE_INFINITY],
    [2, 5, 4, 2, 64, 200, Number.POSITIVE_INFINITY],
    [3, 3, 6, 2, 32, 150, Number.POSITIVE_INFINITY],
    [2, 4, 4, 4, 128, 300, 37],
    [1, 2, 2, 1, 80, 70, Number.POSITIVE_INFINITY],
    [5, 9, 2, 1, 16, 40, Number.POSITIVE_INFINITY],
    // More rows than uniforms carry: the starts go in a buffer.
    [21, 2, 2, 1, 16, 200, Number.POSITIVE_INFINITY],
    // Long contexts with few (row, step, head) items: the slots split over workgroups, then merged.
    [1, 1, 12, 12, 64, 1500, Number.POSITIVE_INFINITY],
    [2, 1, 4, 2, 64, 700, Number.POSITIVE_INFINITY],
    [1, 3, 8, 2, 80, 2000, 600],
    [1, 1, 4, 4, 64, 9000, Number.POSITIVE_INFINITY],
    // Heads read as vec4s up to 256 wide; wider ones, and ones that are not whole vec4s, a float at a time.
    [1, 2, 2, 2, 256, 100, Number.POSITIVE_INFINITY],
    [1, 2, 2, 1, 264, 90, Number.POSITIVE_INFINITY],
    [2, 3, 2, 1, 6, 50, Number.POSITIVE_INFINITY],
    // More than 65,535 items: tfjs lays the dispatch out as a square; the extra workgroups write nothing.
    [2, 300, 112, 1, 8, 310, Number.POSITIVE_INFINITY],
  ])(
    'causalAttention B%i S%i H%i KV%i D%i over %i slots (window %s) matches float64',
    async (batch, steps, heads, kvHeads, headDim, slots, window) => {
      const rng = seedrandom(`attn${batch}-${steps}-${heads}-${headDim}`);
      const q = randomArray(batch * steps * heads * headDim, rng, 0.5);
      const k = randomArray(batch * kvHeads * slots * headDim, rng);
      const v = randomArray(batch * kvHeads * slots * headDim, rng);
      // Rows at different depths; stale slots past each row's end hold values that must stay unseen.
      const starts = Array.from({ length: batch }, (_, r) => Math.max(0, slots - steps - 7 * r - 1));
      const expected = referenceAttention(q, k, v, starts, [steps, heads, kvHeads, headDim, slots, window]);
      const tensors = [
        tf.tensor4d(q, [batch, steps, heads, headDim]),
        tf.tensor4d(k, [batch, kvHeads, slots, headDim]),
        tf.tensor4d(v, [batch, kvHeads, slots, headDim]),
      ] as const;
      const before = tf.memory().numTensors;
      const out = causalAttention(...tensors, starts, { window });
      expect(tf.memory().numTensors).toBe(before + 1);
      expect(out.shape).toEqual([batch * steps, heads * headDim]);
      expect(maxAbsDiff(await out.data(), expected)).toBeLessThan(1e-5);
      tf.dispose([...tensors, out]);
    },
  );

  test('attention splits a long context over workgroups only where few items would leave the GPU idle', () => {
    const at = (
      batch: number,
      steps: number,
      heads: number,
      context: number,
      window = Number.POSITIVE_INFINITY,
    ) => attentionSplits({ batch, steps, heads, window, starts: new Array(batch).fill(context - steps) });
    expect(at(1, 1, 12, 100)).toBe(1);
    expect(at(1, 1, 12, 1500)).toBe(11);
    expect(at(1, 1, 4, 9000)).toBe(64);
    expect(at(1, 3, 8, 2000, 600)).toBe(4);
    expect(at(32, 1, 12, 4000)).toBe(1);
  });

  test('causalAttention in the slots layout equals the heads layout', async () => {
    const rng = seedrandom('layouts');
    const [batch, steps, heads, kvHeads, headDim, slots] = [2, 3, 4, 2, 32, 50];
    const q = tf.tensor4d(randomArray(batch * steps * heads * headDim, rng), [batch, steps, heads, headDim]);
    const k = tf.tensor4d(randomArray(batch * kvHeads * slots * headDim, rng), [
      batch,
      kvHeads,
      slots,
      headDim,
    ]);
    const v = tf.tensor4d(randomArray(batch * kvHeads * slots * headDim, rng), [
      batch,
      kvHeads,
      slots,
      headDim,
    ]);
    const [ks, vs] = [k, v].map((t) => tf.transpose(t, [0, 2, 1, 3]) as tf.Tensor4D);
    const starts = [40, 20];
    const heads4 = causalAttention(q, k, v, starts);
    const slots4 = causalAttention(q, ks, vs, starts, { layout: 'slots' });
    expect(maxAbsDiff(await slots4.data(), await heads4.data())).toBeLessThan(1e-6);
    tf.dispose([q, k, v, ks, vs, heads4, slots4]);
  });

  test('rotary applied as keys are written and queries attended equals rotating the packed projection first', async () => {
    const rng = seedrandom('rotary-in-place');
    const [batch, steps, heads, kvHeads, headDim, capacity] = [3, 2, 4, 2, 16, 20];
    const packed = tf.tensor4d(...randomPackedQkv(rng, [batch, steps, heads, kvHeads, headDim]));
    const starts = [0, 7, 12];
    const positions = starts.flatMap((s) => Array.from({ length: steps }, (_, i) => s + i));
    const cosSin = tf.tensor2d(rotaryCosSin(rotaryInverseFrequencies({ theta: 10000, headDim }), positions), [
      batch * steps,
      headDim,
    ]);
    const rotated = rotatePacked(packed, cosSin, heads + kvHeads);
    const shape = { batch, layers: 1, kvHeads, headDim, capacity };
    const [inPlace, first] = [createKvCache(shape, 'inplace'), createKvCache(shape, 'inplace')];
    const before = tf.memory().numTensors;
    inPlace.writeHeads!(
      0,
      { from: packed, head: heads, cosSin },
      { from: packed, head: heads + kvHeads },
      starts,
    );
    first.writeHeads!(0, { from: rotated, head: heads }, { from: packed, head: heads + kvHeads }, starts);
    expect(tf.memory().numTensors).toBe(before);
    const [a, b] = [inPlace.whole!(0), first.whole!(0)];
    expect(maxAbsDiff(await a.keys.data(), await b.keys.data())).toBeLessThan(1e-6);
    const read = causalAttention(packed, a.keys, a.values, starts, { queryHeads: heads, cosSin });
    const reference = causalAttention(rotated, b.keys, b.values, starts, { queryHeads: heads });
    expect(maxAbsDiff(await read.data(), await reference.data())).toBeLessThan(1e-6);
    // A table of the wrong shape (a row per (position, head) here) is named.
    const wrong = tf.zeros([batch * steps * 2, headDim]) as tf.Tensor2D;
    expect(() =>
      causalAttention(packed, a.keys, a.values, starts, { queryHeads: heads, cosSin: wrong }),
    ).toThrow(/cosSin \[12,16\]/);
    wrong.dispose();
    tf.dispose([packed, cosSin, rotated, read, reference]);
    inPlace.dispose();
    first.dispose();
  });

  test('causalAttention names a row that runs past the cache', () => {
    const q = tf.zeros([1, 2, 2, 16]) as tf.Tensor4D;
    const k = tf.zeros([1, 2, 10, 16]) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    expect(() => causalAttention(q, k, k, [9])).toThrow(/starting at 9 with 2 steps exceeds 10 slots/);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([q, k]);
  });

  test('the inplace cache writes heads straight from packed projections, as write() does from slices', async () => {
    const rng = seedrandom('write-heads');
    const [batch, steps, heads, kvHeads, headDim, capacity] = [19, 4, 4, 2, 16, 24];
    const packed = tf.tensor4d(...randomPackedQkv(rng, [batch, steps, heads, kvHeads, headDim]));
    // 19 rows: more than uniforms carry, so the starts go in a buffer.
    const starts = Array.from({ length: batch }, (_, r) => (r * 5) % 21);
    const shape = { batch, layers: 1, kvHeads, headDim, capacity };
    const viaHeads = createKvCache(shape, 'inplace');
    const viaSlices = createKvCache(shape, 'inplace');
    expect(viaHeads.writeHeads).toBeDefined();
    const before = tf.memory().numTensors;
    viaHeads.writeHeads!(0, { from: packed, head: heads }, { from: packed, head: heads + kvHeads }, starts);
    expect(tf.memory().numTensors).toBe(before);
    tf.tidy(() => {
      const part = (first: number) =>
        tf.transpose(
          tf.slice(packed, [0, 0, first, 0], [batch, steps, kvHeads, headDim]),
          [0, 2, 1, 3],
        ) as tf.Tensor4D;
      viaSlices.write(0, part(heads), part(heads + kvHeads), starts);
    });
    const [a, b] = [viaHeads.whole!(0), viaSlices.whole!(0)];
    expect(maxAbsDiff(await a.keys.data(), await b.keys.data())).toBe(0);
    expect(maxAbsDiff(await a.values.data(), await b.values.data())).toBe(0);
    // And something was written: the slots of row 1 at 5..8 hold the packed values.
    const magnitude = tf.sum(tf.abs(a.keys));
    expect((await magnitude.data())[0]).toBeGreaterThan(0);
    magnitude.dispose();
    tf.dispose(packed);
    viaHeads.dispose();
    viaSlices.dispose();
  });

  test.each([
    // rows, inner, out, norm, activation, gated, bias, residual
    [1, 768, 2304, 'layer', undefined, false, true, false],
    [9, 768, 768, undefined, undefined, false, true, true],
    [16, 100, 130, 'rms', 'silu', true, false, false],
    [3, 64, 200, 'layer', 'gelu_tanh', false, true, false],
    [5, 37, 65, undefined, 'gelu', true, true, true],
    [2, 300, 50, 'rms', undefined, false, false, true],
    [37, 96, 40, 'layer', 'relu', false, true, true],
  ] as const)(
    'rowLinear of %i×%i by %i (norm %s, %s, gated %s, bias %s, residual %s) matches float64',
    async (rows, inner, out, norm, activation, gated, withBias, withResidual) => {
      const rng = seedrandom(`lin${rows}-${inner}-${out}-${norm}-${activation}`);
      const width = gated ? 2 * out : out;
      const x = randomArray(rows * inner, rng, 2).map((v) => v + 1);
      const w = randomArray(inner * width, rng, 0.1);
      const b = randomArray(width, rng);
      const r = randomArray(rows * out, rng);
      const f = activation ? ACTIVATIONS[activation] : (v: number) => v;
      const expected = new Float64Array(rows * out);
      for (let m = 0; m < rows; m++) {
        const row = Array.from(x.subarray(m * inner, (m + 1) * inner));
        const mean = norm === 'layer' ? row.reduce((s, v) => s + v, 0) / inner : 0;
        const scale = norm ? 1 / Math.sqrt(row.reduce((s, v) => s + (v - mean) ** 2, 0) / inner + 1e-5) : 1;
        const h = row.map((v) => (v - mean) * scale);
        const dot = (col: number) => h.reduce((s, v, k) => s + v * w[k * width + col], withBias ? b[col] : 0);
        for (let n = 0; n < out; n++) {
          const value = gated ? f(dot(n)) * dot(n + out) : f(dot(n));
          expected[m * out + n] = value + (withResidual ? r[m * out + n] : 0);
        }
      }
      const tensors = {
        x: tf.tensor2d(x, [rows, inner]),
        weightRows: tf.transpose(tf.tensor2d(w, [inner, width])) as tf.Tensor2D,
        bias: tf.tensor1d(b),
        residual: tf.tensor2d(r, [rows, out]),
      };
      const before = tf.memory().numTensors;
      const y = rowLinear(
        tensors.x,
        withBias
          ? { weightRows: tensors.weightRows, bias: tensors.bias }
          : { weightRows: tensors.weightRows },
        {
          norm: norm ? { kind: norm, eps: 1e-5 } : undefined,
          activation,
          gated,
          residual: withResidual ? tensors.residual : undefined,
        },
      );
      expect(tf.memory().numTensors).toBe(before + 1);
      expect(y.shape).toEqual([rows, out]);
      expect(maxAbsDiff(await y.data(), expected)).toBeLessThan(2e-5);
      tf.dispose([...Object.values(tensors), y]);
    },
  );

  test('rowLinear with pickRows multiplies each batch row’s last step only, in the program', async () => {
    const rng = seedrandom('pick-rows');
    const [batch, steps, inner, out] = [3, 4, 64, 50];
    const x = randomArray(batch * steps * inner, rng, 2);
    const w = randomArray(inner * out, rng, 0.1);
    const b = randomArray(out, rng);
    const expected = new Float64Array(batch * out);
    for (let r = 0; r < batch; r++) {
      const row = Array.from(x.subarray((r * steps + steps - 1) * inner, (r * steps + steps) * inner));
      const mean = row.reduce((s, v) => s + v, 0) / inner;
      const scale = 1 / Math.sqrt(row.reduce((s, v) => s + (v - mean) ** 2, 0) / inner + 1e-5);
      for (let n = 0; n < out; n++)
        expected[r * out + n] = row.reduce((s, v, k) => s + (v - mean) * scale * w[k * out + n], b[n]);
    }
    const t = {
      x: tf.tensor2d(x, [batch * steps, inner]),
      weightRows: tf.transpose(tf.tensor2d(w, [inner, out])) as tf.Tensor2D,
      bias: tf.tensor1d(b),
    };
    const options = {
      norm: { kind: 'layer' as const, eps: 1e-5 },
      pickRows: { stride: steps, offset: steps - 1 },
    };
    const before = tf.memory().numTensors;
    const layer = { weightRows: t.weightRows, bias: t.bias };
    const y = rowLinear(t.x, layer, options);
    expect(y.shape).toEqual([batch, out]);
    expect(maxAbsDiff(await y.data(), expected)).toBeLessThan(2e-5);
    y.dispose();
    expect(() => rowLinear(t.x, layer, { pickRows: { stride: 1, offset: 12 } })).toThrow(
      /cannot pick rows 12, 12 \+ 1, … of 12 rows/,
    );
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(Object.values(t));
  });

  test('packF16Rows rounds each weight to the nearest f16 (ties to even, subnormals), two per int32', async () => {
    const values = Float32Array.from([
      0,
      -0,
      1,
      -1,
      1 / 3,
      65504,
      -65504,
      2 ** -24,
      2 ** -25 * 1.5,
      2 ** -14 * 0.75,
      1 + 2 ** -11,
      1 + 3 * 2 ** -11,
      0.1,
      -2.71828,
      1e-6,
      123.456,
    ]);
    const weight = tf.tensor2d(values, [2, 8]);
    const packed = packF16Rows(weight);
    expect(packed.shape).toEqual([2, 4]);
    expect(packed.dtype).toBe('int32');
    const bits = new Uint32Array((await packed.data()).buffer.slice(0));
    const unpacked = Array.from(bits).flatMap((b) => [halfToFloat(b & 0xffff), halfToFloat(b >>> 16)]);
    expect(unpacked).toEqual(Array.from(values, nearestHalf));
    expect(() => packF16Rows(tf.zeros([2, 3]) as tf.Tensor2D)).toThrow(/even row length/);
    tf.dispose([weight, packed]);
  });

  test.each([
    [1, 64, 48, 'rms', 'silu', true],
    [3, 96, 40, undefined, undefined, false],
    [17, 128, 33, 'layer', 'gelu_tanh', false],
  ] as const)(
    'rowLinear on f16 weights of %i×%i by %i equals float64 on the rounded weights (norm %s, %s, gated %s)',
    async (rows, inner, out, norm, activation, gated) => {
      const rng = seedrandom(`half${rows}-${inner}-${out}`);
      const width = gated ? 2 * out : out;
      const x = randomArray(rows * inner, rng, 2);
      const w = randomArray(inner * width, rng, 0.1);
      const b = randomArray(width, rng);
      const rounded = Float64Array.from(w, nearestHalf);
      const f = activation ? ACTIVATIONS[activation] : (v: number) => v;
      const expected = new Float64Array(rows * out);
      for (let m = 0; m < rows; m++) {
        const row = Array.from(x.subarray(m * inner, (m + 1) * inner));
        const mean = norm === 'layer' ? row.reduce((t, v) => t + v, 0) / inner : 0;
        const scale = norm ? 1 / Math.sqrt(row.reduce((t, v) => t + (v - mean) ** 2, 0) / inner + 1e-5) : 1;
        const h = row.map((v) => (v - mean) * scale);
        const dot = (col: number) => h.reduce((t, v, k) => t + v * rounded[k * width + col], b[col]);
        for (let n = 0; n < out; n++) expected[m * out + n] = gated ? f(dot(n)) * dot(n + out) : f(dot(n));
      }
      const t = {
        x: tf.tensor2d(x, [rows, inner]),
        rowsF32: tf.transpose(tf.tensor2d(w, [inner, width])) as tf.Tensor2D,
        bias: tf.tensor1d(b),
      };
      const weightRows = packF16Rows(t.rowsF32);
      const before = tf.memory().numTensors;
      const y = rowLinear(
        t.x,
        { weightRows, bias: t.bias },
        {
          norm: norm ? { kind: norm, eps: 1e-5 } : undefined,
          activation,
          gated,
        },
      );
      expect(tf.memory().numTensors).toBe(before + 1);
      const got = await y.data();
      expect(maxAbsDiff(got, expected)).toBeLessThan(2e-5);
      tf.dispose([...Object.values(t), weightRows, y]);
    },
  );

  test('quantizeRowsQ8: int8 quads with a scale per 32 inputs, every weight within half a step', async () => {
    const rng = seedrandom('q8-pack');
    const [rows, cols] = [5, 96];
    const w = randomArray(rows * cols, rng, 0.3);
    w.fill(0, 32, 64); // an all-zero block: scale 0, quants 0
    const weight = tf.tensor2d(w, [rows, cols]);
    const { weightRows, scales } = quantizeRowsQ8(weight);
    const read = await readPacked('q8', { weightRows, scales }, rows, cols);
    for (let r = 0; r < rows; r++) {
      for (let b = 0; b < cols / 32; b++) {
        const block = Array.from(w.subarray(r * cols + 32 * b, r * cols + 32 * (b + 1)));
        const scale = read.d(r, 32 * b);
        expect(scale).toBeCloseTo(Math.max(...block.map(Math.abs)) / 127, 7);
        for (let i = 0; i < 32; i++) {
          const q = read.q(r, 32 * b + i);
          expect(Math.abs(q)).toBeLessThanOrEqual(127);
          expect(Math.abs(block[i] - q * scale)).toBeLessThanOrEqual(scale / 2 + 1e-7);
        }
      }
    }
    expect(() => quantizeRowsQ8(tf.zeros([2, 48]) as tf.Tensor2D)).toThrow(/multiple of 32/);
    tf.dispose([weight, weightRows, scales]);
  });

  test('quantizeRowsQ4: 4-bit octets with a scale per 32 inputs (GGUF Q4_0’s rule), every weight within half a step', async () => {
    const rng = seedrandom('q4-pack');
    const [rows, cols] = [5, 128];
    const w = randomArray(rows * cols, rng, 0.3);
    w.fill(0, 32, 64); // an all-zero block: scale 0, every q 8
    for (let i = 64; i < 96; i++) w[i] = -Math.abs(w[i]); // largest magnitude negative: d > 0
    w[96] = 1; // the other sign nearly as large: the scale is widened so −0.99 is not clipped
    w[97] = -0.99;
    const weight = tf.tensor2d(w, [rows, cols]);
    const { weightRows, scales } = quantizeRowsQ4(weight);
    const read = await readPacked('q4', { weightRows, scales }, rows, cols);
    const d = await scales.data();
    // The stored nibble, 0…15.
    const q = (r: number, c: number) => read.q(r, c) + 8;
    for (let r = 0; r < rows; r++) {
      for (let b = 0; b < cols / 32; b++) {
        const block = Array.from(w.subarray(r * cols + 32 * b, r * cols + 32 * (b + 1)));
        const top = block.reduce((t, v) => (Math.abs(v) > Math.abs(t) ? v : t), 0);
        const other = Math.max(0, ...block.map((v) => -Math.sign(top) * v));
        const scale = d[r * (cols / 32) + b];
        const expected = top === 0 ? 0 : -Math.sign(top) * Math.max(Math.abs(top) / 8, other / 7.5);
        expect(scale).toBeCloseTo(expected, 7);
        for (let i = 0; i < 32; i++) {
          const value = q(r, 32 * b + i);
          expect(value).toBeGreaterThanOrEqual(0);
          expect(value).toBeLessThanOrEqual(15);
          expect(Math.abs(block[i] - (value - 8) * scale)).toBeLessThanOrEqual(Math.abs(scale) / 2 + 1e-7);
          if (top === 0) expect(value).toBe(8);
        }
      }
    }
    expect(d[1]).toBe(0);
    expect(d[2]).toBeGreaterThan(0);
    expect(-d[3] * 7.5).toBeCloseTo(0.99, 6); // 0.99/7.5 > 1/8
    expect(() => quantizeRowsQ4(tf.zeros([2, 48]) as tf.Tensor2D)).toThrow(/multiple of 32/);
    tf.dispose([weight, weightRows, scales]);
  });

  test.each(
    (['q8', 'q4'] as const).flatMap((format) =>
      (
        [
          [1, 64, 48, 'rms', 'silu', true],
          [3, 96, 40, undefined, undefined, false],
          [17, 128, 33, 'layer', 'gelu_tanh', false],
          [2, 512, 9, 'rms', 'silu', true],
        ] as const
      ).map((c) => [format, ...c] as const),
    ),
  )(
    'rowLinear on %s weights of %i×%i by %i equals float64 on the dequantized weights (norm %s, %s, gated %s)',
    async (format, rows, inner, out, norm, activation, gated) => {
      const rng = seedrandom(`${format}-${rows}-${inner}-${out}`);
      const width = gated ? 2 * out : out;
      const x = randomArray(rows * inner, rng, 2);
      const w = randomArray(inner * width, rng, 0.1);
      const b = randomArray(width, rng);
      const t = {
        x: tf.tensor2d(x, [rows, inner]),
        rowsF32: tf.transpose(tf.tensor2d(w, [inner, width])) as tf.Tensor2D,
        bias: tf.tensor1d(b),
      };
      const q = format === 'q8' ? quantizeRowsQ8(t.rowsF32) : quantizeRowsQ4(t.rowsF32);
      // The weights the product stands for, read back: row n, input k.
      const dequantized = (await readPacked(format, q, width, inner)).value;
      const f = activation ? ACTIVATIONS[activation] : (v: number) => v;
      const expected = new Float64Array(rows * out);
      for (let m = 0; m < rows; m++) {
        const row = Array.from(x.subarray(m * inner, (m + 1) * inner));
        const mean = norm === 'layer' ? row.reduce((a, v) => a + v, 0) / inner : 0;
        const scale = norm ? 1 / Math.sqrt(row.reduce((a, v) => a + (v - mean) ** 2, 0) / inner + 1e-5) : 1;
        const h = row.map((v) => (v - mean) * scale);
        const dot = (n: number) => h.reduce((a, v, k) => a + v * dequantized(n, k), b[n]);
        for (let n = 0; n < out; n++) expected[m * out + n] = gated ? f(dot(n)) * dot(n + out) : f(dot(n));
      }
      const before = tf.memory().numTensors;
      const y = rowLinear(
        t.x,
        { ...q, bias: t.bias },
        {
          norm: norm ? { kind: norm, eps: 1e-5 } : undefined,
          activation,
          gated,
        },
      );
      expect(tf.memory().numTensors).toBe(before + 1);
      expect(maxAbsDiff(await y.data(), expected)).toBeLessThan(2e-5);
      tf.dispose([...Object.values(t), q.weightRows, q.scales, y]);
    },
  );

  test('rowLinear names shapes it cannot multiply', () => {
    const x = tf.zeros([2, 8]) as tf.Tensor2D;
    const weightRows = tf.zeros([4, 7]) as tf.Tensor2D;
    const before = tf.memory().numTensors;
    expect(() => rowLinear(x, { weightRows })).toThrow(/cannot multiply \[2,8\] by \[4,7\]ᵀ/);
    expect(() => rowLinear(x, { weightRows }, { gated: true })).toThrow(/gated layer needs an activation/);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, weightRows]);
  });

  test.each([true, false])(
    'embedRows looks up tokens and (%s) positions from each row’s start, with ids on the device or from the host',
    async (withPositions) => {
      const rng = seedrandom(`embed${withPositions}`);
      const [vocab, hidden, maxPositions, steps] = [50, 12, 40, 3];
      const table = randomArray(vocab * hidden, rng);
      const positions = randomArray(maxPositions * hidden, rng);
      const reference = (starts: number[], ids: Int32Array) => {
        const expected = new Float64Array(ids.length * hidden);
        ids.forEach((id, i) => {
          const position = starts[Math.floor(i / steps)] + (i % steps);
          for (let c = 0; c < hidden; c++)
            expected[i * hidden + c] =
              table[id * hidden + c] + (withPositions ? positions[position * hidden + c] : 0);
        });
        return expected;
      };
      const t = {
        table: tf.tensor2d(table, [vocab, hidden]),
        positions: tf.tensor2d(positions, [maxPositions, hidden]),
      };
      const positionTable = withPositions ? t.positions : undefined;
      // 21 rows: more starts than uniforms carry, so they go in a buffer; 5 rows of 3: 15 ids, which do not.
      for (const rows of [21, 5]) {
        const starts = Array.from({ length: rows }, (_, r) => (r * 17) % 37);
        const ids = Int32Array.from({ length: rows * steps }, () => Math.floor(rng() * vocab));
        const expected = reference(starts, ids);
        const onDevice = tf.tensor1d(ids, 'int32');
        const before = tf.memory().numTensors;
        for (const given of [onDevice, ids, Array.from(ids)]) {
          const out = embedRows(t.table, given, positionTable, starts, steps);
          // One float32 addition: within its rounding of the float64 sum.
          expect(maxAbsDiff(await out.data(), expected)).toBeLessThan(1e-6);
          out.dispose();
        }
        // Host ids written to a buffer (more than 16) are freed after the dispatch.
        expect(tf.memory().numTensors).toBe(before);
        expect(() => embedRows(t.table, onDevice, undefined, starts, 2)).toThrow(
          new RegExp(`do not give ${rows} rows of 2 steps`),
        );
        expect(() => embedRows(t.table, ids, undefined, starts, 2)).toThrow(
          new RegExp(`\\[${rows * steps}\\] from the host do not give ${rows} rows of 2 steps`),
        );
        onDevice.dispose();
      }
      tf.dispose(Object.values(t));
    },
  );

  test.each(['f16', 'q8', 'q4'] as const)(
    'embedRows looks up rows of a %s-packed table: each value as the format unpacks it, plus its position',
    async (format) => {
      const rng = seedrandom(`embed-${format}`);
      const [vocab, hidden, maxPositions, steps] = [40, 64, 30, 2];
      const table = randomArray(vocab * hidden, rng, 0.5);
      const positions = randomArray(maxPositions * hidden, rng);
      const floats = tf.tensor2d(table, [vocab, hidden]);
      const positionTable = tf.tensor2d(positions, [maxPositions, hidden]);
      const packed =
        format === 'f16'
          ? { weightRows: packF16Rows(floats) }
          : format === 'q8'
            ? quantizeRowsQ8(floats)
            : quantizeRowsQ4(floats);
      // What the table stands for, read back and unpacked here.
      const { value } = await readPacked(format, packed, vocab, hidden);
      const rows = 3;
      const starts = [0, 11, 27];
      const ids = Int32Array.from({ length: rows * steps }, () => Math.floor(rng() * vocab));
      const expected = new Float64Array(ids.length * hidden);
      ids.forEach((id, i) => {
        const position = starts[Math.floor(i / steps)] + (i % steps);
        for (let c = 0; c < hidden; c++)
          expected[i * hidden + c] = value(id, c) + positions[position * hidden + c];
      });
      const before = tf.memory().numTensors;
      const out = embedRows(packed, ids, positionTable, starts, steps);
      expect(maxAbsDiff(await out.data(), expected)).toBeLessThan(1e-6);
      // And close to the float table it packs (not the same: the format rounds).
      const err = maxAbsDiff(
        await out.data(),
        Float64Array.from(
          expected,
          (v, i) =>
            v -
            value(ids[Math.floor(i / hidden)], i % hidden) +
            table[ids[Math.floor(i / hidden)] * hidden + (i % hidden)],
        ),
      );
      expect(err).toBeGreaterThan(0);
      expect(err).toBeLessThan(format === 'q4' ? 0.5 / 7.5 : 0.01);
      out.dispose();
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([
        floats,
        positionTable,
        packed.weightRows,
        ...('scales' in packed ? [packed.scales as tf.Tensor2D] : []),
      ]);
    },
  );

  test('rotatePacked rotates the query and key heads of a packed projection (rotate-half), leaving values out', async () => {
    const rng = seedrandom('rotary');
    const [batch, steps, heads, kvHeads, dim] = [2, 3, 4, 2, 8];
    const all = heads + 2 * kvHeads;
    const rotated = heads + kvHeads;
    const qkv = randomArray(batch * steps * all * dim, rng);
    const inv = rotaryInverseFrequencies({ theta: 10000, headDim: dim });
    const positions = [0, 1, 2, 7, 8, 900];
    const cosSin = rotaryCosSin(inv, positions);
    const expected = new Float64Array(batch * steps * rotated * dim);
    const half = dim / 2;
    for (let p = 0; p < batch * steps; p++) {
      for (let h = 0; h < rotated; h++) {
        for (let d = 0; d < dim; d++) {
          const x = (j: number) => qkv[(p * all + h) * dim + j];
          const i = d % half;
          // cos and sin of the position's angle, checked against Math.cos/sin of it as well.
          const angle = Math.fround(positions[p] * inv[i]);
          const [c, s] = [cosSin[p * dim + i], cosSin[p * dim + half + i]];
          expect(Math.abs(c - Math.cos(angle)) + Math.abs(s - Math.sin(angle))).toBeLessThan(1e-7);
          expected[(p * rotated + h) * dim + d] =
            d < half ? x(d) * c - x(d + half) * s : x(d) * c + x(d - half) * s;
        }
      }
    }
    const t = {
      qkv: tf.tensor4d(qkv, [batch, steps, all, dim]),
      cosSin: tf.tensor2d(cosSin, [batch * steps, dim]),
    };
    const out = rotatePacked(t.qkv, t.cosSin, rotated);
    expect(out.shape).toEqual([batch, steps, rotated, dim]);
    expect(maxAbsDiff(await out.data(), expected)).toBeLessThan(1e-6);
    expect(() => rotatePacked(t.qkv, t.cosSin, all + 1)).toThrow(/cannot rotate 9 heads of \[2,3,8,8\]/);
    tf.dispose([...Object.values(t), out]);
  });

  test('greedyRows gives greedyToken of each row, and −1 where greedyToken refuses it', async () => {
    const rng = seedrandom('greedy-rows');
    // Over 2,048 (one round of 256 threads × 8 loads) and not a multiple of 8.
    const vocab = 5003;
    const rows: Float32Array[] = Array.from({ length: 10 }, () => randomArray(vocab, rng, 5));
    rows[1][10] = 9;
    rows[1][900] = 9; // a tie: the first index wins
    rows[2][3] = Number.NaN;
    rows[3][500] = Number.POSITIVE_INFINITY;
    rows[4].fill(Number.NEGATIVE_INFINITY);
    rows[5][0] = Number.NEGATIVE_INFINITY;
    rows[5][vocab - 1] = 7; // the last index
    rows[6].fill(-2); // all equal: index 0
    rows[7][12] = 9;
    rows[7][13] = 9; // a tie within one thread's loads
    rows[8][2058] = 9;
    rows[8][10] = 9; // a tie across one thread's rounds (10 + 2,048)
    rows[9][4999] = Number.NaN; // refused in the last round
    const logits = tf.tensor3d(Float32Array.from(rows.flatMap((r) => Array.from(r))), [
      1,
      rows.length,
      vocab,
    ]);
    const ids = greedyRows(logits);
    const expected = rows.map((r) => {
      try {
        return greedyToken(r);
      } catch {
        return -1;
      }
    });
    expect(expected.slice(1, 10)).toEqual([10, -1, -1, -1, vocab - 1, 0, 12, 10, -1]);
    expect(Array.from(await ids.data())).toEqual(expected);
    tf.dispose([logits, ids]);
  });
});

// Dawn skips a command that fails validation and carries on: results would be silently wrong.
afterAll(() => {
  if (unavailable === undefined) expect(webGpuErrors()).toEqual([]);
});

/** The f16 value nearest to v (ties to even; subnormals below 2⁻¹⁴), by exact arithmetic on doubles. */
function nearestHalf(v: number): number {
  if (v === 0 || !Number.isFinite(v)) return v;
  const exponent = Math.max(Math.floor(Math.log2(Math.abs(v))), -14);
  const quantum = 2 ** (exponent - 10);
  const q = v / quantum;
  let r = Math.round(q);
  // Math.round takes a tie up (toward +∞): where that lands on an odd quantum, the even one is below.
  if (Math.abs(q - Math.trunc(q)) === 0.5 && r % 2 !== 0) r -= 1;
  return r * quantum;
}
