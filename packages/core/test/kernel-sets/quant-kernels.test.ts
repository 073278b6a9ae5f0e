import * as tf from '@tensorflow/tfjs-core';
import seedrandom from 'seedrandom';
import { beforeAll, describe, expect, test } from 'vitest';
import { randomArray } from '../../../../test-support/random-arrays.js';
import { initBackend } from '../../src/backend.js';
import { relaxedDotProduct } from '../../src/kernel-sets/wasm/quant-kernels.js';
import {
  quantLinear,
  quantLinearSupported,
  quantRelaxedAvailable,
} from '../../src/kernel-sets/wasm/quant-linear.js';
import {
  dequantizeMatrix,
  disposeQuantMatrix,
  GGUF_BLOCK_BYTES,
  halfAtLeast,
  halfToFloat,
  QUANT_BLOCK,
  type QuantFormat,
  type QuantMatrix,
  quantizeBlock,
  quantizeMatrix,
  quantizeMatrixValues,
  quantMatrixBytes,
  quantMatrixFromGguf,
  quantScales,
} from '../../src/kernel-sets/wasm/quant-matrix.js';
import { requireArena } from '../../src/kernel-sets/wasm/weight-arena.js';

const FORMATS: QuantFormat[] = ['q8', 'q4'];

/** Weights with the shapes quantization meets: mixed scales per block, zero blocks, lone outliers, both signs' extremes. */
function awkwardWeights(n: number, rng: () => number): Float32Array {
  const w = randomArray(n, rng);
  for (let i = 0; i < n; i += QUANT_BLOCK) {
    const kind = Math.floor(rng() * 5);
    for (let j = i; j < Math.min(n, i + QUANT_BLOCK); j++) {
      if (kind === 0) w[j] *= 1e-3;
      else if (kind === 1) w[j] = 0;
      else if (kind === 2) w[j] *= 40;
    }
    if (kind === 3 && i + 1 < n) {
      w[i] = 2.5; // the largest, and its opposite nearly as large: GGUF's Q4_0 would clip it
      w[i + 1] = -2.45;
    }
  }
  return w;
}

/**
 * What x · W + b comes to in float64 from the dequantized W, and a bound on the
 * kernel's distance from it in closed form: the activations' rounding to
 * 8 bits per block of 32 (each within dx/2 of x, dx = amax/127, plus f32's
 * rounding of x·127/amax and of dx: 1e-4·dx covers it), then the f32 sum of
 * in/32 block terms, each a product of the exact integer sum and two scales:
 * (nb + 3) roundings of at most 2⁻²⁴ of Σ|x̂·w| + |b|.
 */
function reference(
  x: Float32Array,
  w: Float32Array,
  bias: Float32Array | undefined,
  rows: number,
  inDim: number,
  outDim: number,
): { expected: Float64Array; tolerance: Float64Array } {
  const blocks = inDim / QUANT_BLOCK;
  const expected = new Float64Array(rows * outDim);
  const tolerance = new Float64Array(rows * outDim);
  for (let r = 0; r < rows; r++) {
    const dx = new Float64Array(blocks);
    for (let b = 0; b < blocks; b++) {
      let amax = 0;
      for (let i = 0; i < QUANT_BLOCK; i++)
        amax = Math.max(amax, Math.abs(x[r * inDim + b * QUANT_BLOCK + i]));
      dx[b] = amax / 127;
    }
    for (let j = 0; j < outDim; j++) {
      let sum = bias ? bias[j] : 0;
      let rounding = 0;
      let magnitude = bias ? Math.abs(bias[j]) : 0;
      for (let i = 0; i < inDim; i++) {
        const xi = x[r * inDim + i];
        const wij = w[i * outDim + j];
        const d = dx[Math.floor(i / QUANT_BLOCK)];
        sum += xi * wij;
        rounding += (0.5 + 1e-4) * d * Math.abs(wij);
        magnitude += (Math.abs(xi) + d) * Math.abs(wij);
      }
      expected[r * outDim + j] = sum;
      tolerance[r * outDim + j] = rounding + (blocks + 3) * 2 ** -24 * magnitude + 1e-30;
    }
  }
  return { expected, tolerance };
}

/** Indices where |got − expected| > tolerance (none, in a passing test). */
function outside(got: ArrayLike<number>, expected: Float64Array, tolerance: Float64Array): number[] {
  expect(got.length).toBe(expected.length);
  const bad: number[] = [];
  for (let i = 0; i < got.length; i++) {
    if (!(Math.abs(got[i] - expected[i]) <= tolerance[i])) bad.push(i);
  }
  return bad;
}

/** GGUF's dequantization of one column's blocks (ggml's dequantize_row_q8_0 / _q4_0 semantics). */
function ggufDequantize(format: QuantFormat, data: Uint8Array, column: number, inDim: number): Float64Array {
  const blocks = inDim / QUANT_BLOCK;
  const size = GGUF_BLOCK_BYTES[format];
  const out = new Float64Array(inDim);
  for (let b = 0; b < blocks; b++) {
    const at = (column * blocks + b) * size;
    const d = halfToFloat(data[at] | (data[at + 1] << 8));
    for (let i = 0; i < QUANT_BLOCK; i++) {
      let q: number;
      if (format === 'q8') q = (data[at + 2 + i] << 24) >> 24;
      else q = (i < 16 ? data[at + 2 + i] & 15 : data[at + 2 + i - 16] >> 4) - 8;
      out[b * QUANT_BLOCK + i] = d * q;
    }
  }
  return out;
}

/** Random GGUF blocks: finite f16 scales of both signs (normal and subnormal), any quants (Q8_0's −128 too). */
function randomGguf(format: QuantFormat, inDim: number, outDim: number, rng: () => number): Uint8Array {
  const blocks = inDim / QUANT_BLOCK;
  const size = GGUF_BLOCK_BYTES[format];
  const data = new Uint8Array(outDim * blocks * size);
  for (let n = 0; n < outDim * blocks; n++) {
    const scale = halfAtLeast(rng() < 0.1 ? rng() * 1e-6 : rng() * 0.05) | (rng() < 0.5 ? 0x8000 : 0);
    data[n * size] = scale & 0xff;
    data[n * size + 1] = scale >> 8;
    for (let i = 2; i < size; i++) data[n * size + i] = Math.floor(rng() * 256);
  }
  return data;
}

describe('quantized wasm kernels', () => {
  beforeAll(async () => {
    await initBackend({ backend: 'wasm' });
  });

  test('they run here, with the relaxed dot product where Node gets it right', () => {
    expect(quantLinearSupported()).toBe(true);
    // Node 20.20's V8 has it (flagged) and the i16x8 form right: the probe passes, the relaxed build loads.
    expect(relaxedDotProduct()).toBe(true);
    expect(quantRelaxedAvailable()).toBe(true);
  });

  test('f16 scales round up: the least half at or above the value', () => {
    const rng = seedrandom('half');
    const values = [0, 2 ** -24, 2 ** -14, 1, 65504, 1 / 127, 0.1, 3e-7, 6.1e-5, 6.2e-5];
    for (let i = 0; i < 2000; i++) values.push(10 ** (-8 + 12 * rng()));
    for (const v of values) {
      const bits = halfAtLeast(v);
      expect(halfToFloat(bits)).toBeGreaterThanOrEqual(v);
      if (bits > 0) expect(halfToFloat(bits - 1)).toBeLessThan(v);
    }
    expect(halfToFloat(0x3c00)).toBe(1);
    expect(halfToFloat(0xc000)).toBe(-2);
    expect(halfToFloat(0x0001)).toBe(2 ** -24);
    expect(() => halfAtLeast(70000)).toThrow(/past f16's range/);
  });

  test.each(FORMATS)('%s: quantize then dequantize is within d/2 of every weight', (format) => {
    const rng = seedrandom(`round-trip-${format}`);
    const [inDim, outDim] = [192, 37];
    const w = awkwardWeights(inDim * outDim, rng);
    const m = quantizeMatrixValues(format, w, [inDim, outDim]);
    const back = dequantizeMatrix(m);
    const scales = quantScales(m);
    const blocks = inDim / QUANT_BLOCK;
    let worst = 0;
    for (let i = 0; i < inDim; i++) {
      for (let j = 0; j < outDim; j++) {
        const d = Math.abs(scales[j * blocks + Math.floor(i / QUANT_BLOCK)]);
        const error = Math.abs(w[i * outDim + j] - back[i * outDim + j]);
        expect(error).toBeLessThanOrEqual(d / 2);
        if (d > 0) worst = Math.max(worst, error / d);
      }
    }
    // The bound is tight: some weight sits (nearly) halfway between two levels.
    expect(worst).toBeGreaterThan(0.45);
    // The same from the transposed [out, in] values.
    const wT = new Float32Array(inDim * outDim);
    for (let i = 0; i < inDim; i++) for (let j = 0; j < outDim; j++) wT[j * inDim + i] = w[i * outDim + j];
    const mT = quantizeMatrixValues(format, wT, [outDim, inDim], { transposed: true });
    expect(dequantizeMatrix(mT)).toEqual(back);
    disposeQuantMatrix(m);
    disposeQuantMatrix(mT);
  });

  test('q4 scales are GGUF Q4_0 ones (d = −max/8, rounded up) unless the other sign would be clipped', () => {
    const quants = new Uint8Array(32);
    const values = Array.from({ length: 32 }, (_, i) => ((i % 7) - 3) / 4); // max |v| 0.75, both signs
    values[5] = -1.6; // the largest: d = 1.6/8 = 0.2, positive (−max/8)
    const d = halfToFloat(quantizeBlock('q4', values, quants));
    expect(d).toBeGreaterThanOrEqual(0.2);
    expect(d).toBeLessThan(0.2 * (1 + 2 ** -10));
    // -1.6 → q = 0, i.e. −8·d
    expect(quants[5] & 15).toBe(0);
    // An opposite extreme beyond 7.5·|d| enlarges d: 1.55 > 7.5 · 0.2
    values[6] = 1.55;
    const d2 = halfToFloat(quantizeBlock('q4', values, quants));
    expect(d2).toBeGreaterThanOrEqual(1.55 / 7.5);
    expect(Math.abs(1.55 - d2 * ((quants[6] & 15) - 8))).toBeLessThanOrEqual(d2 / 2);
  });

  test.each(FORMATS)(
    '%s: GGUF blocks move over as they are: dequantized as GGUF dequantizes them',
    (format) => {
      const rng = seedrandom(`gguf-${format}`);
      const [inDim, outDim] = [96, 7];
      const data = randomGguf(format, inDim, outDim, rng);
      const m = quantMatrixFromGguf(format, data, inDim, outDim);
      const w = dequantizeMatrix(m);
      for (let j = 0; j < outDim; j++) {
        const column = ggufDequantize(format, data, j, inDim);
        for (let i = 0; i < inDim; i++) expect(w[i * outDim + j]).toBe(column[i]);
      }
      disposeQuantMatrix(m);
    },
  );

  const cases: [number, number, number][] = [];
  for (const rows of [1, 2, 3, 4, 5, 8]) {
    // in: one block, an odd count (scales padded), a multiple of 64; out: odd, under and over a column block (64)
    for (const [inDim, outDim] of [
      [32, 1],
      [96, 37],
      [160, 131],
      [256, 67],
    ]) {
      cases.push([rows, inDim, outDim]);
    }
  }

  test.each(FORMATS)('%s products of 1–8 rows agree with float64 within the closed-form bound', (format) => {
    const rng = seedrandom(`products-${format}`);
    const before = tf.memory().numTensors;
    for (const [rows, inDim, outDim] of cases) {
      const w = awkwardWeights(inDim * outDim, rng);
      const bias = rows % 2 === 0 ? randomArray(outDim, rng) : undefined;
      const m = quantizeMatrixValues(format, w, [inDim, outDim], { bias });
      const xs = awkwardWeights(rows * inDim, rng);
      const { expected, tolerance } = reference(xs, dequantizeMatrix(m), bias, rows, inDim, outDim);
      const x = tf.tensor2d(xs, [rows, inDim]);
      const variants = format === 'q4' ? [false, true] : [false];
      const results = variants.map((relaxed) => {
        const y = quantLinear(x, m, { relaxed });
        expect(y.shape).toEqual([rows, outDim]);
        const values = y.dataSync();
        y.dispose();
        return values;
      });
      expect(outside(results[0], expected, tolerance), `${format} ${rows}×${inDim}×${outDim}`).toEqual([]);
      // The relaxed q4 kernel sums the same integers: the same floats, bit for bit.
      if (results.length > 1) expect(results[1]).toEqual(results[0]);
      x.dispose();
      disposeQuantMatrix(m);
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  test.each(FORMATS)('%s products from GGUF blocks and of rank-3 inputs agree too', (format) => {
    const rng = seedrandom(`gguf-products-${format}`);
    const [inDim, outDim] = [128, 45];
    const data = randomGguf(format, inDim, outDim, rng);
    const m = quantMatrixFromGguf(format, data, inDim, outDim);
    const xs = randomArray(2 * 3 * inDim, rng);
    const { expected, tolerance } = reference(xs, dequantizeMatrix(m), undefined, 6, inDim, outDim);
    const x = tf.tensor3d(xs, [2, 3, inDim]);
    const y = quantLinear(x, m);
    expect(y.shape).toEqual([2, 3, outDim]);
    expect(outside(y.dataSync(), expected, tolerance)).toEqual([]);
    tf.dispose([x, y]);
    disposeQuantMatrix(m);
  });

  test('an all-zero input row gives the bias; zero rows give an empty product', () => {
    const rng = seedrandom('zeros');
    const bias = randomArray(9, rng);
    const m = quantizeMatrixValues('q8', randomArray(64 * 9, rng), [64, 9], { bias });
    const y = quantLinear(tf.zeros([2, 64]) as tf.Tensor2D, m);
    expect(Array.from(y.dataSync())).toEqual([...bias, ...bias]);
    const empty = quantLinear(tf.zeros([0, 64]) as tf.Tensor2D, m);
    expect(empty.shape).toEqual([0, 9]);
    tf.dispose([y, empty]);
    disposeQuantMatrix(m);
  });

  test.each(FORMATS)('%s products split over kernel threads equal one thread, bit for bit', (format) => {
    const rng = seedrandom(`threads-${format}`);
    // 250 quads and 4 · 256 · 1000 multiply-adds: past THREADED_WORK, so 2 and 3 threads split it.
    const [inDim, outDim] = [256, 1000];
    const m = quantizeMatrixValues(format, randomArray(inDim * outDim, rng), [inDim, outDim], {
      bias: randomArray(outDim, rng),
    });
    const saved = process.env.SPECSTREAM_THREADS;
    try {
      for (const rows of [4, 8]) {
        const x = tf.tensor2d(randomArray(rows * inDim, rng), [rows, inDim]);
        const results = [1, 2, 3].map((threads) => {
          process.env.SPECSTREAM_THREADS = String(threads);
          const y = quantLinear(x, m);
          const values = y.dataSync();
          y.dispose();
          return values;
        });
        expect(results[1]).toEqual(results[0]);
        expect(results[2]).toEqual(results[0]);
        x.dispose();
      }
    } finally {
      if (saved === undefined) delete process.env.SPECSTREAM_THREADS;
      else process.env.SPECSTREAM_THREADS = saved;
      disposeQuantMatrix(m);
    }
  });

  test('quantizing from tensors reads them only; disposing frees the arena and a second dispose is a no-op', () => {
    const rng = seedrandom('tensors');
    const arena = requireArena();
    const inUse = arena.bytesInUse();
    const beforeTensors = tf.memory().numTensors;
    const weight = tf.tensor2d(randomArray(64 * 10, rng), [64, 10]);
    const bias = tf.tensor1d(randomArray(10, rng));
    const m = quantizeMatrix('q4', weight, { bias });
    expect(arena.bytesInUse()).toBeGreaterThanOrEqual(inUse + quantMatrixBytes('q4', 64, 10));
    // The tensors are still the caller's.
    expect(weight.isDisposed).toBe(false);
    const fromValues = quantizeMatrixValues('q4', weight.dataSync(), [64, 10], { bias: bias.dataSync() });
    expect(dequantizeMatrix(m)).toEqual(dequantizeMatrix(fromValues));
    tf.dispose([weight, bias]);
    disposeQuantMatrix(m);
    disposeQuantMatrix(fromValues);
    disposeQuantMatrix(m);
    expect(arena.bytesInUse()).toBe(inUse);
    expect(tf.memory().numTensors).toBe(beforeTensors);
    const x = tf.zeros([1, 64]) as tf.Tensor2D;
    expect(() => quantLinear(x, m)).toThrow(/disposed/);
    expect(() => dequantizeMatrix(m)).toThrow(/disposed/);
    x.dispose();
  });

  test('bad inputs are named', () => {
    const rng = seedrandom('bad');
    const arena = requireArena();
    const inUse = arena.bytesInUse();
    const before = tf.memory().numTensors;
    expect(() => quantizeMatrixValues('q8', new Float32Array(48 * 4), [48, 4])).toThrow(
      /input dimension 48 is not a positive multiple of 32/,
    );
    expect(() => quantizeMatrixValues('q4', new Float32Array(10), [32, 4])).toThrow(
      /10 values for a \[32, 4\] weight/,
    );
    expect(() =>
      quantizeMatrixValues('q8', new Float32Array(64), [32, 2], { bias: new Float32Array(3) }),
    ).toThrow(/a bias of 3 for 2 outputs/);
    expect(() => quantizeMatrixValues('q3' as QuantFormat, new Float32Array(64), [32, 2])).toThrow(
      /unknown format q3/,
    );
    const nan = new Float32Array(64);
    nan[7] = Number.NaN;
    expect(() => quantizeMatrixValues('q8', nan, [32, 2])).toThrow(/a weight is NaN/);
    const huge = new Float32Array(64);
    huge[3] = 1e9;
    expect(() => quantizeMatrixValues('q8', huge, [32, 2])).toThrow(/past f16's range/);
    expect(() => quantMatrixFromGguf('q8', new Uint8Array(33), 32, 1)).toThrow(
      /33 bytes for 1×1 Q8_0 blocks of 34/,
    );
    const infinite = new Uint8Array(18);
    infinite[1] = 0x7c;
    expect(() => quantMatrixFromGguf('q4', infinite, 32, 1)).toThrow(/scale is not finite/);
    // Failed builds leave nothing allocated.
    expect(arena.bytesInUse()).toBe(inUse);
    const m: QuantMatrix = quantizeMatrixValues('q8', randomArray(64 * 3, rng), [64, 3]);
    const x = tf.zeros([2, 32]) as tf.Tensor2D;
    expect(() => quantLinear(x, m)).toThrow(/x has 32 columns, the matrix takes 64/);
    const ints = tf.zeros([2, 64], 'int32') as tf.Tensor2D;
    expect(() => quantLinear(ints, m)).toThrow(/x is int32, not float32/);
    tf.dispose([x, ints]);
    disposeQuantMatrix(m);
    expect(tf.memory().numTensors).toBe(before);
  });
});
