import * as tf from '@tensorflow/tfjs-core';
import { type CausalLm, type CausalLmConfig, createCausalLm } from '../src/causal-lm.js';
import { generate } from '../src/generate.js';
import { greedyRows } from '../src/kernel-sets/webgpu/greedy-rows.js';
import {
  type DispatchTime,
  profileNextReplay,
  readReplayProfile,
  readReplayTimes,
  timeReplays,
} from '../src/kernel-sets/webgpu/pass-tape.js';
import { MAIN, requireWebGpuPrograms, type WebGpuProgram } from '../src/kernel-sets/webgpu/webgpu-program.js';
import { prefill } from '../src/prefill.js';
import { GPT2_SMALL_SHAPE, randomCausalLmWeights } from '../src/random-model.js';
import { LLAMA_05B_SHAPE } from './core-bench.js';
import { round, settle } from './measure.js';

/**
 * The GPU suite (webgpu only): greedy decoding by generate (on webgpu each
 * step runs on the previous step's argmax on the device and is queued
 * before that argmax is read back, 4 bytes a row) for
 * GPT-2 small and the Llama-0.5B shape at several batch sizes, with the
 * webgpu set's recorded passes (one submission a step, pass-tape.ts) and
 * without (tfjs's program runner, a dispatch at a time). Per row: tokens/s;
 * host ms a step (the time the step's calls take before the read waits);
 * GPU ms a step (timestamp queries around the recorded pass, where the
 * device has them); pipelined ms a step (steps queued back to back without
 * reads: what the step costs once the read's round trip is hidden); and the
 * weight bytes a step reads over its GPU time against the device's copy
 * bandwidth measured here (G1).
 */
export interface GpuBenchOptions {
  batches: number[];
  /** Timed decode steps per row. */
  steps: number;
  /** Prompt length before the steps. */
  context: number;
  reps: number;
  /** Only shapes whose name and weights contain one of these (e.g. 'GPT-2 small f32'); default all. */
  shapes?: string[];
  /** Weight formats that also run per-op (default f32 and f16; every format runs recorded). */
  perOpWeights?: string[];
  /** Trained models too (the shipped target), each loaded in every format. */
  models?: GpuBenchModel[];
}

/** A model the suite loads itself (core cannot: loading is @specstream/models'). */
export interface GpuBenchModel {
  name: string;
  /** Its MLP's width (the weight bytes a step reads). */
  mlpWidth: number;
  load(weights: GpuWeights): Promise<CausalLm>;
}

interface Shape {
  name: string;
  config: CausalLmConfig;
  weights: GpuWeights;
}

export type GpuWeights = 'f32' | 'f16' | 'q8' | 'q4';

const SHAPES: Shape[] = (['GPT-2 small', 'Llama-0.5B'] as const).flatMap((name) =>
  (['f32', 'f16', 'q8', 'q4'] as const).map((weights) => ({
    name,
    config: name === 'GPT-2 small' ? GPT2_SMALL_SHAPE : LLAMA_05B_SHAPE,
    weights,
  })),
);

/**
 * Bytes a weight takes in the webgpu set's products: q8 and q4 add an f32
 * scale per 32 weights (row-linear.ts).
 */
const BYTES_PER_WEIGHT: Record<GpuWeights, number> = { f32: 4, f16: 2, q8: 1 + 4 / 32, q4: 0.5 + 4 / 32 };

/**
 * Bytes of weights a decode step of randomCausalLmWeights' model reads: every
 * product's (MLP 4·hidden wide) and the head's, one embedding row aside.
 */
export function weightBytesPerStep(
  config: CausalLmConfig,
  weights: GpuWeights,
  mlpWidth = 4 * config.hiddenSize,
): number {
  const { hiddenSize: d, layers, heads, kvHeads, headDim, vocabSize } = config;
  const mlp = config.gatedMlp ? 3 : 2;
  const perLayer = d * (heads + 2 * kvHeads) * headDim + heads * headDim * d + mlp * d * mlpWidth;
  return (layers * perLayer + vocabSize * d) * BYTES_PER_WEIGHT[weights];
}

export interface GpuBenchRow {
  shape: string;
  weights: string;
  batch: number;
  path: 'recorded' | 'per-op';
  tokensPerS: number;
  hostMs: number;
  pipelinedMs: number;
  gpuMs?: number;
  weightGBperS?: number;
  ofCopyBandwidth?: number;
  /** Weight bytes over the pipelined step (steps back to back, the GPU kept busy). */
  pipelinedWeightGBperS?: number;
  /**
   * Recorded path, where timestamps allow: one step replayed with each dispatch in a pass of
   * its own, its GPU ms summed per program (most first) and in all.
   */
  profile?: {
    totalMs: number;
    dispatches: number;
    programs: { program: string; calls: number; ms: number }[];
  };
  profileError?: string;
}

/** A profiled replay's dispatches summed per program, most time first. */
function summarize(times: DispatchTime[]): NonNullable<GpuBenchRow['profile']> {
  const by = new Map<string, { program: string; calls: number; ms: number }>();
  for (const t of times) {
    const entry = by.get(t.program) ?? { program: t.program, calls: 0, ms: 0 };
    entry.calls++;
    entry.ms += t.ms;
    by.set(t.program, entry);
  }
  const programs = [...by.values()].sort((a, b) => b.ms - a.ms).map((e) => ({ ...e, ms: round(e.ms, 4) }));
  return {
    totalMs: round(
      times.reduce((a, t) => a + t.ms, 0),
      4,
    ),
    dispatches: times.length,
    programs,
  };
}

const tokensOf = (n: number, row: number, vocab: number) =>
  Array.from({ length: n }, (_, i) => (i * 131 + row * 17 + 5) % vocab);

export async function runGpuBench(
  o: GpuBenchOptions,
  log: (line: string) => void,
): Promise<{ copyGBperS: number; readGBperS: number; timestamps: boolean; rows: GpuBenchRow[] }> {
  const copyGBperS = await copyBandwidth();
  const readGBperS = await readBandwidth();
  log(
    `G0 copy bandwidth: ${copyGBperS.toFixed(0)} GB/s (read + write, 256 MiB buffers); a WGSL program reading up to 1 GiB: ${readGBperS.toFixed(0)} GB/s`,
  );
  const rows: GpuBenchRow[] = [];
  let timestamps = false;
  const wanted = (name: string, weights: string) =>
    !o.shapes || o.shapes.some((want) => `${name} ${weights}`.includes(want));
  const runs = [
    ...SHAPES.filter((s) => wanted(s.name, s.weights)).map((shape) => ({
      name: shape.name,
      weights: shape.weights,
      make: async () =>
        createCausalLm(shape.config, randomCausalLmWeights(shape.config, { seed: 5 }), {
          kernels: 'webgpu',
          weights: shape.weights,
        }),
      mlpWidth: undefined as number | undefined,
    })),
    ...(o.models ?? []).flatMap((m) =>
      (['f32', 'f16', 'q8', 'q4'] as const)
        .filter((weights) => wanted(m.name, weights))
        .map((weights) => ({ name: m.name, weights, make: () => m.load(weights), mlpWidth: m.mlpWidth })),
    ),
  ];
  for (const shape of runs) {
    const model = await shape.make();
    const bytes = weightBytesPerStep(model.config, shape.weights, shape.mlpWidth);
    for (const batch of o.batches) {
      const perOp = (o.perOpWeights ?? ['f32', 'f16']).includes(shape.weights);
      for (const path of perOp ? (['recorded', 'per-op'] as const) : (['recorded'] as const)) {
        const row = await decodeRow(model, batch, path, o);
        timestamps ||= row.gpuMs !== undefined;
        // The step's GPU time where timestamps give it, else the pipelined step (an upper bound).
        const ms = row.gpuMs ?? row.pipelinedMs;
        const full: GpuBenchRow = {
          shape: shape.name,
          weights: shape.weights,
          batch,
          path,
          ...row,
          weightGBperS: round(bytes / ms / 1e6, 1),
          ofCopyBandwidth: round(bytes / ms / 1e6 / copyGBperS, 3),
          pipelinedWeightGBperS: round(bytes / row.pipelinedMs / 1e6, 1),
        };
        rows.push(full);
        if (full.profileError) log(`  profile failed: ${full.profileError}`);
        if (full.profile) {
          const top = full.profile.programs
            .slice(0, 6)
            .map((p) => `${p.program} ×${p.calls} ${p.ms.toFixed(3)} ms`)
            .join('; ');
          log(
            `  profile (each dispatch its own pass): ${full.profile.totalMs} ms over ${full.profile.dispatches} dispatches; ${top}`,
          );
        }
        log(
          `G ${shape.name} ${shape.weights} b${batch} ${path}: ${full.tokensPerS} tok/s, host ${full.hostMs} ms/step, pipelined ${full.pipelinedMs} ms/step${full.gpuMs === undefined ? '' : `, GPU ${full.gpuMs} ms/step`}, weights ${full.weightGBperS} GB/s (${(100 * full.ofCopyBandwidth!).toFixed(1)}% of copy), pipelined ${full.pipelinedWeightGBperS} GB/s`,
        );
      }
    }
    model.dispose();
  }
  return { copyGBperS: round(copyGBperS, 0), readGBperS: round(readGBperS, 0), timestamps, rows };
}

/** One shape, batch and path: decode, then the same steps queued without reads. */
async function decodeRow(
  model: CausalLm,
  batch: number,
  path: 'recorded' | 'per-op',
  o: GpuBenchOptions,
): Promise<Omit<GpuBenchRow, 'shape' | 'weights' | 'batch' | 'path'>> {
  const previous = process.env.SPECSTREAM_WEBGPU_RECORD;
  process.env.SPECSTREAM_WEBGPU_RECORD = path === 'recorded' ? 'on' : 'off';
  const V = model.vocabSize;
  const state = model.createState({ batch, maxLength: o.context + o.steps + 8 });
  try {
    await settle(
      prefill(
        model,
        state,
        Array.from({ length: batch }, (_, r) => tokensOf(o.context, r, V)),
      ),
    );
    let ids = Array.from({ length: batch }, (_, r) => [(r * 7 + 1) % V]);
    const step = async (): Promise<number> => {
      const t0 = performance.now();
      const { logits } = model.extendStep(state, ids);
      const picks = greedyRows(logits);
      logits.dispose();
      const host = performance.now() - t0;
      const values = (await picks.data()) as Int32Array;
      picks.dispose();
      ids = Array.from(values, (id) => [id]);
      return host;
    };
    // Warm-up: pipelines compiled, the pass recorded.
    for (let i = 0; i < 3; i++) await step();
    const start = state.lengths[0];
    // Host time: the step's calls (the pass and the argmax program) before the read waits.
    const hosts: number[] = [];
    for (let i = 0; i < o.steps; i++) hosts.push(await step());
    // Tokens/s: generate itself (greedy, so on webgpu its steps chain on the device), from the
    // first token to the last; GPU times from the first run's replays.
    const prompts = Array.from({ length: batch }, (_, r) => tokensOf(o.context, r, V));
    const rates: number[] = [];
    let gpuTimes: number[] = [];
    for (let rep = 0; rep < o.reps; rep++) {
      const timed = rep === 0 && path === 'recorded' && timeReplays();
      let first = 0;
      let last = 0;
      let tokens = 0;
      for await (const e of generate({ model, prompt: prompts, maxNewTokens: o.steps + 1 })) {
        last = performance.now();
        if (e.index === 0) first = last;
        else tokens++;
      }
      rates.push((tokens * 1000) / (last - first));
      if (timed) gpuTimes = await readReplayTimes();
    }
    // Pipelined: the same step queued o.steps times (rolled back each time), one read at the end.
    model.rollback(state, new Array(batch).fill(start));
    let profile: GpuBenchRow['profile'];
    let profileError: string | undefined;
    if (path === 'recorded' && profileNextReplay()) {
      try {
        model.extendStep(state, ids).logits.dispose();
        const times = await readReplayProfile();
        if (times.length > 0 && times.some((t) => t.ms > 0)) profile = summarize(times);
      } catch (error) {
        // A diagnostic: the row's figures stand without it.
        profileError = String(error);
      }
      model.rollback(state, new Array(batch).fill(start));
    }
    const queued = async () => {
      const t0 = performance.now();
      let last: tf.Tensor | undefined;
      for (let i = 0; i < o.steps; i++) {
        last?.dispose();
        model.rollback(state, new Array(batch).fill(start));
        last = model.extendStep(state, ids).logits;
      }
      await settle(greedyRows(last!));
      last!.dispose();
      return (performance.now() - t0) / o.steps;
    };
    await queued();
    const pipelined = median([await queued(), await queued(), await queued()]);
    return {
      tokensPerS: round(median(rates), 1),
      hostMs: round(median(hosts), 3),
      pipelinedMs: round(pipelined, 3),
      // Some adapters (lavapipe) write zeros: no time then.
      ...(gpuTimes.length > 0 && median(gpuTimes) > 0 ? { gpuMs: round(median(gpuTimes), 3) } : {}),
      ...(profile ? { profile } : {}),
      ...(profileError ? { profileError } : {}),
    };
  } finally {
    model.disposeState(state);
    if (previous === undefined) delete process.env.SPECSTREAM_WEBGPU_RECORD;
    else process.env.SPECSTREAM_WEBGPU_RECORD = previous;
  }
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};

/**
 * What a WGSL program reads per second: 1 GiB as vec4s, each of 65,536
 * workgroups of 256 threads summing its 16 KiB (a tfjs-runner program; the
 * read dominates). Five runs, one read of the sums at the end.
 */
async function readBandwidth(): Promise<number> {
  const limit = (tf.backend() as unknown as { device: { limits: { maxStorageBufferBindingSize: number } } })
    .device.limits.maxStorageBufferBindingSize;
  // 1 GiB, or the largest power of two a binding takes (lavapipe: 128 MiB).
  const bytes = Math.min(2 ** 30, 2 ** Math.floor(Math.log2(limit)));
  const source = tf.zeros([bytes / 4]);
  const groups = bytes / 16 / 1024;
  const program: WebGpuProgram = {
    variableNames: ['x'],
    outputShape: [groups],
    shaderKey: 'specstreamBenchRead',
    dispatchLayout: { x: [0] },
    dispatch: [groups, 1, 1],
    workgroupSize: [256, 1, 1],
    variableComponents: [4],
    getUserCode: () => `
    var<workgroup> partial : array<f32, 256>;
    ${MAIN} {
      let tid = i32(localId.x);
      let group = index / 256;
      var sum = vec4<f32>(0.0);
      // The bound (always true) keeps the uniforms in the layout, as tfjs binds them.
      let n = uniforms.xShape / 4;
      for (var i = 0; i < 4; i = i + 1) {
        let at = group * 1024 + i * 256 + tid;
        if (at < n) { sum = sum + x[at]; }
      }
      partial[tid] = sum.x + sum.y + sum.z + sum.w;
      workgroupBarrier();
      if (tid == 0) {
        var total = 0.0;
        for (var j = 0; j < 256; j = j + 1) { total = total + partial[j]; }
        result[group] = total;
      }
    }`,
  };
  const run = () => {
    const info = requireWebGpuPrograms().runWebGPUProgram(program, [source], 'float32');
    return tf.engine().makeTensorFromTensorInfo(info);
  };
  await settle(run());
  const times: number[] = [];
  for (let rep = 0; rep < 3; rep++) {
    const t0 = performance.now();
    const outs = Array.from({ length: 5 }, run);
    await outs[4].data();
    times.push((performance.now() - t0) / 5);
    for (const t of outs) t.dispose();
  }
  source.dispose();
  return bytes / median(times) / 1e6;
}

/** The device's copy bandwidth: 256 MiB copied buffer to buffer, read + write bytes over the time. */
async function copyBandwidth(): Promise<number> {
  const bytes = 256 * 2 ** 20;
  const floats = bytes / 4;
  const [a, b] = [tf.zeros([floats]), tf.zeros([floats])];
  const copies = 20;
  const backend = tf.backend() as unknown as {
    device: {
      createCommandEncoder(): {
        copyBufferToBuffer(a: unknown, ao: number, b: unknown, bo: number, n: number): void;
        finish(): unknown;
      };
      queue: { submit(b: unknown[]): void; onSubmittedWorkDone(): Promise<void> };
    };
    uploadToGPU(id: object): void;
    tensorMap: { get(id: object): { resource: unknown } };
    submitQueue(): void;
    commandEncoder: unknown;
    endComputePassEncoder(): void;
  };
  const buffer = (t: tf.Tensor) => {
    backend.uploadToGPU(t.dataId);
    return backend.tensorMap.get(t.dataId).resource;
  };
  const [from, to] = [buffer(a), buffer(b)];
  if (backend.commandEncoder) {
    backend.endComputePassEncoder();
    backend.submitQueue();
  }
  const run = async () => {
    const encoder = backend.device.createCommandEncoder();
    for (let i = 0; i < copies; i++) encoder.copyBufferToBuffer(from, 0, to, 0, bytes);
    const t0 = performance.now();
    backend.device.queue.submit([encoder.finish()]);
    await backend.device.queue.onSubmittedWorkDone();
    return performance.now() - t0;
  };
  await run();
  const ms = median([await run(), await run(), await run()]);
  a.dispose();
  b.dispose();
  return (2 * bytes * copies) / ms / 1e6;
}
