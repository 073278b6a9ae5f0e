import * as tf from '@tensorflow/tfjs-core';
import type { ProgramUniform, WebGpuBackendPrograms, WebGpuProgram } from './webgpu-program.js';

/**
 * A pass of core's WGSL programs recorded once and replayed in one
 * submission. Through tfjs's program runner every dispatch costs tens of µs
 * of host time (an output tensor, a uniform buffer written, a bind group
 * made, the kernel's bookkeeping), which for a decode step of GPT-2 small
 * is most of the step. A pass of a given shape over a given KV cache always
 * runs the same programs on the same buffers with the same uniforms, once
 * every value that changes from step to step (ids, row lengths, rotary
 * angles) is read from a buffer rather than from uniforms: recording keeps
 * each dispatch's pipeline, a bind group over the same buffers (kept alive
 * by the tape) and its uniforms (written once into one buffer), and a
 * replay writes the pass's few inputs, encodes every dispatch into one
 * compute pass and submits once.
 *
 * Recording runs the pass normally, through tfjs, and watches it: a program
 * that is not core's (a tfjs kernel) or a host upload during the pass makes
 * it unrecordable (its result is still right; the caller then keeps running
 * such passes the usual way).
 */

/** The parts of tfjs-backend-webgpu's WebGPUBackend (4.x) a tape uses. */
interface WebGpuBackendInternals extends WebGpuBackendPrograms {
  device: GpuDevice;
  queue: GpuQueue;
  tensorMap: { get(dataId: object): { resource?: unknown; refCount: number } | undefined };
  commandEncoder: GpuCommandEncoder | null;
  commandQueueOwnedIds: WeakSet<object>;
  write(values: unknown, shape: number[], dtype: tf.DataType): object;
  incRef(dataId: object): void;
  disposeData(dataId: object, force?: boolean): boolean;
  uploadToGPU(dataId: object): void;
  makeTensorInfo(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
}

/** The few WebGPU calls a tape makes (Dawn's objects, untyped here: no DOM types in core). */
interface GpuDevice {
  limits: { minUniformBufferOffsetAlignment: number; maxStorageBufferBindingSize: number };
  features: { has(name: string): boolean };
  createQuerySet(descriptor: { type: 'timestamp'; count: number }): { destroy(): void };
  createBuffer(descriptor: { size: number; usage: number }): GpuBuffer;
  createBindGroup(descriptor: { layout: unknown; entries: unknown[] }): unknown;
  createCommandEncoder(): GpuCommandEncoder;
}
interface GpuQueue {
  writeBuffer(
    buffer: unknown,
    offset: number,
    data: ArrayBufferView,
    dataOffset?: number,
    size?: number,
  ): void;
  submit(buffers: unknown[]): void;
}
interface GpuBuffer {
  destroy(): void;
  mapAsync(mode: number): Promise<void>;
  getMappedRange(): ArrayBuffer;
  unmap(): void;
}
interface GpuComputePass {
  setPipeline(pipeline: unknown): void;
  setBindGroup(index: number, group: unknown): void;
  dispatchWorkgroups(x: number, y: number, z: number): void;
  end(): void;
}
interface GpuCommandEncoder {
  beginComputePass(descriptor?: object): GpuComputePass;
  resolveQuerySet(querySet: unknown, first: number, count: number, target: unknown, offset: number): void;
  copyBufferToBuffer(
    source: unknown,
    sourceOffset: number,
    target: unknown,
    targetOffset: number,
    size: number,
  ): void;
  finish(): unknown;
}
interface Pipeline {
  getBindGroupLayout(index: number): unknown;
}

interface Dispatch {
  pipeline: unknown;
  bindGroup: unknown;
  workgroups: [number, number, number];
  /** The program's shaderKey (for profiles). */
  program: string;
}

/** What one program call looked like while recording. */
interface Call {
  program: WebGpuProgram;
  inputs: tf.TensorInfo[];
  output: tf.TensorInfo;
  uniforms: ArrayBuffer;
}

/**
 * A value the replay writes before the dispatches: host data, or a copy from a device tensor,
 * whole or (`rows`) row by row into a strided place: row r's `length` values from
 * r·fromStride to r·toStride + toOffset. Copies land after the host writes, so a copy may
 * overwrite part of a host-written tensor.
 */
export type TapeWrite =
  | { to: tf.TensorInfo; data: Int32Array | Float32Array }
  | { to: tf.TensorInfo; from: tf.TensorInfo; rows?: RowCopies };

export interface RowCopies {
  count: number;
  length: number;
  fromStride: number;
  toStride: number;
  toOffset: number;
}

export interface PassTape {
  /** Dispatches recorded. */
  readonly dispatches: number;
  /**
   * Runs the pass again after `writes`, in one submission; returns the
   * pass's output as a new tensor (the tape's own buffer is overwritten by
   * the next replay).
   */
  replay(writes: readonly TapeWrite[]): tf.Tensor;
  dispose(): void;
}

let recording: Call[] | undefined;
let foreign: string | undefined;

/** The backend runner core's programs go through: records their calls while a recording is on. */
export function recordingRunner(backend: object): Pick<WebGpuBackendInternals, 'runWebGPUProgram'> {
  const gpu = backend as WebGpuBackendInternals;
  if (recording === undefined) return gpu;
  const calls = recording;
  return {
    runWebGPUProgram(program, inputs, dtype, uniforms, output) {
      ours = true;
      let result: tf.TensorInfo;
      try {
        result = gpu.runWebGPUProgram(program, inputs, dtype, uniforms, output);
      } finally {
        ours = false;
      }
      if (sizeOf(result.shape) > 0) {
        calls.push({
          program,
          inputs,
          output: result,
          uniforms: uniformBytes(program, inputs, result, uniforms),
        });
        // Kept for the tape: the pass disposes its intermediates, the tape reuses their buffers.
        for (const t of [...inputs, result]) gpu.incRef(t.dataId);
      }
      return result;
    },
  };
}

let ours = false;

/** Writes pending tfjs work to the queue, so what is submitted next runs after it. */
export function flushBackend(backend: object): void {
  const gpu = backend as WebGpuBackendInternals;
  if (gpu.commandEncoder !== null) {
    gpu.endComputePassEncoder();
    gpu.submitQueue();
  }
}

/**
 * Gives every written tensor its buffer, then submits tfjs's queued work:
 * tfjs uploads a tensor's initial values with a copy command in its own
 * encoder, which must run before the writes, and that work made the inputs
 * a pass reads (queue writes run before commands submitted after them).
 */
function placeAndFlush(gpu: WebGpuBackendInternals, writes: readonly TapeWrite[]): void {
  for (const w of writes) {
    bufferOf(gpu, w.to);
    if ('from' in w) bufferOf(gpu, w.from);
  }
  flushBackend(gpu);
}

/** The buffer of a tensor on the webgpu backend. */
function bufferOf(gpu: WebGpuBackendInternals, t: tf.TensorInfo): unknown {
  gpu.uploadToGPU(t.dataId);
  return gpu.tensorMap.get(t.dataId)!.resource;
}

/** Writes `writes` on the queue now (after flushing tfjs's pending work): for the pass about to be recorded. */
export function writePassInputs(writes: readonly TapeWrite[]): void {
  const gpu = tf.backend() as unknown as WebGpuBackendInternals;
  placeAndFlush(gpu, writes);
  const copies = writes.filter((w) => 'from' in w);
  for (const w of writes) if ('data' in w) gpu.queue.writeBuffer(bufferOf(gpu, w.to), 0, w.data);
  if (copies.length > 0) {
    const encoder = gpu.device.createCommandEncoder();
    encodeCopies(gpu, encoder, copies);
    gpu.queue.submit([encoder.finish()]);
  }
}

function encodeCopies(gpu: WebGpuBackendInternals, encoder: GpuCommandEncoder, writes: readonly TapeWrite[]) {
  for (const w of writes) {
    if (!('from' in w)) continue;
    const from = bufferOf(gpu, w.from);
    const to = bufferOf(gpu, w.to);
    if (w.rows === undefined) {
      encoder.copyBufferToBuffer(from, 0, to, 0, 4 * sizeOf(w.to.shape));
      continue;
    }
    const { count, length, fromStride, toStride, toOffset } = w.rows;
    for (let r = 0; r < count; r++) {
      encoder.copyBufferToBuffer(from, 4 * r * fromStride, to, 4 * (r * toStride + toOffset), 4 * length);
    }
  }
}

/**
 * Runs `pass` (core's programs on the webgpu backend) and records it. The
 * result is `pass`'s, copied into a tensor of its own; the tape is
 * undefined, with the reason, when the pass ran anything a tape cannot
 * replay.
 */
export function recordPass(pass: () => tf.Tensor): {
  result: tf.Tensor;
  tape?: PassTape;
  why?: string;
} {
  const gpu = tf.backend() as unknown as WebGpuBackendInternals;
  if (recording !== undefined) throw new Error('recordPass: a recording is already on');
  const calls: Call[] = [];
  const run = gpu.runWebGPUProgram;
  const write = gpu.write;
  recording = calls;
  foreign = undefined;
  // Watch for work that would not be in the tape: tfjs's own programs and uploads.
  gpu.runWebGPUProgram = function (this: WebGpuBackendInternals, ...args) {
    if (!ours && sizeOf(args[0].outputShape) > 0) foreign ??= `tfjs program ${args[0].shaderKey ?? '?'}`;
    return run.apply(this, args);
  };
  gpu.write = function (this: WebGpuBackendInternals, ...args) {
    // makeTensorInfo writes outputs without values: only values are uploads.
    if (args[0] != null && sizeOf(args[1]) > 0) foreign ??= `an upload of [${args[1]}]`;
    return write.apply(this, args);
  };
  const release = () => {
    for (const call of calls) for (const t of [...call.inputs, call.output]) gpu.disposeData(t.dataId);
  };
  let output: tf.Tensor;
  try {
    output = pass();
  } catch (error) {
    release();
    throw error;
  } finally {
    recording = undefined;
    gpu.runWebGPUProgram = run;
    gpu.write = write;
  }
  const limit = gpu.device.limits.maxStorageBufferBindingSize;
  const tooLarge = calls
    .flatMap((c) => [c.output, ...c.inputs])
    .find((t) => (bufferOf(gpu, t) as { size: number }).size > limit);
  const why =
    foreign ??
    (calls.length === 0 || calls[calls.length - 1].output.dataId !== output.dataId
      ? 'the pass output is not its last program'
      : tooLarge
        ? `a buffer of [${tooLarge.shape}] exceeds the device's maxStorageBufferBindingSize (${limit} bytes)`
        : undefined);
  if (why !== undefined) {
    release();
    return { result: output, why };
  }
  const tape = makeTape(gpu, calls, output);
  const result = copyOutput(gpu, output);
  output.dispose();
  flushBackend(gpu);
  return { result, tape };
}

/** A new tensor holding `source`'s values, copied by a command of the backend's encoder. */
function copyOutput(gpu: WebGpuBackendInternals, source: tf.TensorInfo): tf.Tensor {
  const info = gpu.makeTensorInfo(source.shape.slice(), source.dtype);
  gpu.ensureCommandEncoderReady();
  gpu.endComputePassEncoder();
  gpu.commandEncoder!.copyBufferToBuffer(
    bufferOf(gpu, source),
    0,
    bufferOf(gpu, info),
    0,
    4 * sizeOf(source.shape),
  );
  gpu.commandQueueOwnedIds.add(info.dataId);
  return tf.engine().makeTensorFromTensorInfo(info);
}

function makeTape(gpu: WebGpuBackendInternals, calls: Call[], output: tf.Tensor): PassTape {
  const align = Math.max(256, gpu.device.limits.minUniformBufferOffsetAlignment);
  const offsets: number[] = [];
  let size = 0;
  for (const call of calls) {
    offsets.push(size);
    size += Math.ceil(call.uniforms.byteLength / align) * align;
  }
  const usage = (globalThis as unknown as { GPUBufferUsage: Record<string, number> }).GPUBufferUsage;
  const uniforms = gpu.device.createBuffer({
    size: Math.max(size, 16),
    usage: usage.UNIFORM | usage.COPY_DST,
  });
  const all = new Uint8Array(size);
  for (const [i, call] of calls.entries()) all.set(new Uint8Array(call.uniforms), offsets[i]);
  gpu.queue.writeBuffer(uniforms, 0, all);
  const dispatches: Dispatch[] = calls.map((call, i) => {
    const pipeline = call.program.pipeline as Pipeline;
    const buffers = [call.output, ...call.inputs].map((t) => ({ buffer: bufferOf(gpu, t) }));
    return {
      pipeline,
      bindGroup: gpu.device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: [
          ...buffers.map((resource, binding) => ({ binding, resource })),
          {
            binding: buffers.length,
            resource: { buffer: uniforms, offset: offsets[i], size: call.uniforms.byteLength },
          },
        ],
      }),
      workgroups: [...call.program.dispatch],
      program: call.program.shaderKey,
    };
  });
  const outputInfo: tf.TensorInfo = { dataId: output.dataId, shape: output.shape, dtype: output.dtype };
  gpu.incRef(output.dataId);
  let disposed = false;
  return {
    dispatches: dispatches.length,
    replay(writes) {
      if (disposed) throw new Error('replay of a disposed pass tape');
      placeAndFlush(gpu, writes);
      for (const w of writes) if ('data' in w) gpu.queue.writeBuffer(bufferOf(gpu, w.to), 0, w.data);
      const encoder = gpu.device.createCommandEncoder();
      encodeCopies(gpu, encoder, writes);
      const slot = timing && timing.used < TIMED_REPLAYS ? timing.used++ : undefined;
      if (profiling?.armed) {
        encodeProfiled(encoder, dispatches, profiling);
      } else {
        const pass = encoder.beginComputePass(
          slot === undefined
            ? {}
            : {
                timestampWrites: {
                  querySet: timing!.querySet,
                  beginningOfPassWriteIndex: 2 * slot,
                  endOfPassWriteIndex: 2 * slot + 1,
                },
              },
        );
        let pipeline: unknown;
        for (const d of dispatches) {
          if (d.pipeline !== pipeline) {
            pipeline = d.pipeline;
            pass.setPipeline(pipeline);
          }
          pass.setBindGroup(0, d.bindGroup);
          pass.dispatchWorkgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2]);
        }
        pass.end();
      }
      if (slot !== undefined)
        encoder.resolveQuerySet(timing!.querySet, 2 * slot, 2, timing!.resolved, slot * RESOLVE_STRIDE);
      const info = gpu.makeTensorInfo(outputInfo.shape.slice(), outputInfo.dtype);
      encoder.copyBufferToBuffer(
        bufferOf(gpu, outputInfo),
        0,
        bufferOf(gpu, info),
        0,
        4 * sizeOf(outputInfo.shape),
      );
      gpu.queue.submit([encoder.finish()]);
      return tf.engine().makeTensorFromTensorInfo(info);
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      for (const call of calls) for (const t of [...call.inputs, call.output]) gpu.disposeData(t.dataId);
      gpu.disposeData(outputInfo.dataId);
      // Replays already submitted keep the buffer until they finish (WebGPU defers the destroy).
      (uniforms as GpuBuffer).destroy();
    },
  };
}

/** Replays timed at most between two reads of their times. */
const TIMED_REPLAYS = 256;
/** resolveQuerySet writes at offsets that are multiples of 256. */
const RESOLVE_STRIDE = 256;

let timing:
  | { querySet: { destroy(): void }; resolved: GpuBuffer; used: number; gpu: WebGpuBackendInternals }
  | undefined;

/**
 * Times every replay's compute pass on the GPU (timestamp queries, where the
 * device has them: Dawn offers them with allow_unsafe_apis, see
 * SPECSTREAM_DAWN_OPTIONS) until readReplayTimes; returns whether it can.
 * For benchmarks: timed passes are slightly slower.
 */
export function timeReplays(): boolean {
  const gpu = tf.backend() as unknown as WebGpuBackendInternals;
  if (timing !== undefined) return true;
  if (!gpu.device?.features.has('timestamp-query')) return false;
  const usage = (globalThis as unknown as { GPUBufferUsage: Record<string, number> }).GPUBufferUsage;
  timing = {
    gpu,
    querySet: gpu.device.createQuerySet({ type: 'timestamp', count: 2 * TIMED_REPLAYS }),
    resolved: gpu.device.createBuffer({
      size: TIMED_REPLAYS * RESOLVE_STRIDE,
      usage: usage.QUERY_RESOLVE | usage.COPY_SRC,
    }),
    used: 0,
  };
  return true;
}

/** GPU ms of each replay timed since timeReplays (up to 256), and stops timing. */
export async function readReplayTimes(): Promise<number[]> {
  if (timing === undefined) return [];
  const { gpu, querySet, resolved, used } = timing;
  timing = undefined;
  const globals = globalThis as unknown as {
    GPUBufferUsage: Record<string, number>;
    GPUMapMode: Record<string, number>;
  };
  const size = Math.max(used, 1) * RESOLVE_STRIDE;
  const staging = gpu.device.createBuffer({
    size,
    usage: globals.GPUBufferUsage.MAP_READ | globals.GPUBufferUsage.COPY_DST,
  });
  const encoder = gpu.device.createCommandEncoder();
  encoder.copyBufferToBuffer(resolved, 0, staging, 0, size);
  gpu.queue.submit([encoder.finish()]);
  await staging.mapAsync(globals.GPUMapMode.READ);
  const ticks = new BigInt64Array(staging.getMappedRange().slice(0));
  staging.unmap();
  for (const b of [staging, resolved]) b.destroy();
  querySet.destroy();
  const stride = RESOLVE_STRIDE / 8;
  return Array.from({ length: used }, (_, i) => Number(ticks[i * stride + 1] - ticks[i * stride]) / 1e6);
}

/** One dispatch of a profiled replay: its program, workgroups and GPU ms. */
export interface DispatchTime {
  program: string;
  workgroups: number;
  ms: number;
}

let profiling:
  | {
      armed: boolean;
      gpu: WebGpuBackendInternals;
      querySet?: { destroy(): void };
      resolved?: GpuBuffer;
      dispatches: Dispatch[];
    }
  | undefined;

/**
 * The next replay (of any tape) runs each dispatch in a compute pass of its
 * own with timestamps around it, so readReplayProfile can say where the
 * pass's GPU time goes. For benchmarks: separate passes cost a little more
 * than one. Returns whether the device can (timestamp queries).
 */
export function profileNextReplay(): boolean {
  const gpu = tf.backend() as unknown as WebGpuBackendInternals;
  if (!gpu.device?.features.has('timestamp-query')) return false;
  profiling = { armed: true, gpu, dispatches: [] };
  return true;
}

function encodeProfiled(
  encoder: GpuCommandEncoder,
  dispatches: Dispatch[],
  p: NonNullable<typeof profiling>,
): void {
  const usage = (globalThis as unknown as { GPUBufferUsage: Record<string, number> }).GPUBufferUsage;
  const count = 2 * dispatches.length;
  p.armed = false;
  p.dispatches = dispatches;
  p.querySet = p.gpu.device.createQuerySet({ type: 'timestamp', count });
  p.resolved = p.gpu.device.createBuffer({ size: 8 * count, usage: usage.QUERY_RESOLVE | usage.COPY_SRC });
  for (const [i, d] of dispatches.entries()) {
    const pass = encoder.beginComputePass({
      timestampWrites: {
        querySet: p.querySet,
        beginningOfPassWriteIndex: 2 * i,
        endOfPassWriteIndex: 2 * i + 1,
      },
    });
    pass.setPipeline(d.pipeline);
    pass.setBindGroup(0, d.bindGroup);
    pass.dispatchWorkgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2]);
    pass.end();
  }
  encoder.resolveQuerySet(p.querySet, 0, count, p.resolved, 0);
}

/** The profiled replay's dispatches in order (empty if none ran since profileNextReplay). */
export async function readReplayProfile(): Promise<DispatchTime[]> {
  const p = profiling;
  profiling = undefined;
  if (!p?.resolved || !p.querySet) return [];
  const globals = globalThis as unknown as {
    GPUBufferUsage: Record<string, number>;
    GPUMapMode: Record<string, number>;
  };
  const size = 16 * p.dispatches.length;
  const staging = p.gpu.device.createBuffer({
    size,
    usage: globals.GPUBufferUsage.MAP_READ | globals.GPUBufferUsage.COPY_DST,
  });
  const encoder = p.gpu.device.createCommandEncoder();
  encoder.copyBufferToBuffer(p.resolved, 0, staging, 0, size);
  p.gpu.queue.submit([encoder.finish()]);
  await staging.mapAsync(globals.GPUMapMode.READ);
  const ticks = new BigInt64Array(staging.getMappedRange().slice(0));
  staging.unmap();
  for (const b of [staging, p.resolved]) b.destroy();
  p.querySet.destroy();
  return p.dispatches.map((d, i) => ({
    program: d.program,
    workgroups: d.workgroups[0] * d.workgroups[1] * d.workgroups[2],
    ms: Number(ticks[2 * i + 1] - ticks[2 * i]) / 1e6,
  }));
}

/**
 * The uniforms tfjs-backend-webgpu (4.x, recordAndSubmit and makeUniforms)
 * writes for a call, byte for byte: NaN, Infinity, each input's and the
 * output's shape and strides, the size when the program asks, then the
 * program's own, each aligned as WGSL lays out the struct.
 */
function uniformBytes(
  program: WebGpuProgram,
  inputs: tf.TensorInfo[],
  output: tf.TensorInfo,
  own: ProgramUniform[] = [],
): ArrayBuffer {
  const fields: { type: 'float32' | 'int32'; data: number[] }[] = [
    { type: 'float32', data: [Number.NaN] },
    { type: 'float32', data: [Number.POSITIVE_INFINITY] },
  ];
  for (const shape of [...inputs, output].map((t) => t.shape)) {
    fields.push({ type: 'int32', data: shape.slice() });
    fields.push({ type: 'int32', data: tf.util.computeStrides(shape) });
  }
  if (program.size) fields.push({ type: 'int32', data: [sizeOf(program.outputShape)] });
  fields.push(...own.map((u) => ({ type: u.type, data: u.data.slice() })));
  let offset = 0;
  let previous = 0;
  let widest = 1;
  const offsets: number[] = [];
  for (const f of fields) {
    if (f.data.length === 0) f.data = [1];
    const n = f.data.length;
    let alignment = n === 1 ? 4 : n === 2 ? 8 : 16;
    if (n > 6) throw new Error(`a uniform of ${n} values has no WGSL layout`);
    if (previous === 5 || previous === 6) alignment = 16;
    widest = Math.max(widest, alignment);
    offset = Math.ceil(offset / alignment) * alignment;
    previous = n;
    offsets.push(offset);
    offset += 4 * n;
  }
  const bytes = new ArrayBuffer(Math.ceil(offset / widest) * widest);
  fields.forEach((f, i) => {
    const View = f.type === 'int32' ? Int32Array : Float32Array;
    new View(bytes, offsets[i], f.data.length).set(f.data);
  });
  return bytes;
}

const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
