import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend.js';
import { kernelThreadCount } from '../src/kernel-sets/wasm/kernel-threads.js';
import {
  disposePackedLinear,
  packedLinear,
  packLinearValues,
} from '../src/kernel-sets/wasm/packed-linear.js';
import { quantLinear, quantRelaxedAvailable } from '../src/kernel-sets/wasm/quant-linear.js';
import {
  disposeQuantMatrix,
  GGUF_BLOCK_BYTES,
  QUANT_BLOCK,
  type QuantFormat,
  quantizeBlock,
  quantMatrixBytes,
  quantMatrixFromGguf,
} from '../src/kernel-sets/wasm/quant-matrix.js';
import { round } from './measure.js';

/**
 * The quantized linear kernels against core's f32 packed product on wasm:
 * GPT-2-small-shaped weights [in, out] at 1 and 4 rows, each product over
 * weights that come from memory (see streamedMedianMs), median of `reps`.
 * GB/s: the weight's bytes (f32: 4 per weight; q8/q4: quants, scales and
 * padding as stored) over the median time. The q8/q4 matrices are built
 * from GGUF blocks (quantized once), as a GGUF loader would build them.
 *
 *   node --conditions=@specstream/source --import tsx scripts/bench.ts --only quant --backends wasm
 *   node --conditions=@specstream/source --import tsx packages/core/bench/quant-bench.ts [reps]
 */

export const QUANT_BENCH_SHAPES: [name: string, inDim: number, outDim: number][] = [
  ['qkv 768×2304', 768, 2304],
  ['proj 768×768', 768, 768],
  ['fc 768×3072', 768, 3072],
  ['fc2 3072×768', 3072, 768],
  ['head 768×50257', 768, 50257],
];

type Variant = 'f32' | 'q8' | 'q4' | 'q4 relaxed';

export interface QuantBenchRow {
  shape: string;
  rows: number;
  variant: Variant;
  ms: number;
  gbPerS: number;
  /** f32's time over this one's. */
  speedup: number;
}

// Written once: untouched pages all map to the one zero page, which evicts nothing.
/** Copies of a weight are made until they hold this many bytes: twice this machine's 32 MB L3. */
const STREAM_BYTES = 64 << 20;
const MAX_COPIES = 128;

/**
 * Median over `reps` sweeps of the time per product when `copies` products,
 * each over its own copy of the weight, run back to back: as a model's
 * layers run, every weight read from memory (the copies together are past
 * the L3), the code and the kernel threads warm. (Flushing the caches
 * between single products instead also evicted the code and let the
 * threads fall asleep: a fixed ~0.1 ms that buried the small shapes.)
 */
function streamedMedianMs(run: (copy: number) => void, copies: number, reps: number): number {
  for (let c = 0; c < copies; c++) run(c);
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    for (let c = 0; c < copies; c++) run(c);
    times.push((performance.now() - t0) / copies);
  }
  times.sort((a, b) => a - b);
  return times[times.length >> 1];
}

/** GGUF blocks of a weight [in, out] (Q8_0 or Q4_0 bytes, quantized as quant-matrix.ts does). */
function ggufBlocks(format: QuantFormat, w: Float32Array, inDim: number, outDim: number): Uint8Array {
  const blocks = inDim / QUANT_BLOCK;
  const size = GGUF_BLOCK_BYTES[format];
  const data = new Uint8Array(outDim * blocks * size);
  const values = new Float64Array(QUANT_BLOCK);
  const quants = new Uint8Array(QUANT_BLOCK);
  for (let j = 0; j < outDim; j++) {
    for (let b = 0; b < blocks; b++) {
      for (let i = 0; i < QUANT_BLOCK; i++) values[i] = w[(b * QUANT_BLOCK + i) * outDim + j];
      const scale = quantizeBlock(format, values, quants);
      const at = (j * blocks + b) * size;
      data[at] = scale & 0xff;
      data[at + 1] = scale >> 8;
      data.set(quants.subarray(0, size - 2), at + 2);
    }
  }
  return data;
}

/** Deterministic weights shaped like a trained layer's (~N(0, 0.02), a few larger). */
function weights(n: number, seed: number): Float32Array {
  const w = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const u = s / 2 ** 32 - 0.5;
    w[i] = 0.04 * u * (1 + (s & 0xff) / 64);
  }
  return w;
}

export async function runQuantBench(
  options: { reps: number; rows?: number[]; shapes?: typeof QUANT_BENCH_SHAPES },
  log: (line: string) => void,
): Promise<{ threads: number; relaxed: boolean; rows: QuantBenchRow[] }> {
  const rowCounts = options.rows ?? [1, 4];
  const results: QuantBenchRow[] = [];
  const variants: Variant[] = [
    'f32',
    'q8',
    'q4',
    ...(quantRelaxedAvailable() ? ['q4 relaxed' as const] : []),
  ];
  for (const [shape, inDim, outDim] of options.shapes ?? QUANT_BENCH_SHAPES) {
    const w = weights(inDim * outDim, inDim + outDim);
    const bias = weights(outDim, 7);
    const blocks = { q8: ggufBlocks('q8', w, inDim, outDim), q4: ggufBlocks('q4', w, inDim, outDim) };
    for (const variant of variants) {
      const format: QuantFormat | undefined = variant === 'f32' ? undefined : variant === 'q8' ? 'q8' : 'q4';
      const bytes = format === undefined ? 4 * inDim * outDim : quantMatrixBytes(format, inDim, outDim);
      const copies = Math.min(MAX_COPIES, Math.max(2, Math.ceil(STREAM_BYTES / bytes)));
      const packed = Array.from({ length: format === undefined ? copies : 0 }, () =>
        packLinearValues(w, [inDim, outDim], { bias }),
      );
      const matrices = Array.from({ length: format === undefined ? 0 : copies }, () =>
        quantMatrixFromGguf(format!, blocks[format!], inDim, outDim, { bias }),
      );
      for (const rows of rowCounts) {
        const x = tf.tensor2d(weights(rows * inDim, rows), [rows, inDim]);
        const run = (copy: number) => {
          const y =
            format === undefined
              ? packedLinear(x, packed[copy])
              : quantLinear(x, matrices[copy], { relaxed: variant === 'q4 relaxed' });
          y.dispose();
        };
        const ms = streamedMedianMs(run, copies, options.reps);
        x.dispose();
        const f32 = results.find((r) => r.shape === shape && r.rows === rows && r.variant === 'f32');
        const row: QuantBenchRow = {
          shape,
          rows,
          variant,
          ms: round(ms, 3),
          gbPerS: round(bytes / ms / 1e6, 1),
          speedup: round(f32 ? f32.ms / ms : 1, 2),
        };
        results.push(row);
        log(
          `${shape.padEnd(15)} ${String(rows).padStart(2)} rows  ${variant.padEnd(10)} ${ms.toFixed(3).padStart(7)} ms ${row.gbPerS.toFixed(1).padStart(6)} GB/s  ×${row.speedup.toFixed(2)} vs f32`,
        );
      }
      for (const p of packed) disposePackedLinear(p);
      for (const m of matrices) disposeQuantMatrix(m);
    }
  }
  return { threads: kernelThreadCount(), relaxed: quantRelaxedAvailable(), rows: results };
}

/** One table row per shape and row count: each variant's ms, GB/s and speedup. */
export function quantBenchTable(rows: QuantBenchRow[]): Record<string, string | number>[] {
  const keys = [...new Set(rows.map((r) => `${r.shape}|${r.rows}`))];
  return keys.map((key) => {
    const [shape, count] = key.split('|');
    const entry: Record<string, string | number> = { shape, rows: Number(count) };
    for (const r of rows.filter((x) => `${x.shape}|${x.rows}` === key)) {
      entry[`${r.variant} ms`] = r.ms;
      entry[`${r.variant} GB/s`] = r.gbPerS;
      if (r.variant !== 'f32') entry[`${r.variant} ×`] = r.speedup;
    }
    return entry;
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await initBackend({ backend: 'wasm' });
  const result = await runQuantBench({ reps: Number(process.argv[2] ?? 21) }, (line) =>
    console.log(`  ${line}`),
  );
  console.table(quantBenchTable(result.rows));
  writeFileSync(
    'bench-results/quant.json',
    `${JSON.stringify({ date: new Date().toISOString(), node: process.version, ...result }, null, 2)}\n`,
  );
  console.log('wrote bench-results/quant.json');
}
