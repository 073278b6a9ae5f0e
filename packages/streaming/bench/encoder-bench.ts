/**
 * Streaming encoder: the ~10 M-parameter causal streaming encoder
 * (STREAMING_ENCODER_10M, random weights) on 20 s of synthetic log-mel frames
 * (80 bins, 10 ms hop), through the streamingEncode operator.
 *
 * - T1 real-time factor: wall time of the whole stream / audio duration, at
 *   chunks of 80, 160, 320 ms (8, 16, 32 frames). Goal ≤ 0.2 on wasm.
 * - T2 latency: mean and p95 ms from a chunk's arrival (the notification
 *   completing it) to the emission of its encoded frames. Chunks are fed one
 *   at a time, each after the previous one's output: what a real-time source
 *   sees while the encoder keeps up (RTF < 1), without sleeping through the
 *   20 s. The algorithmic latency (the chunk's own duration) comes on top.
 * - T3 chunking overhead: streaming wall time / offline wall time (one
 *   extendStep over the 20 s; Whisper-style 30 s windows would be one window
 *   too), the median over runs of the ratio of a streamed run to an offline
 *   run just before it. Goal ≤ 1.3 at 320 ms.
 *
 * Every figure is the median of `reps` runs after one warm-up run.
 *
 *   node --conditions=@specstream/source --import tsx packages/streaming/bench/encoder-bench.ts
 *
 * Standalone, it starts the wasm backend and prints the table.
 */

import os from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { currentBackend, initBackend } from '@specstream/core';
import {
  createStreamingEncoder,
  randomStreamingEncoderWeights,
  STREAMING_ENCODER_10M,
  type StreamingEncoder,
  streamingEncoderParameterCount,
} from '@specstream/models';
import * as tf from '@tensorflow/tfjs-core';
import { Subject } from 'rxjs';
import { formatTable } from '../../../scripts/lib/format-table.js';
import { type EncodedChunk, streamingEncode } from '../src/encode.js';

const HOP_MS = 10;
const GOAL_RTF = 0.2;
const GOAL_OVERHEAD = 1.3;

export interface EncoderBenchOptions {
  /** Seconds of synthetic audio (default 20). */
  seconds?: number;
  /** Chunk sizes in mel frames (default 8, 16, 32). */
  chunkFrames?: number[];
  /** Timed runs per case after one warm-up (default 5). */
  reps?: number;
  /** leftContext of the encoder state, in output frames (default Infinity: full causal attention). */
  leftContext?: number;
}

interface StreamRun {
  totalMs: number;
  latencies: number[];
  chunks: number;
  outputFrames: number;
}

export async function runEncoderBench(
  log: (line: string) => void,
  options: EncoderBenchOptions = {},
): Promise<Record<string, unknown>> {
  const { seconds = 20, chunkFrames = [8, 16, 32], reps = 5 } = options;
  const leftContext = options.leftContext ?? Number.POSITIVE_INFINITY;
  const config = STREAMING_ENCODER_10M;
  const totalFrames = Math.round((seconds * 1000) / HOP_MS);
  const frames = syntheticLogMel(totalFrames, config.nMels, 1234);
  const encoder = createStreamingEncoder(config, randomStreamingEncoderWeights(config, 1));
  const before = tf.memory().numTensors;
  try {
    const audioMs = totalFrames * HOP_MS;
    const offlineMs = await median(reps, async () => {
      const t0 = performance.now();
      await offline(encoder, frames, leftContext);
      return performance.now() - t0;
    });
    const rows: Record<string, unknown>[] = [];
    for (const chunk of chunkFrames) {
      await stream(encoder, frames, chunk, leftContext); // warm-up
      const runs: StreamRun[] = [];
      // T3 pairs each streamed run with an offline run right before it, so a drift in
      // the machine's speed (a noisy neighbour, clock changes) cancels in the ratio.
      const ratios: number[] = [];
      for (let i = 0; i < reps; i++) {
        const t0 = performance.now();
        await offline(encoder, frames, leftContext);
        const pairedOffline = performance.now() - t0;
        const run = await stream(encoder, frames, chunk, leftContext);
        runs.push(run);
        ratios.push(run.totalMs / pairedOffline);
      }
      ratios.sort((a, b) => a - b);
      runs.sort((a, b) => a.totalMs - b.totalMs);
      const run = runs[Math.floor(runs.length / 2)];
      const sorted = [...run.latencies].sort((a, b) => a - b);
      rows.push({
        chunkMs: chunk * HOP_MS,
        chunkFrames: chunk,
        calls: run.chunks,
        outputFrames: run.outputFrames,
        totalMs: round(run.totalMs),
        rtf: round(run.totalMs / audioMs, 4),
        latencyMeanMs: round(run.latencies.reduce((a, b) => a + b, 0) / run.latencies.length),
        latencyP95Ms: round(sorted[Math.min(sorted.length - 1, Math.ceil(0.95 * sorted.length) - 1)]),
        overhead: round(ratios[Math.floor(ratios.length / 2)], 3),
        overheadRange: [round(ratios[0], 3), round(ratios[ratios.length - 1], 3)],
      });
    }
    if (tf.memory().numTensors !== before) {
      throw new Error(`encoder bench leaked ${tf.memory().numTensors - before} tensors`);
    }

    const parameters = streamingEncoderParameterCount(config);
    log(
      `streaming encoder: ${(parameters / 1e6).toFixed(2)} M parameters (d ${config.dModel}, ${config.layers} layers, ` +
        `${config.heads} heads, ff ${config.ffDim}, vocab ${config.vocabSize}), random weights; ` +
        `${seconds} s of ${config.nMels}-bin log-mel at ${HOP_MS} ms; backend ${currentBackend() ?? tf.getBackend()}; ` +
        `leftContext ${leftContext}; median of ${reps} runs`,
    );
    log(
      `offline (one extendStep over ${totalFrames} frames): ${offlineMs.toFixed(1)} ms, RTF ${(offlineMs / audioMs).toFixed(4)}`,
    );
    for (const line of formatTable(
      rows.map((r) => ({
        chunk: `${r.chunkMs} ms (${r.chunkFrames} fr)`,
        'T1 RTF': `${r.rtf}${(r.rtf as number) <= GOAL_RTF ? '' : ' (goal ≤ 0.2)'}`,
        'T2 mean ms': r.latencyMeanMs,
        'T2 p95 ms': r.latencyP95Ms,
        'T3 stream/offline': `${r.overhead} (${(r.overheadRange as number[]).join('–')})${r.chunkFrames === 32 && (r.overhead as number) > GOAL_OVERHEAD ? ' (goal ≤ 1.3)' : ''}`,
        calls: r.calls,
        'total ms': r.totalMs,
      })),
    )) {
      log(line);
    }
    return {
      bench: 'streaming-encoder',
      date: new Date().toISOString(),
      node: process.version,
      cpu: os.cpus()[0]?.model ?? 'unknown',
      cores: os.cpus().length,
      backend: currentBackend() ?? tf.getBackend(),
      model: { preset: 'STREAMING_ENCODER_10M', parameters, ...config },
      audioSeconds: seconds,
      frames: totalFrames,
      leftContext: Number.isFinite(leftContext) ? leftContext : 'Infinity',
      reps,
      offlineMs: round(offlineMs),
      offlineRtf: round(offlineMs / audioMs, 4),
      goals: { rtf: GOAL_RTF, overheadAt320ms: GOAL_OVERHEAD },
      rows,
    };
  } finally {
    encoder.dispose();
  }
}

/** One extendStep over every frame, its output read back. */
async function offline(encoder: StreamingEncoder, frames: Float32Array, leftContext: number): Promise<void> {
  const steps = frames.length / encoder.inputDim;
  const state = encoder.createState({ batch: 1, maxLength: steps, leftContext });
  const input = tf.tensor3d(frames, [1, steps, encoder.inputDim]);
  try {
    const { outputs } = encoder.extendStep(state, input);
    await outputs.data();
    outputs.dispose();
  } finally {
    input.dispose();
    encoder.disposeState(state);
  }
}

/** The stream fed one chunk at a time, each once the previous chunk's frames are out. */
async function stream(
  encoder: StreamingEncoder,
  frames: Float32Array,
  chunkFrames: number,
  leftContext: number,
): Promise<StreamRun> {
  const nMels = encoder.inputDim;
  const total = frames.length / nMels;
  const subject = new Subject<Float32Array>();
  const latencies: number[] = [];
  let outputFrames = 0;
  let wake: (() => void) | undefined;
  const done = new Promise<void>((resolveDone, reject) => {
    subject.pipe(streamingEncode(encoder, { chunkFrames, leftContext })).subscribe({
      next(chunk: EncodedChunk) {
        latencies.push(chunk.latencyMs);
        outputFrames += chunk.outputFrames;
        wake?.();
      },
      error: reject,
      complete: resolveDone,
    });
  });
  const t0 = performance.now();
  let chunks = 0;
  for (let at = 0; at < total; at += chunkFrames) {
    const end = Math.min(total, at + chunkFrames);
    // A full chunk (≥ 4 frames) always yields output; a short last one waits for the completion.
    const emitted = end - at === chunkFrames ? new Promise<void>((r) => (wake = r)) : undefined;
    subject.next(frames.subarray(at * nMels, end * nMels));
    chunks++;
    await emitted;
  }
  subject.complete();
  await done;
  return { totalMs: performance.now() - t0, latencies, chunks, outputFrames };
}

/** Normal values around a log-mel-like level (seeded LCG + Box–Muller): only the shape matters here. */
function syntheticLogMel(frames: number, nMels: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const random = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 1) / 2 ** 32;
  };
  const out = new Float32Array(frames * nMels);
  for (let i = 0; i < out.length; i++) {
    out[i] = Math.sqrt(-2 * Math.log(random())) * Math.cos(2 * Math.PI * random());
  }
  return out;
}

async function median(reps: number, run: () => Promise<number>): Promise<number> {
  await run(); // warm-up
  const times: number[] = [];
  for (let i = 0; i < reps; i++) times.push(await run());
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

const round = (x: number, digits = 2) => Number(x.toFixed(digits));

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await initBackend({ backend: 'wasm' });
  const result = await runEncoderBench((line) => console.log(line));
  console.log(JSON.stringify(result, null, 2));
}
