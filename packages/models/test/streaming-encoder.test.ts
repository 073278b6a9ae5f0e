import {
  type Activation,
  CacheOverflowError,
  concatFloat32,
  DisposedError,
  InvalidArgumentError,
  initBackend,
} from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { maxAbsDiff } from '../../../test-support/max-abs-diff.js';
import { frameCacheMode } from '../src/streaming-encoder/frame-cache.js';
import {
  createStreamingEncoder,
  disposeStreamingEncoderWeights,
  randomStreamingEncoderWeights,
  STREAMING_ENCODER_10M,
  STREAMING_ENCODER_TINY,
  type StreamingEncoder,
  type StreamingEncoderConfig,
  type StreamingEncoderWeights,
  streamingEncoderOutputFrames,
  streamingEncoderParameterCount,
} from '../src/streaming-encoder/index.js';

/** Small seeded LCG (Numerical Recipes constants), so a failing case reproduces. */
function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Standard normal values (Box–Muller), like normalised log-mel features. */
function randomFrames(count: number, random: () => number): Float32Array {
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const u = Math.max(random(), 1e-12);
    out[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
  }
  return out;
}

/** Cuts n into random chunk lengths in [1, max], with many 1s and sizes not multiple of 4. */
function randomSplit(n: number, max: number, random: () => number): number[] {
  const chunks: number[] = [];
  for (let left = n; left > 0; ) {
    const size = Math.min(left, random() < 0.3 ? 1 : 1 + Math.floor(random() * max));
    chunks.push(size);
    left -= size;
  }
  return chunks;
}

interface Run {
  /** [batch, outSteps, vocab] flattened. */
  values: Float32Array;
  /** Output frames returned by each call. */
  counts: number[];
}

/** frames: [batch, total, nMels] flattened row-major; fed in `chunks` (lengths summing to total). */
function encode(
  encoder: StreamingEncoder,
  frames: Float32Array,
  batch: number,
  chunks: number[],
  leftContext?: number,
): Run {
  const nMels = encoder.inputDim;
  const total = frames.length / batch / nMels;
  const state = encoder.createState({ batch, maxLength: total, leftContext });
  const perRow: Float32Array[][] = Array.from({ length: batch }, () => []);
  const counts: number[] = [];
  let at = 0;
  try {
    for (const steps of chunks) {
      const chunk = new Float32Array(batch * steps * nMels);
      for (let r = 0; r < batch; r++) {
        const from = (r * total + at) * nMels;
        chunk.set(frames.subarray(from, from + steps * nMels), r * steps * nMels);
      }
      at += steps;
      const input = tf.tensor3d(chunk, [batch, steps, nMels]);
      const { outputs } = encoder.extendStep(state, input);
      input.dispose();
      const [, outSteps, dim] = outputs.shape;
      const data = outputs.dataSync() as Float32Array;
      outputs.dispose();
      counts.push(outSteps);
      for (let r = 0; r < batch; r++)
        perRow[r].push(data.slice(r * outSteps * dim, (r + 1) * outSteps * dim));
    }
  } finally {
    encoder.disposeState(state);
  }
  const rows = perRow.map((parts) => concatFloat32(parts));
  return { values: concatFloat32(rows), counts };
}

// ---------------------------------------------------------------------------
// An independent reference: the architecture written out in plain float64 JS,
// frame by frame, with the attention window as a loop bound instead of a mask.
// ---------------------------------------------------------------------------

interface Snapshot {
  conv: { filter: Float32Array; bias: Float32Array; input: number; output: number }[];
  layers: {
    attnNorm: [Float32Array, Float32Array];
    q: [Float32Array, Float32Array];
    k: [Float32Array, Float32Array];
    v: [Float32Array, Float32Array];
    o: [Float32Array, Float32Array];
    mlpNorm: [Float32Array, Float32Array];
    up: [Float32Array, Float32Array];
    down: [Float32Array, Float32Array];
  }[];
  finalNorm: [Float32Array, Float32Array];
  head: [Float32Array, Float32Array];
}

function snapshot(w: StreamingEncoderWeights): Snapshot {
  const read = (t: tf.Tensor | undefined) =>
    t ? (t.dataSync() as Float32Array).slice() : new Float32Array();
  const pair = (x: { weight: tf.Tensor; bias?: tf.Tensor }): [Float32Array, Float32Array] => [
    read(x.weight),
    read(x.bias),
  ];
  return {
    conv: [w.conv1, w.conv2].map((c) => ({
      filter: read(c.filter),
      bias: read(c.bias),
      input: c.filter.shape[1],
      output: c.filter.shape[2],
    })),
    layers: w.layers.map((l) => ({
      attnNorm: pair(l.attnNorm),
      q: pair(l.q),
      k: pair(l.k),
      v: pair(l.v),
      o: pair(l.o),
      mlpNorm: pair(l.mlpNorm),
      up: pair(l.up),
      down: pair(l.down),
    })),
    finalNorm: pair(w.finalNorm),
    head: pair(w.ctcHead),
  };
}

/** erf with |error| < 1.2e-7 (Numerical Recipes' erfc Chebyshev fit). */
function erf(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const poly =
    -z * z -
    1.26551223 +
    t *
      (1.00002368 +
        t *
          (0.37409196 +
            t *
              (0.09678418 +
                t *
                  (-0.18628806 +
                    t *
                      (0.27886807 +
                        t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  const erfc = t * Math.exp(poly);
  return x >= 0 ? 1 - erfc : erfc - 1;
}

const ACTIVATIONS: Record<Activation, (x: number) => number> = {
  gelu: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
  gelu_tanh: (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))),
  silu: (x) => x / (1 + Math.exp(-x)),
  relu: (x) => Math.max(0, x),
};

/** x [rows][in] · W [in, out] + b. */
function dense(x: number[][], [w, b]: [Float32Array, Float32Array]): number[][] {
  const inDim = x[0].length;
  const out = w.length / inDim;
  return x.map((row) => {
    const y = new Array<number>(out).fill(0);
    for (let o = 0; o < out; o++) {
      let sum = b.length ? b[o] : 0;
      for (let i = 0; i < inDim; i++) sum += row[i] * w[i * out + o];
      y[o] = sum;
    }
    return y;
  });
}

function norm(x: number[][], [w, b]: [Float32Array, Float32Array], eps: number): number[][] {
  return x.map((row) => {
    const mean = row.reduce((a, v) => a + v, 0) / row.length;
    const variance = row.reduce((a, v) => a + (v - mean) ** 2, 0) / row.length;
    return row.map((v, i) => ((v - mean) / Math.sqrt(variance + eps)) * w[i] + b[i]);
  });
}

/** Causal conv, kernel 3, stride 2, one zero frame on the left: output i reads frames 2i−1, 2i, 2i+1. */
function conv(x: number[][], c: Snapshot['conv'][number], act: (x: number) => number): number[][] {
  const count = Math.floor(x.length / 2);
  const out: number[][] = [];
  for (let i = 0; i < count; i++) {
    const y = Array.from(c.bias);
    for (let k = 0; k < 3; k++) {
      const frame = x[2 * i - 1 + k];
      if (!frame) continue;
      for (let ci = 0; ci < c.input; ci++) {
        for (let o = 0; o < c.output; o++) y[o] += frame[ci] * c.filter[(k * c.input + ci) * c.output + o];
      }
    }
    out.push(y.map(act));
  }
  return out;
}

function rotate(vec: number[], position: number, theta: number): number[] {
  const half = vec.length / 2;
  const out = vec.slice();
  for (let i = 0; i < half; i++) {
    const angle = position * theta ** ((-2 * i) / vec.length);
    const [c, s] = [Math.cos(angle), Math.sin(angle)];
    out[i] = vec[i] * c - vec[i + half] * s;
    out[i + half] = vec[i + half] * c + vec[i] * s;
  }
  return out;
}

/** One batch row: frames [T][nMels] → logits [floor(T/4)][vocab]. */
function reference(
  config: StreamingEncoderConfig,
  w: Snapshot,
  frames: number[][],
  leftContext: number,
): number[][] {
  const { heads, dModel, normEps: eps } = config;
  const hd = dModel / heads;
  const act = ACTIVATIONS[config.activation];
  let x = conv(conv(frames, w.conv[0], act), w.conv[1], act);
  const T = x.length;
  for (const layer of w.layers) {
    const h = norm(x, layer.attnNorm, eps);
    let [q, k] = [dense(h, layer.q), dense(h, layer.k)];
    const v = dense(h, layer.v);
    if (config.positions.kind === 'rotary') {
      const theta = config.positions.theta;
      const rope = (m: number[][]) =>
        m.map((row, j) =>
          Array.from({ length: heads }, (_, hh) =>
            rotate(row.slice(hh * hd, (hh + 1) * hd), j, theta),
          ).flat(),
        );
      [q, k] = [rope(q), rope(k)];
    }
    const attended = x.map((_, j) => {
      const out = new Array<number>(dModel).fill(0);
      for (let hh = 0; hh < heads; hh++) {
        const from = Math.max(0, j - leftContext);
        const scores: number[] = [];
        for (let p = from; p <= j; p++) {
          let dot = 0;
          for (let d = 0; d < hd; d++) dot += q[j][hh * hd + d] * k[p][hh * hd + d];
          scores.push(dot / Math.sqrt(hd));
        }
        const top = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - top));
        const sum = e.reduce((a, b) => a + b, 0);
        for (let p = from; p <= j; p++) {
          for (let d = 0; d < hd; d++) out[hh * hd + d] += (e[p - from] / sum) * v[p][hh * hd + d];
        }
      }
      return out;
    });
    x = x.map((row, j) => row.map((val, i) => val + dense([attended[j]], layer.o)[0][i]));
    const up = dense(norm(x, layer.mlpNorm, eps), layer.up).map((row) => row.map(act));
    const down = dense(up, layer.down);
    x = x.map((row, j) => row.map((val, i) => val + down[j][i]));
  }
  expect(x.length).toBe(T);
  return dense(norm(x, w.finalNorm, eps), w.head);
}

function referenceBatch(
  config: StreamingEncoderConfig,
  w: Snapshot,
  frames: Float32Array,
  batch: number,
  leftContext: number,
): Float32Array {
  const total = frames.length / batch / config.nMels;
  const rows: number[] = [];
  for (let r = 0; r < batch; r++) {
    const rowFrames = Array.from({ length: total }, (_, t) =>
      Array.from(frames.subarray((r * total + t) * config.nMels, (r * total + t + 1) * config.nMels)),
    );
    rows.push(...reference(config, w, rowFrames, leftContext).flat());
  }
  return Float32Array.from(rows);
}

// ---------------------------------------------------------------------------

/**
 * Tensors the engine tracks and buffers the backend holds: the encoder runs
 * most kernels without the engine, so a leak could show in the second only.
 */
function allocated() {
  return { tensors: tf.memory().numTensors, buffers: tf.backend().numDataIds() };
}

const NO_ROTARY: StreamingEncoderConfig = {
  ...STREAMING_ENCODER_TINY,
  positions: { kind: 'none' },
  layers: 3,
};

describe('streaming encoder', () => {
  let baseline = { tensors: 0, buffers: 0 };
  const models: { config: StreamingEncoderConfig; encoder: StreamingEncoder; weights: Snapshot }[] = [];

  beforeAll(async () => {
    await initBackend({ backend: 'wasm' });
    baseline = allocated();
    for (const [config, seed] of [
      [STREAMING_ENCODER_TINY, 7],
      [NO_ROTARY, 11],
    ] as const) {
      const w = randomStreamingEncoderWeights(config, seed);
      models.push({ config, weights: snapshot(w), encoder: createStreamingEncoder(config, w) });
    }
  });

  afterAll(() => {
    for (const m of models) m.encoder.dispose();
    // Every weight, state and intermediate of the whole file is gone.
    expect(allocated()).toEqual(baseline);
  });

  it('streamed in random chunks (1 frame, sizes not multiple of 4) equals one offline call', () => {
    const random = seeded(42);
    for (const { encoder, config } of models) {
      for (const [batch, total, leftContext] of [
        [1, 101, undefined],
        [2, 67, undefined],
        [1, 90, 5],
        [2, 53, 0],
      ] as const) {
        const frames = randomFrames(batch * total * config.nMels, random);
        const offline = encode(encoder, frames, batch, [total], leftContext);
        expect(offline.counts).toEqual([Math.floor(total / 4)]);
        const splits = [
          Array<number>(total).fill(1),
          randomSplit(total, 11, random),
          randomSplit(total, 30, random),
          [3, 5, 6, 7, total - 21],
        ];
        for (const chunks of splits) {
          const streamed = encode(encoder, frames, batch, chunks, leftContext);
          expect(maxAbsDiff(streamed.values, offline.values)).toBeLessThan(1e-5);
          // Exact accounting: after each call, floor(consumed / 4) output frames in all.
          let consumed = 0;
          let produced = 0;
          chunks.forEach((steps, i) => {
            consumed += steps;
            produced += streamed.counts[i];
            expect(produced).toBe(streamingEncoderOutputFrames(consumed));
          });
        }
      }
    }
  });

  it.each([
    ['written in place', false],
    ['concatenated (as on webgpu)', true],
  ])(
    'equals a naive float64 reference with a banded attention window, offline and streamed (caches %s)',
    (_, concatenate) => {
      const random = seeded(3);
      frameCacheMode.concatenate = concatenate;
      onTestFinished(() => {
        frameCacheMode.concatenate = false;
      });
      for (const { encoder, config, weights } of models) {
        for (const leftContext of [0, 1, 3, 6, Number.POSITIVE_INFINITY]) {
          const batch = 2;
          // 32 output frames: caches written in place both grow (past 16) and drop frames no query sees.
          const total = 130;
          const frames = randomFrames(batch * total * config.nMels, random);
          const expected = referenceBatch(config, weights, frames, batch, leftContext);
          const offline = encode(encoder, frames, batch, [total], leftContext);
          expect(maxAbsDiff(offline.values, expected)).toBeLessThan(1e-4);
          const streamed = encode(encoder, frames, batch, randomSplit(total, 9, random), leftContext);
          expect(maxAbsDiff(streamed.values, expected)).toBeLessThan(1e-4);
        }
      }
    },
  );

  it('every activation (folded into the matmuls around it) equals the reference, offline and streamed', () => {
    const random = seeded(13);
    for (const activation of ['relu', 'silu', 'gelu_tanh'] as const) {
      const config: StreamingEncoderConfig = { ...STREAMING_ENCODER_TINY, activation };
      const before = allocated();
      const w = randomStreamingEncoderWeights(config, 17);
      const weights = snapshot(w);
      const encoder = createStreamingEncoder(config, w);
      const batch = 2;
      const total = 45;
      const frames = randomFrames(batch * total * config.nMels, random);
      const expected = referenceBatch(config, weights, frames, batch, Number.POSITIVE_INFINITY);
      const offline = encode(encoder, frames, batch, [total]);
      expect(maxAbsDiff(offline.values, expected)).toBeLessThan(1e-4);
      const streamed = encode(encoder, frames, batch, randomSplit(total, 9, random));
      expect(maxAbsDiff(streamed.values, offline.values)).toBeLessThan(1e-5);
      encoder.dispose();
      expect(allocated()).toEqual(before);
    }
  });

  it('leftContext changes the output (the window is not a no-op) and reaches exactly N frames back', () => {
    const { encoder, config, weights } = models[0];
    const frames = randomFrames(48 * config.nMels, seeded(5));
    const full = encode(encoder, frames, 1, [48]).values;
    const windowed = encode(encoder, frames, 1, [48], 2).values;
    expect(maxAbsDiff(full, windowed)).toBeGreaterThan(1e-2);
    // A window one frame shorter or longer than asked would miss the reference.
    for (const wrong of [1, 3]) {
      const other = referenceBatch(config, weights, frames, 1, wrong);
      expect(maxAbsDiff(windowed, other)).toBeGreaterThan(1e-3);
    }
  });

  it('is causal: changing frames from t on never changes output frames j with 4j+3 < t', () => {
    const random = seeded(9);
    for (const { encoder, config } of models) {
      for (const leftContext of [undefined, 4]) {
        const total = 80;
        const frames = randomFrames(total * config.nMels, random);
        const before = encode(encoder, frames, 1, [total], leftContext).values;
        for (const t of [0, 1, 17, 40, 43, 79]) {
          const changed = frames.slice();
          changed.set(randomFrames((total - t) * config.nMels, random), t * config.nMels);
          const after = encode(encoder, changed, 1, randomSplit(total, 13, random), leftContext).values;
          const vocab = config.vocabSize;
          const settled = Math.floor(t / 4); // output frames j with 4j + 3 < t
          expect(
            maxAbsDiff(after.subarray(0, settled * vocab), before.subarray(0, settled * vocab)),
          ).toBeLessThan(1e-6);
          // and the frame that reads t does change
          if (settled < total / 4) {
            const j = settled;
            expect(
              maxAbsDiff(
                after.subarray(j * vocab, (j + 1) * vocab),
                before.subarray(j * vocab, (j + 1) * vocab),
              ),
            ).toBeGreaterThan(1e-4);
          }
        }
      }
    }
  });

  it('rejects bad input with clear errors, leaves the state unchanged and leaks nothing', () => {
    const { encoder, config } = models[0];
    const before = allocated();
    const frames = randomFrames(2 * 20 * config.nMels, seeded(1));
    const expected = encode(encoder, frames, 2, [10, 10]).values;
    const state = encoder.createState({ batch: 2, maxLength: 20 });
    const take = (from: number, steps: number) => {
      const rows = [0, 1].map((r) =>
        frames.subarray((r * 20 + from) * config.nMels, (r * 20 + from + steps) * config.nMels),
      );
      return tf.tensor3d(concatFloat32(rows), [2, steps, config.nMels]);
    };
    const outputs: Float32Array[][] = [[], []];
    const step = (input: tf.Tensor3D) => {
      try {
        const { outputs: out } = encoder.extendStep(state, input);
        const data = out.dataSync() as Float32Array;
        const half = data.length / 2;
        outputs[0].push(data.slice(0, half));
        outputs[1].push(data.slice(half));
        out.dispose();
      } finally {
        input.dispose();
      }
    };
    step(take(0, 10));
    const wrongMels = tf.zeros([2, 4, config.nMels + 1]) as tf.Tensor3D;
    const wrongBatch = tf.zeros([1, 4, config.nMels]) as tf.Tensor3D;
    const wrongRank = tf.zeros([2, config.nMels]) as unknown as tf.Tensor3D;
    const wrongType = tf.zeros([2, 4, config.nMels], 'int32') as tf.Tensor3D;
    expect(() => encoder.extendStep(state, wrongMels)).toThrow(InvalidArgumentError);
    expect(() => encoder.extendStep(state, wrongMels)).toThrow(/nMels 8.*got float32 \[2,4,9\]/);
    expect(() => encoder.extendStep(state, wrongBatch)).toThrow(/batch 2/);
    expect(() => encoder.extendStep(state, wrongRank)).toThrow(InvalidArgumentError);
    expect(() => encoder.extendStep(state, wrongType)).toThrow(/int32/);
    expect(() => encoder.extendStep(state, [] as unknown as tf.Tensor3D)).toThrow(InvalidArgumentError);
    expect(() => encoder.extendStep({} as never, wrongMels)).toThrow(InvalidArgumentError);
    tf.dispose([wrongMels, wrongBatch, wrongRank, wrongType]);
    // 10 consumed + 11 > maxLength 20
    const tooMany = tf.zeros([2, 11, config.nMels]) as tf.Tensor3D;
    expect(() => encoder.extendStep(state, tooMany)).toThrow(CacheOverflowError);
    expect(() => encoder.extendStep(state, tooMany)).toThrow(/maxLength 20/);
    tooMany.dispose();
    // After all those errors the state continues as if they had not happened.
    expect(Array.from(state.lengths)).toEqual([10, 10]);
    step(take(10, 10));
    expect(maxAbsDiff(concatFloat32([...outputs[0], ...outputs[1]]), expected)).toBeLessThan(1e-5);
    encoder.disposeState(state);
    encoder.disposeState(state); // idempotent
    const late = take(0, 4);
    expect(() => encoder.extendStep(state, late)).toThrow(DisposedError);
    expect(() => encoder.extendStep(state, late)).toThrow(/disposed/);
    late.dispose();
    for (const bad of [
      { batch: 0, maxLength: 10 },
      { batch: 1, maxLength: 1.5 },
      { batch: 1, maxLength: 10, leftContext: -1 },
      { batch: 1, maxLength: 10, leftContext: 2.5 },
    ]) {
      expect(() => encoder.createState(bad)).toThrow(InvalidArgumentError);
    }
    expect(allocated()).toEqual(before);
  });

  it('a tensor error inside the pass frees its intermediates and keeps the state', () => {
    const { encoder, config } = models[0];
    const before = allocated();
    const state = encoder.createState({ batch: 1, maxLength: 100 });
    const input = tf.tensor3d(randomFrames(9 * config.nMels, seeded(2)), [1, 9, config.nMels]);
    encoder.extendStep(state, input).outputs.dispose();
    const held = allocated();
    // A tensor disposed behind the encoder's back makes the pass throw midway.
    const broken = tf.tensor3d(randomFrames(8 * config.nMels, seeded(3)), [1, 8, config.nMels]);
    broken.dispose();
    expect(() => encoder.extendStep(state, broken)).toThrow();
    expect(allocated()).toEqual(held);
    expect(state.lengths[0]).toBe(9);
    encoder.extendStep(state, input).outputs.dispose();
    expect(state.lengths[0]).toBe(18);
    input.dispose();
    encoder.disposeState(state);
    expect(allocated()).toEqual(before);
  });

  it('holds a bounded number of tensors per state, and with leftContext a bounded window', () => {
    const { encoder, config } = models[0];
    const before = allocated();
    const state = encoder.createState({ batch: 1, maxLength: 10_000, leftContext: 5 });
    const input = tf.tensor3d(randomFrames(4 * config.nMels, seeded(4)), [1, 4, config.nMels]);
    const counts = new Set<number>();
    for (let i = 0; i < 30; i++) {
      const { outputs } = encoder.extendStep(state, input);
      expect(outputs.shape).toEqual([1, 1, config.vocabSize]);
      outputs.dispose();
      counts.add(tf.memory().numTensors);
    }
    expect(counts.size).toBe(1); // 2 conv tails + keys and values per layer + the input
    const stateTensors = 1 + 2 + 2 * config.layers;
    expect(allocated()).toEqual({
      tensors: before.tensors + stateTensors,
      buffers: before.buffers + stateTensors,
    });
    expect(state.outputLength).toBe(30);
    input.dispose();
    encoder.disposeState(state);
    expect(allocated()).toEqual(before);
  });

  it('creation validates config and weight shapes; dispose is idempotent and stops the model', () => {
    const before = allocated();
    const weights = randomStreamingEncoderWeights(STREAMING_ENCODER_TINY, 1);
    expect(() => createStreamingEncoder({ ...STREAMING_ENCODER_TINY, nMels: 9 }, weights)).toThrow(
      /conv1.filter must be \[3,9,12\]/,
    );
    expect(() => createStreamingEncoder({ ...STREAMING_ENCODER_TINY, heads: 3 }, weights)).toThrow(
      InvalidArgumentError,
    );
    expect(() => createStreamingEncoder({ ...STREAMING_ENCODER_TINY, layers: 3 }, weights)).toThrow(
      /weights have 2/,
    );
    disposeStreamingEncoderWeights(weights);
    expect(allocated()).toEqual(before);
    const encoder = createStreamingEncoder(
      STREAMING_ENCODER_TINY,
      randomStreamingEncoderWeights(STREAMING_ENCODER_TINY),
    );
    expect(encoder.inputDim).toBe(8);
    expect(encoder.outputDim).toBe(STREAMING_ENCODER_TINY.vocabSize);
    const state = encoder.createState({ batch: 1, maxLength: 8 });
    encoder.dispose();
    encoder.dispose();
    expect(() => encoder.createState({ batch: 1, maxLength: 8 })).toThrow(DisposedError);
    const input = tf.zeros([1, 4, 8]) as tf.Tensor3D;
    expect(() => encoder.extendStep(state, input)).toThrow(DisposedError);
    input.dispose();
    encoder.disposeState(state);
    expect(allocated()).toEqual(before);
  });

  it('the benchmark preset has about 10 M parameters, as many as its weights hold', () => {
    const count = streamingEncoderParameterCount(STREAMING_ENCODER_10M);
    expect(count).toBeGreaterThan(9.5e6);
    expect(count).toBeLessThan(10.5e6);
    const weights = randomStreamingEncoderWeights(STREAMING_ENCODER_TINY);
    const all = [
      weights.conv1.filter,
      weights.conv1.bias,
      weights.conv2.filter,
      weights.conv2.bias,
      ...weights.layers.flatMap((l) =>
        [l.attnNorm, l.q, l.k, l.v, l.o, l.mlpNorm, l.up, l.down].flatMap((x) => [x.weight, x.bias!]),
      ),
      weights.finalNorm.weight,
      weights.finalNorm.bias!,
      weights.ctcHead.weight,
      weights.ctcHead.bias!,
    ];
    expect(all.reduce((n, t) => n + t.size, 0)).toBe(streamingEncoderParameterCount(STREAMING_ENCODER_TINY));
    disposeStreamingEncoderWeights(weights);
  });
});
