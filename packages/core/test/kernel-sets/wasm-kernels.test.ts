import * as tf from '@tensorflow/tfjs-core';
import seedrandom from 'seedrandom';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { referenceAttention } from '../../../../test-support/attention-reference.js';
import { maxAbsDiff } from '../../../../test-support/max-abs-diff.js';
import { randomArray, randomPackedQkv } from '../../../../test-support/random-arrays.js';
import { assembleAll, fuseMultiplyAdds, wasmKernelsWat } from '../../scripts/wasm-kernels.js';
import { initBackend } from '../../src/backend.js';
import {
  arenaGather,
  arenaMatrix,
  arenaMatrixFromChunks,
  disposeArenaMatrix,
} from '../../src/kernel-sets/wasm/arena-matrix.js';
import {
  CHUNKS_PER_THREAD,
  runOnThreads,
  THREADED_WORK,
  threadRanges,
} from '../../src/kernel-sets/wasm/kernel-threads.js';
import {
  disposePackedLinear,
  packedLinear,
  packedLinearSupported,
  packLinear,
  packLinearValues,
  transposedLinear,
  transposedLinearSupported,
} from '../../src/kernel-sets/wasm/packed-linear.js';
import { chooseFusedMultiplyAdd, fusedMultiplyAdd } from '../../src/kernel-sets/wasm/relaxed-simd.js';
import {
  RELAXED_SIMD_PROBE_BASE64,
  WASM_KERNELS_BASE64,
  WASM_KERNELS_FMA_BASE64,
  WASM_SHARED_KERNELS_BASE64,
  WASM_SHARED_KERNELS_FMA_BASE64,
} from '../../src/kernel-sets/wasm/wasm-binary.js';
import { weightArena } from '../../src/kernel-sets/wasm/weight-arena.js';
import {
  causalAttention,
  causalAttentionSupported,
  composedCausalAttention,
} from '../../src/kernels/causal-attention.js';
import { standardizeRows, standardizeRowsSupported } from '../../src/kernels/standardize.js';

/** x·W + b in float64, W given [in, out] or [out, in] (transposed). */
function reference(
  x: Float32Array,
  w: Float32Array,
  b: Float32Array | undefined,
  rows: number,
  inDim: number,
  outDim: number,
  transposed: boolean,
): Float64Array {
  const out = new Float64Array(rows * outDim);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < outDim; j++) {
      let sum = b ? b[j] : 0;
      for (let i = 0; i < inDim; i++)
        sum += x[r * inDim + i] * (transposed ? w[j * inDim + i] : w[i * outDim + j]);
      out[r * outDim + j] = sum;
    }
  }
  return out;
}

describe('core wasm kernels', () => {
  beforeAll(async () => {
    await initBackend({ backend: 'wasm' });
  });

  test('the committed binaries are what the kernel source assembles to', async () => {
    const built = await assembleAll();
    const base64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
    expect(base64(built.tfjs)).toBe(WASM_KERNELS_BASE64);
    expect(base64(built.shared)).toBe(WASM_SHARED_KERNELS_BASE64);
    expect(base64(built.tfjsFma)).toBe(WASM_KERNELS_FMA_BASE64);
    expect(base64(built.sharedFma)).toBe(WASM_SHARED_KERNELS_FMA_BASE64);
    expect(base64(built.probe)).toBe(RELAXED_SIMD_PROBE_BASE64);
  });

  test('fused builds turn every multiply-accumulate of the products into relaxed_madd, and nothing else', () => {
    const accumulate =
      /\(f32x4\.add \(local\.get \$\w+\) \(f32x4\.mul \(local\.get \$\w+\) \(local\.get \$\w+\)\)\)/g;
    const functions = (text: string) =>
      new Map(
        text
          .split('(func ')
          .slice(1)
          .map((f) => [f.slice(0, f.indexOf(' ')), f] as const),
      );
    const plain = functions(wasmKernelsWat({ memory: 'shared', fma: false }));
    const fused = functions(wasmKernelsWat({ memory: 'shared', fma: true }));
    expect([...fused.keys()]).toEqual([...plain.keys()]);
    let products = 0;
    for (const [name, text] of fused) {
      const before = plain.get(name)?.match(accumulate)?.length ?? 0;
      if (/^\$(tile|dots)/.test(name)) {
        products++;
        expect(before, name).toBeGreaterThan(0);
        expect(text.match(accumulate), name).toBeNull();
        expect(text.match(/f32x4\.relaxed_madd/g)?.length, name).toBe(before);
      } else {
        // Attention keeps the same rounding in its one-step and grouped paths.
        expect(text, name).toBe(plain.get(name));
      }
    }
    expect(products).toBe(4 + 8 + 2);
    // Operands keep their roles: acc + a·b becomes madd(a, b, acc).
    expect(fuseMultiplyAdds('(f32x4.add (local.get $c0) (f32x4.mul (local.get $x) (local.get $w1)))')).toBe(
      '(f32x4.relaxed_madd (local.get $x) (local.get $w1) (local.get $c0))',
    );
    // Other forms (a load as an operand) stay as written.
    const other = '(f32x4.add (local.get $c0) (f32x4.mul (local.get $w0) (v128.load (local.get $p))))';
    expect(fuseMultiplyAdds(other)).toBe(other);
  });

  test('Node 20 gets relaxed SIMD (behind its flag) and the fused kernels agree with the plain ones', () => {
    // Node ≥ 20.16 has it (flagged before 22); CI runs Node 20.20.
    expect(fusedMultiplyAdd()).toBe(true);
    expect(chooseFusedMultiplyAdd(undefined)).toBe(true);
    expect(chooseFusedMultiplyAdd('on')).toBe(true);
    expect(chooseFusedMultiplyAdd('off')).toBe(false);
    expect(() => chooseFusedMultiplyAdd('yes')).toThrow(
      /SPECSTREAM_RELAXED_SIMD must be "on" or "off", got "yes"/,
    );
    // The lib settings leave out the DOM's WebAssembly types (as in src/kernels): the members used here.
    const wasm = (
      globalThis as unknown as {
        WebAssembly: {
          Memory: new (descriptor: { initial: number }) => { buffer: ArrayBuffer };
          Module: new (bytes: Uint8Array) => object;
          Instance: new (module: object, imports: object) => { exports: object };
        };
      }
    ).WebAssembly;
    const memory = new wasm.Memory({ initial: 64 });
    const run = (base64: string) => {
      const module = new wasm.Module(Buffer.from(base64, 'base64'));
      const kernels = new wasm.Instance(module, { tfjs: { memory } }).exports as unknown as {
        packPanels(w: number, k: number, n: number, transposed: number, out: number): void;
        interleave(a: number, k: number, rows: number, at: number): void;
        product(...args: number[]): void;
        dotsProduct(...args: number[]): void;
      };
      const [k, n, rows] = [96, 40, 4];
      const floats = new Float32Array(memory.buffer);
      const rng = seedrandom('fma');
      const w = randomArray(k * n, rng);
      const x = randomArray(rows * k, rng);
      const [wAt, panelsAt, xAt, atAt, cAt, dAt] = [1 << 16, 1 << 17, 1 << 18, 1 << 19, 1 << 20, 1 << 21];
      floats.set(w, wAt >> 2);
      floats.set(x, xAt >> 2);
      kernels.packPanels(wAt, k, n, 0, panelsAt);
      kernels.interleave(xAt, k, rows, atAt);
      kernels.product(atAt, rows, panelsAt, 0, cAt, k, n, 0, n / 8, 1);
      // w as [out, in] = [k', n'] with k' = n rows of width k: reuse w read as n × k.
      kernels.dotsProduct(xAt, wAt, dAt, k, rows, n, 0, n, 1);
      const product = floats.slice(cAt >> 2, (cAt >> 2) + rows * n);
      const dots = floats.slice(dAt >> 2, (dAt >> 2) + rows * n);
      // Loading the weights into the cache first (prefetch 1) changes the time, never a value.
      kernels.product(atAt, rows, panelsAt, 0, cAt, k, n, 0, n / 8, 0);
      kernels.dotsProduct(xAt, wAt, dAt, k, rows, n, 0, n, 0);
      expect(floats.slice(cAt >> 2, (cAt >> 2) + rows * n)).toEqual(product);
      expect(floats.slice(dAt >> 2, (dAt >> 2) + rows * n)).toEqual(dots);
      return {
        product,
        dots,
        expected: reference(x, w, undefined, rows, k, n, false),
        expectedDots: reference(x, w, undefined, rows, k, n, true),
      };
    };
    const plain = run(WASM_KERNELS_BASE64);
    const fused = run(WASM_KERNELS_FMA_BASE64);
    expect(maxAbsDiff(fused.product, plain.product)).toBeLessThan(1e-5);
    expect(maxAbsDiff(fused.dots, plain.dots)).toBeLessThan(1e-5);
    expect(maxAbsDiff(fused.product, fused.expected)).toBeLessThan(1e-5);
    expect(maxAbsDiff(fused.dots, fused.expectedDots)).toBeLessThan(1e-5);
  });

  test('they start on the wasm backend', () => {
    expect(packedLinearSupported()).toBe(true);
  });

  // Shapes cover: one panel and less, a partial last panel, several column blocks
  // (16 panels each), every tile height and remainders past it.
  const shapes: [number, number][] = [
    [5, 3],
    [16, 8],
    [33, 17],
    [64, 300],
  ];
  const rowCounts = [1, 2, 3, 4, 5, 7, 8, 9, 13];
  test.each(shapes)('packed product equals x·W + b (in %i, out %i)', (inDim, outDim) => {
    const rng = seedrandom(`${inDim}x${outDim}`);
    for (const transposed of [false, true]) {
      for (const withBias of [false, true]) {
        const w = randomArray(inDim * outDim, rng);
        const b = withBias ? randomArray(outDim, rng) : undefined;
        const weight = tf.tensor2d(w, transposed ? [outDim, inDim] : [inDim, outDim]);
        const bias = b && tf.tensor1d(b);
        const layer = packLinear(bias ? { weight, bias } : { weight }, { transposed });
        expect(weight.isDisposed && (bias?.isDisposed ?? true)).toBe(true);
        for (const rows of rowCounts) {
          const xs = randomArray(rows * inDim, rng);
          const x = tf.tensor2d(xs, [rows, inDim]);
          const y = packedLinear(x, layer);
          expect(y.shape).toEqual([rows, outDim]);
          const error = maxAbsDiff(y.dataSync(), reference(xs, w, b, rows, inDim, outDim, transposed));
          expect(error, `rows ${rows} transposed ${transposed} bias ${withBias}`).toBeLessThan(1e-5 * inDim);
          x.dispose();
          y.dispose();
        }
        disposePackedLinear(layer);
      }
    }
  });

  test('products stay right after the heap grows, and free what they make', () => {
    const rng = seedrandom('grow');
    const [inDim, outDim, rows] = [40, 21, 6];
    const w = randomArray(inDim * outDim, rng);
    const xs = randomArray(rows * inDim, rng);
    const before = tf.memory().numTensors;
    const weight = tf.tensor2d(w, [inDim, outDim]);
    const layer = packLinear({ weight });
    const x = tf.tensor2d(xs, [rows, inDim]);
    const expected = reference(xs, w, undefined, rows, inDim, outDim, false);
    const first = packedLinear(x, layer);
    expect(maxAbsDiff(first.dataSync(), expected)).toBeLessThan(1e-4);
    // 256 MB more forces the wasm heap to grow (a new ArrayBuffer behind the same memory).
    const big = tf.zeros([64 * 1024 * 1024]);
    const second = packedLinear(x, layer);
    expect(maxAbsDiff(second.dataSync(), expected)).toBeLessThan(1e-4);
    for (const t of [big, first, second, x]) t.dispose();
    disposePackedLinear(layer);
    expect(tf.memory().numTensors).toBe(before);
  });

  test('zero rows give an empty product; a wrong width is named', () => {
    const weight = tf.ones([4, 9]) as tf.Tensor2D;
    const layer = packLinear({ weight });
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const empty = packedLinear(tf.zeros([0, 4]) as tf.Tensor2D, layer);
      expect(empty.shape).toEqual([0, 9]);
      // Leading dimensions are rows.
      const x = tf.randomNormal([2, 3, 4]);
      const y = packedLinear(x, layer);
      expect(y.shape).toEqual([2, 3, 9]);
      const expected = tf.reshape(packedLinear(tf.reshape(x, [6, 4]) as tf.Tensor2D, layer), [2, 3, 9]);
      expect(Array.from(y.dataSync())).toEqual(Array.from(expected.dataSync()));
      expect(() => packedLinear(tf.zeros([2, 5]) as tf.Tensor2D, layer)).toThrow(
        /5 columns, the layer takes 4/,
      );
    });
    expect(tf.memory().numTensors).toBe(before);
    disposePackedLinear(layer);
  });

  test.each([3, 8, 13, 768])(
    'standardized rows equal (x − mean) / √(var + eps) and x / √(mean(x²) + eps) (width %i)',
    (d) => {
      expect(standardizeRowsSupported()).toBe(true);
      const rng = seedrandom(`norm${d}`);
      const rows = 5;
      // An offset and a scale per row, so centering and scaling both matter.
      const xs = randomArray(rows * d, rng).map((v, i) => 3 * v + Math.floor(i / d) - 2);
      const before = tf.memory().numTensors;
      const x = tf.tensor3d(xs, [1, rows, d]);
      for (const center of [true, false]) {
        const eps = 1e-5;
        const expected = new Float64Array(rows * d);
        for (let r = 0; r < rows; r++) {
          const row = Array.from(xs.subarray(r * d, (r + 1) * d));
          const mean = center ? row.reduce((a, b) => a + b, 0) / d : 0;
          const variance = row.reduce((a, b) => a + (b - mean) ** 2, 0) / d;
          row.forEach((v, i) => {
            expected[r * d + i] = (v - mean) / Math.sqrt(variance + eps);
          });
        }
        const y = standardizeRows(x, eps, center);
        expect(y.shape).toEqual([1, rows, d]);
        expect(maxAbsDiff(y.dataSync(), expected)).toBeLessThan(1e-5);
        y.dispose();
      }
      x.dispose();
      expect(tf.memory().numTensors).toBe(before);
    },
  );

  test('products split over kernel threads equal one thread, bit for bit; a trapped thread is an error', () => {
    const rng = seedrandom('threads');
    // 50 panels and 5 · 256 · 400 multiply-adds and more: three threads' shares (one row stays on one).
    const [inDim, outDim] = [256, 400];
    const w = randomArray(inDim * outDim, rng);
    const b = randomArray(outDim, rng);
    const layer = packLinearValues(w, [inDim, outDim], { bias: b });
    const saved = process.env.SPECSTREAM_THREADS;
    try {
      for (const rows of [1, 5, 8, 13]) {
        const xs = randomArray(rows * inDim, rng);
        const x = tf.tensor2d(xs, [rows, inDim]);
        const results = [1, 2, 3].map((threads) => {
          process.env.SPECSTREAM_THREADS = String(threads);
          return tf.tidy(() => packedLinear(x, layer).dataSync());
        });
        expect(maxAbsDiff(results[0], reference(xs, w, b, rows, inDim, outDim, false))).toBeLessThan(1e-3);
        expect(Array.from(results[1]), `rows ${rows}`).toEqual(Array.from(results[0]));
        expect(Array.from(results[2]), `rows ${rows}`).toEqual(Array.from(results[0]));
        x.dispose();
      }
      process.env.SPECSTREAM_THREADS = '2';
      const arena = weightArena()!;
      const beyond = arena.floats().byteLength;
      const good = [0, 0, layer.panels, 0, 0, inDim, 400, 0, 0, 0];
      expect(() =>
        runOnThreads(arena, 'product', [good, [beyond, 1, beyond, 0, beyond, inDim, 400, 0, 50, 0]]),
      ).toThrow(/product failed on a kernel thread/);
      // The threads still work.
      const x = tf.ones([8, inDim]) as tf.Tensor2D;
      const y = packedLinear(x, layer);
      const expected = Array.from({ length: outDim }, (_, j) => {
        let sum = b[j];
        for (let i = 0; i < inDim; i++) sum += w[i * outDim + j];
        return sum;
      });
      expect(maxAbsDiff(y.dataSync().subarray(7 * outDim), expected)).toBeLessThan(1e-3);
      x.dispose();
      y.dispose();
      process.env.SPECSTREAM_THREADS = '0';
      expect(() => tf.tidy(() => packedLinear(tf.ones([8, inDim]) as tf.Tensor2D, layer))).toThrow(
        /SPECSTREAM_THREADS must be a positive integer, got "0"/,
      );
    } finally {
      if (saved === undefined) delete process.env.SPECSTREAM_THREADS;
      else process.env.SPECSTREAM_THREADS = saved;
      disposePackedLinear(layer);
    }
  });

  test('many threaded products in quick succession (chunks claimed by whichever thread is free) equal one thread', () => {
    const rng = seedrandom('stealing');
    const [inDim, outDim] = [256, 400];
    const w = randomArray(inDim * outDim, rng);
    const layer = packLinearValues(w, [inDim, outDim]);
    const saved = process.env.SPECSTREAM_THREADS;
    try {
      const inputs = Array.from({ length: 40 }, (_, i) =>
        tf.tensor2d(randomArray(((i % 7) + 5) * inDim, rng), [(i % 7) + 5, inDim]),
      );
      const run = (threads: number) => {
        process.env.SPECSTREAM_THREADS = String(threads);
        // Back to back, so a worker may still be finishing (or not yet woken for) the job before.
        return inputs.map((x) => tf.tidy(() => Array.from(packedLinear(x, layer).dataSync())));
      };
      const one = run(1);
      for (const threads of [2, 3]) expect(run(threads)).toEqual(one);
      tf.dispose(inputs);
    } finally {
      if (saved === undefined) delete process.env.SPECSTREAM_THREADS;
      else process.env.SPECSTREAM_THREADS = saved;
      disposePackedLinear(layer);
    }
  });

  test('work is split into contiguous chunks, a few per thread, none shorter than asked, small work unsplit', () => {
    const saved = process.env.SPECSTREAM_THREADS;
    /** The chunks cover [0, total) in order, without gaps or overlaps. */
    const covers = (ranges: [number, number][], total: number) =>
      ranges.every(([a, b], i) => a < b && a === (i === 0 ? 0 : ranges[i - 1][1])) &&
      ranges.at(-1)![1] === total;
    try {
      process.env.SPECSTREAM_THREADS = '3';
      const big = THREADED_WORK;
      // 3 threads, CHUNKS_PER_THREAD each, every chunk at least 16 / CHUNKS_PER_THREAD long.
      const hundred = threadRanges(100, 16, big);
      expect(hundred).toHaveLength(3 * CHUNKS_PER_THREAD);
      expect(covers(hundred, 100)).toBe(true);
      expect(Math.min(...hundred.map(([a, b]) => b - a))).toBeGreaterThanOrEqual(16 / CHUNKS_PER_THREAD);
      // 40 panels at 16 or more a thread: two threads' worth of chunks, not three.
      const forty = threadRanges(40, 16, big);
      expect(forty).toHaveLength(2 * CHUNKS_PER_THREAD);
      expect(covers(forty, 40)).toBe(true);
      expect(threadRanges(10, 16, big)).toEqual([[0, 10]]);
      expect(threadRanges(100, 16, big - 1)).toEqual([[0, 100]]);
      process.env.SPECSTREAM_THREADS = '1';
      expect(threadRanges(100, 16, big)).toEqual([[0, 100]]);
    } finally {
      if (saved === undefined) delete process.env.SPECSTREAM_THREADS;
      else process.env.SPECSTREAM_THREADS = saved;
    }
  });

  test('an arena matrix gathers its rows and multiplies as [out, in], split over threads bit for bit', () => {
    const rng = seedrandom('arena matrix');
    // 700 output rows of 64: two threads' shares of at least 256 rows once there are 12+ input rows.
    const [outDim, inDim] = [700, 64];
    const w = randomArray(outDim * inDim, rng);
    const arena = weightArena()!;
    const beforeBytes = arena.bytesInUse();
    const beforeTensors = tf.memory().numTensors;
    const fromTensor = arenaMatrix(tf.tensor2d(w, [outDim, inDim]));
    const fromValues = arenaMatrix({ values: w, shape: [outDim, inDim] });
    expect(tf.memory().numTensors).toBe(beforeTensors);
    expect(arena.bytesInUse() - beforeBytes).toBe(2 * 4 * outDim * inDim);
    const ids = [3, 0, 699, 3];
    const rows = arenaGather(fromTensor, Int32Array.from(ids));
    expect(rows.shape).toEqual([4, inDim]);
    const expectedRows = ids.flatMap((id) => Array.from(w.subarray(id * inDim, (id + 1) * inDim)));
    expect(Array.from(rows.dataSync())).toEqual(expectedRows);
    rows.dispose();
    const saved = process.env.SPECSTREAM_THREADS;
    try {
      for (const n of [1, 2, 5, 16]) {
        const xs = randomArray(n * inDim, rng);
        const x = tf.tensor2d(xs, [n, inDim]);
        const results = [1, 2, 3].map((threads) => {
          process.env.SPECSTREAM_THREADS = String(threads);
          return tf.tidy(() => transposedLinear(x, { weightT: fromValues }).dataSync());
        });
        expect(maxAbsDiff(results[0], reference(xs, w, undefined, n, inDim, outDim, true))).toBeLessThan(
          1e-4,
        );
        expect(Array.from(results[1]), `rows ${n}`).toEqual(Array.from(results[0]));
        expect(Array.from(results[2]), `rows ${n}`).toEqual(Array.from(results[0]));
        // The tensor path (this thread, tfjs's heap) computes the same sums.
        const viaTensor = tf.tidy(() => {
          const weightT = tf.tensor2d(w, [outDim, inDim]);
          return transposedLinear(x, { weightT }).dataSync();
        });
        expect(Array.from(viaTensor)).toEqual(Array.from(results[0]));
        x.dispose();
      }
    } finally {
      if (saved === undefined) delete process.env.SPECSTREAM_THREADS;
      else process.env.SPECSTREAM_THREADS = saved;
    }
    expect(() => arenaGather(fromTensor, Int32Array.from([700]))).toThrow(/id 700 is outside \[0, 700\)/);
    expect(() =>
      tf.tidy(() => transposedLinear(tf.zeros([1, 60]) as tf.Tensor2D, { weightT: fromValues })),
    ).toThrow(/x has 60 columns, the layer takes 64/);
    expect(tf.memory().numTensors).toBe(beforeTensors);
    disposeArenaMatrix(fromTensor);
    disposeArenaMatrix(fromValues);
    disposeArenaMatrix(fromValues);
    expect(arena.bytesInUse()).toBe(beforeBytes);
    expect(() => arenaGather(fromTensor, Int32Array.from([0]))).toThrow(/disposed/);
  });

  test('an arena matrix filled from chunks holds them in order; a short or long read frees it', async () => {
    const arena = weightArena()!;
    const before = arena.bytesInUse();
    const chunks = (sizes: number[]) =>
      (async function* () {
        let next = 0;
        for (const size of sizes) yield Float32Array.from({ length: size }, () => next++);
      })();
    const matrix = await arenaMatrixFromChunks([3, 4], chunks([5, 7]));
    const rows = arenaGather(matrix, Int32Array.from([2, 0]));
    expect(Array.from(rows.dataSync())).toEqual([8, 9, 10, 11, 0, 1, 2, 3]);
    rows.dispose();
    disposeArenaMatrix(matrix);
    await expect(arenaMatrixFromChunks([3, 4], chunks([5, 6]))).rejects.toThrow(/do not hold \[3, 4\]/);
    await expect(arenaMatrixFromChunks([3, 4], chunks([5, 7, 1]))).rejects.toThrow(/do not hold \[3, 4\]/);
    expect(arena.bytesInUse()).toBe(before);
  });

  test('packing moves a weight into the arena and disposing frees it there', () => {
    const rng = seedrandom('arena');
    const [inDim, outDim, rows] = [24, 13, 3];
    const w = randomArray(inDim * outDim, rng);
    const b = randomArray(outDim, rng);
    const xs = randomArray(rows * inDim, rng);
    const expected = reference(xs, w, b, rows, inDim, outDim, false);
    const arena = weightArena()!;
    const beforeTensors = tf.memory().numTensors;
    const beforeBytes = arena.bytesInUse();
    const layer = packLinear({ weight: tf.tensor2d(w, [inDim, outDim]), bias: tf.tensor1d(b) });
    expect(tf.memory().numTensors).toBe(beforeTensors);
    // 16 padded columns of panels and of bias.
    expect(arena.bytesInUse() - beforeBytes).toBe(4 * 16 * inDim + 64);
    const x = tf.tensor2d(xs, [rows, inDim]);
    const y = packedLinear(x, layer);
    expect(maxAbsDiff(y.dataSync(), expected)).toBeLessThan(1e-4);
    // The same from host values.
    const fromValues = packLinearValues(w, [inDim, outDim], { bias: b });
    const z = packedLinear(x, fromValues);
    expect(Array.from(z.dataSync())).toEqual(Array.from(y.dataSync()));
    for (const t of [x, y, z]) t.dispose();
    disposePackedLinear(layer);
    disposePackedLinear(layer);
    disposePackedLinear(fromValues);
    expect(arena.bytesInUse()).toBe(beforeBytes);
    expect(tf.memory().numTensors).toBe(beforeTensors);
    expect(() => packedLinear(tf.zeros([1, inDim]) as tf.Tensor2D, layer)).toThrow(/disposed/);
    expect(() => packLinearValues(w, [inDim, outDim + 1])).toThrow(/values for a \[24, 14\] weight/);
  });

  test.each([
    [8, 1],
    [20, 7],
    [64, 150],
  ])('product with an [out, in] weight equals x·Wᵀ (in %i, out %i)', (inDim, outDim) => {
    expect(transposedLinearSupported(inDim)).toBe(true);
    const rng = seedrandom(`t${inDim}x${outDim}`);
    const w = randomArray(inDim * outDim, rng);
    const weightT = tf.tensor2d(w, [outDim, inDim]);
    const before = tf.memory().numTensors;
    for (const rows of rowCounts) {
      const xs = randomArray(rows * inDim, rng);
      const x = tf.tensor2d(xs, [rows, inDim]);
      const y = transposedLinear(x, { weightT });
      const error = maxAbsDiff(y.dataSync(), reference(xs, w, undefined, rows, inDim, outDim, true));
      expect(error, `rows ${rows}`).toBeLessThan(1e-5 * inDim);
      x.dispose();
      y.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
    expect(transposedLinearSupported(6)).toBe(false);
    weightT.dispose();
  });

  /** [batch, kvHeads, slots, headDim] → [batch, slots, kvHeads, headDim]. */
  function slotsFirst(x: Float32Array, [batch, kvHeads, slots, headDim]: number[]): Float32Array {
    const out = new Float32Array(x.length);
    for (let b = 0; b < batch; b++)
      for (let g = 0; g < kvHeads; g++)
        for (let j = 0; j < slots; j++)
          for (let d = 0; d < headDim; d++)
            out[((b * slots + j) * kvHeads + g) * headDim + d] =
              x[((b * kvHeads + g) * slots + j) * headDim + d];
    return out;
  }

  // headDim 4 (narrow path only), 20 (16 wide + 4 narrow), 64; GQA, MQA and plain heads;
  // ragged rows; windows; slots no query may see hold large values that must not leak in.
  const attentionCases = [
    { steps: 1, heads: 2, kvHeads: 2, headDim: 4, slots: 9, starts: [0, 5], window: Infinity },
    { steps: 3, heads: 4, kvHeads: 2, headDim: 20, slots: 16, starts: [2, 0, 13], window: Infinity },
    { steps: 8, heads: 6, kvHeads: 1, headDim: 64, slots: 40, starts: [31, 7], window: Infinity },
    { steps: 5, heads: 3, kvHeads: 3, headDim: 12, slots: 70, starts: [64], window: Infinity },
    { steps: 6, heads: 4, kvHeads: 2, headDim: 8, slots: 20, starts: [14, 3], window: 5 },
    { steps: 4, heads: 2, kvHeads: 2, headDim: 16, slots: 12, starts: [8], window: 1 },
    // Steps go up to eight at a time (a group of 8 while six or more are left, of 4 for three to
    // five), and one or two left after groups one at a time; these reach groups of 6, 7 and 8 and
    // of 2, 3 and 4 real steps, single steps after groups, windows that start inside a group,
    // odd numbers of slots (a group reads them in pairs, one step eight at a time), and head
    // sizes whose weighted sums take every pass width (4, 8, 16, 32 dimensions).
    { steps: 7, heads: 4, kvHeads: 2, headDim: 4, slots: 30, starts: [20, 3], window: 3 },
    { steps: 10, heads: 2, kvHeads: 1, headDim: 20, slots: 40, starts: [25, 0, 30], window: 7 },
    { steps: 9, heads: 3, kvHeads: 3, headDim: 36, slots: 64, starts: [50, 17], window: Infinity },
    { steps: 2, heads: 2, kvHeads: 2, headDim: 80, slots: 24, starts: [0, 13, 21], window: Infinity },
    { steps: 13, heads: 2, kvHeads: 1, headDim: 64, slots: 200, starts: [180, 100], window: 50 },
    { steps: 8, heads: 4, kvHeads: 2, headDim: 80, slots: 40, starts: [32, 5], window: Infinity },
    { steps: 6, heads: 4, kvHeads: 4, headDim: 20, slots: 30, starts: [3, 24], window: 4 },
    { steps: 5, heads: 4, kvHeads: 2, headDim: 80, slots: 50, starts: [45, 20], window: 9 },
    { steps: 14, heads: 3, kvHeads: 3, headDim: 20, slots: 60, starts: [46, 9], window: 5 },
    { steps: 16, heads: 4, kvHeads: 1, headDim: 4, slots: 40, starts: [24, 0], window: Infinity },
    { steps: 8, heads: 2, kvHeads: 2, headDim: 4, slots: 20, starts: [12, 1], window: 2 },
    // Slots first with several KV heads, a row's first head reads its slots' whole records ahead
    // (the other heads' rows too); rows that end at the last slot read up to the buffer's end.
    { steps: 1, heads: 4, kvHeads: 2, headDim: 80, slots: 33, starts: [32, 0, 17], window: Infinity },
  ];
  // The kernels on wasm and cpu, and the tfjs-op composition (other backends) on wasm.
  describe.each([
    ['wasm', causalAttention],
    ['cpu', causalAttention],
    ['wasm', composedCausalAttention],
  ] as const)('causal attention on %s (%o)', (backend, attention) => {
    beforeAll(async () => {
      await initBackend({ backend });
    });
    afterAll(async () => {
      await initBackend({ backend: 'wasm' });
    });
    test.each(
      attentionCases.flatMap((c) => (['heads', 'slots'] as const).map((layout) => ({ ...c, layout }))),
    )(
      'equals softmax(q·kᵀ)·v over the visible slots ($steps steps, $heads/$kvHeads heads, headDim $headDim, window $window, $layout first)',
      ({ steps, heads, kvHeads, headDim, slots, starts, window, layout }) => {
        expect(causalAttentionSupported(headDim)).toBe(true);
        const rng = seedrandom(`${steps}-${headDim}-${window}`);
        const batch = starts.length;
        const qs = randomArray(batch * steps * heads * headDim, rng).map((x) => 3 * x);
        const ks = randomArray(batch * kvHeads * slots * headDim, rng);
        const vs = randomArray(batch * kvHeads * slots * headDim, rng);
        for (let b = 0; b < batch; b++) {
          const seen = (j: number) => j < starts[b] + steps && j >= starts[b] + 1 - window;
          for (let kv = 0; kv < kvHeads; kv++) {
            for (let j = 0; j < slots; j++) {
              if (seen(j)) continue;
              for (let d = 0; d < headDim; d++) {
                ks[((b * kvHeads + kv) * slots + j) * headDim + d] = 1e4;
                vs[((b * kvHeads + kv) * slots + j) * headDim + d] = 1e6;
              }
            }
          }
        }
        const dims = [batch, kvHeads, slots, headDim];
        const before = tf.memory().numTensors;
        const q = tf.tensor4d(qs, [batch, steps, heads, headDim]);
        const shape = (layout === 'heads' ? dims : [batch, slots, kvHeads, headDim]) as [
          number,
          number,
          number,
          number,
        ];
        const keys = tf.tensor4d(layout === 'heads' ? ks : slotsFirst(ks, dims), shape);
        const values = tf.tensor4d(layout === 'heads' ? vs : slotsFirst(vs, dims), shape);
        const out =
          attention === causalAttention
            ? causalAttention(q, keys, values, starts, { window, layout })
            : composedCausalAttention(q, keys, values, starts, window, layout);
        expect(out.shape).toEqual([batch * steps, heads * headDim]);
        const expected = referenceAttention(qs, ks, vs, starts, [
          steps,
          heads,
          kvHeads,
          headDim,
          slots,
          window,
        ]);
        expect(maxAbsDiff(out.dataSync(), expected)).toBeLessThan(1e-5);
        for (const t of [q, keys, values, out]) t.dispose();
        expect(tf.memory().numTensors).toBe(before);
      },
    );
  });

  test('causal attention gives a step the same result whichever steps share its call', () => {
    // The kernel takes steps eight or four at a time or alone, in one order of operations, so a
    // sequence streamed in chunks equals one call over it (the streaming encoder relies on it).
    // The whole call takes groups of 8, 8 and 8 (6 real); the chunks groups of 2, 3, 4, 7, 8
    // and 4 and a step (5), and single steps.
    const rng = seedrandom('chunks');
    const [steps, heads, kvHeads, headDim, slots, start] = [30, 4, 2, 20, 56, 21];
    const chunks = [1, 2, 3, 5, 7, 4, 8];
    const before = tf.memory().numTensors;
    for (const layout of ['heads', 'slots'] as const) {
      for (const window of [Infinity, 6, 9, 3]) {
        const q = tf.tensor4d(
          randomArray(steps * heads * headDim, rng).map((x) => 3 * x),
          [1, steps, heads, headDim],
        );
        const shape: [number, number, number, number] =
          layout === 'heads' ? [1, kvHeads, slots, headDim] : [1, slots, kvHeads, headDim];
        const keys = tf.tensor4d(randomArray(kvHeads * slots * headDim, rng), shape);
        const values = tf.tensor4d(randomArray(kvHeads * slots * headDim, rng), shape);
        const whole = causalAttention(q, keys, values, [start], { window, layout });
        const chunked: number[] = [];
        let s = 0;
        for (const n of chunks) {
          const part = tf.slice(q, [0, s, 0, 0], [1, n, heads, headDim]) as tf.Tensor4D;
          const out = causalAttention(part, keys, values, [start + s], { window, layout });
          chunked.push(...out.dataSync());
          for (const t of [part, out]) t.dispose();
          s += n;
        }
        expect(s).toBe(steps);
        expect(chunked, `window ${window}, ${layout} first`).toEqual(Array.from(whole.dataSync()));
        for (const t of [q, keys, values, whole]) t.dispose();
      }
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  test('causal attention over packed q|k|v (queryHeads) equals attention over the queries sliced out', () => {
    const rng = seedrandom('packed-queries');
    const [batch, steps, heads, kvHeads, headDim, slots] = [2, 3, 4, 2, 8, 12];
    const packed = tf.tensor4d(...randomPackedQkv(rng, [batch, steps, heads, kvHeads, headDim]));
    const kv = tf.tensor4d(randomArray(batch * kvHeads * slots * headDim, rng), [
      batch,
      kvHeads,
      slots,
      headDim,
    ]);
    const queries = tf.slice(packed, [0, 0, 0, 0], [batch, steps, heads, headDim]) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    const fromPacked = causalAttention(packed, kv, kv, [4, 9], { queryHeads: heads });
    expect(tf.memory().numTensors).toBe(before + 1);
    const fromSlice = causalAttention(queries, kv, kv, [4, 9]);
    expect(Array.from(fromPacked.dataSync())).toEqual(Array.from(fromSlice.dataSync()));
    expect(() => causalAttention(packed, kv, kv, [4, 9], { queryHeads: 9 })).toThrow(
      /queryHeads 9 is not in \[1, 8\]/,
    );
    for (const t of [packed, kv, queries, fromPacked, fromSlice]) t.dispose();
  });

  test('causal attention names a window past the slots or a bad window, and runs odd head sizes on tfjs ops', () => {
    const q = tf.zeros([1, 4, 2, 8]) as tf.Tensor4D;
    const kv = tf.zeros([1, 2, 6, 8]) as tf.Tensor4D;
    expect(() => causalAttention(q, kv, kv, [3])).toThrow(/starting at 3 with 4 steps exceeds 6 slots/);
    expect(() => causalAttention(q, kv, kv, [0], { window: 0 })).toThrow(/window must be at least 1/);
    // A head size the kernel cannot take runs on tfjs ops instead.
    expect(causalAttentionSupported(6)).toBe(false);
    const odd = tf.ones([1, 1, 2, 6]) as tf.Tensor4D;
    const out = causalAttention(odd, odd, odd, [0]);
    expect(Array.from(out.dataSync())).toEqual(new Array(12).fill(1));
    out.dispose();
    for (const t of [q, kv, odd]) t.dispose();
  });
});
