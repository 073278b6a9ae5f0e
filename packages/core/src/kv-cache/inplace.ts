import * as tf from '@tensorflow/tfjs-core';
import type { WasmBackendInternals } from '../kernel-sets/wasm/wasm-kernels.js';
import { kvWriteProgram } from '../kernel-sets/webgpu/webgpu-kv-write.js';
import { rowStarts, runWithStarts, webGpuPrograms } from '../kernel-sets/webgpu/webgpu-program.js';
import { type KvCache, type KvCacheShape, roundUp } from './kv-cache.js';

/**
 * A position-major buffer per layer, written in place. tfjs tensors are
 * immutable by contract; the cache breaks that only for buffers it allocated
 * itself and never hands out, which is what makes a write cost O(new steps)
 * instead of O(capacity).
 *
 * How a write reaches backend memory depends on the backend: cpu and wasm keep
 * float32 storage in host memory, which is set directly; webgpu keeps GPU
 * buffers, into which the new steps go by commands recorded in the backend's
 * own command stream (so they run after the kernels that made the steps and
 * before the kernels that read the cache next): with core's programs one
 * dispatch per buffer reading them straight from the packed q|k|v product
 * (writeHeads), otherwise a copy command per row and head.
 */
interface InplaceMemory {
  /** Copy rows of `source` [B, H, steps, D] to slots starts[r].. of `target` [B, H, capacity, D]. */
  copySteps(target: tf.Tensor4D, source: tf.Tensor4D, starts: ArrayLike<number>): void;
  /** Slots [0, size) of `source` as a new tensor; O(size) whatever the capacity. */
  readPrefix(source: tf.Tensor4D, size: number): tf.Tensor4D;
  /**
   * Heads firstHead.. of packed projections `source` [B, steps, heads, D] to
   * slots starts[r].. of `target` [B, H, capacity, D]; where a kernel can read
   * that layout (core's webgpu programs).
   */
  copyHeads?(
    target: tf.Tensor4D,
    source: tf.Tensor4D,
    firstHead: number,
    starts: ArrayLike<number> | tf.TensorInfo,
    cosSin?: tf.Tensor2D,
  ): void;
}

type HostMemory = (t: tf.TensorInfo) => Float32Array;

/**
 * The float32 storage of a tensor (or a kernel's bare output) on a backend
 * that keeps it in host memory (cpu, wasm), for writing in place buffers
 * one allocated and never hands out; undefined on other backends. On wasm
 * the view is invalid once the heap grows (any allocation may grow it): take
 * a new one after allocating.
 */
export function hostFloats(t: tf.TensorInfo): Float32Array | undefined {
  const name = tf.getBackend();
  if (name === 'cpu') return (tf.backend() as unknown as CpuBackendInternals).data.get(t.dataId).values;
  if (name === 'wasm') {
    const backend = tf.backend() as WasmBackendInternals;
    const memoryOffset = backend.dataIdMap.get(t.dataId)!.memoryOffset;
    const size = t.shape.reduce((a, b) => a * b, 1);
    return backend.wasm.HEAPF32.subarray(memoryOffset / 4, memoryOffset / 4 + size);
  }
  return undefined;
}

/** The part of tfjs-backend-cpu's MathBackendCPU (4.x) hostFloats reads. */
interface CpuBackendInternals {
  data: { get(dataId: object): { values: Float32Array } };
}

function inplaceMemory(): InplaceMemory | undefined {
  const name = tf.getBackend();
  if (name === 'cpu' || name === 'wasm') return hostInplace((t) => hostFloats(t)!);
  if (name === 'webgpu') return webGpuInplace(tf.backend() as unknown as Record<string, any>);
  return undefined;
}

export function inplaceSupported(): boolean {
  return inplaceMemory() !== undefined;
}

function hostInplace(memory: HostMemory): InplaceMemory {
  return {
    copySteps(target, source, starts) {
      const [batch, heads, steps, dim] = source.shape;
      const capacity = target.shape[2];
      const chunk = steps * dim;
      // Read the source first: on wasm, reading target memory after may see a grown heap.
      const src = memory(source);
      const dst = memory(target);
      for (let r = 0; r < batch; r++) {
        for (let h = 0; h < heads; h++) {
          const from = (r * heads + h) * chunk;
          dst.set(src.subarray(from, from + chunk), ((r * heads + h) * capacity + starts[r]) * dim);
        }
      }
    },
    // tf.slice of a prefix along the slot axis costs O(capacity) on cpu and
    // wasm (measured: 11 ms at capacity 4096 vs 0.02 ms at 256 on cpu), so the
    // read copies the needed rows itself.
    readPrefix(source, size) {
      const [batch, heads, capacity, dim] = source.shape;
      const src = memory(source);
      const out = new Float32Array(batch * heads * size * dim);
      const chunk = size * dim;
      for (let i = 0; i < batch * heads; i++) {
        const from = i * capacity * dim;
        out.set(src.subarray(from, from + chunk), i * chunk);
      }
      return tf.tensor4d(out, [batch, heads, size, dim]);
    },
  };
}

/** The parts of tfjs-backend-webgpu's WebGPUBackend (4.x) the cache relies on. */
interface WebGpuBackendInternals {
  tensorMap: { get(dataId: object): { resource?: unknown } };
  commandEncoder: { copyBufferToBuffer(...args: unknown[]): void } | null;
  commandQueueOwnedIds: WeakSet<object>;
  uploadToGPU(dataId: object): void;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
}

function webGpuInplace(backend: Record<string, any>): InplaceMemory | undefined {
  const gpu = backend as unknown as WebGpuBackendInternals;
  if (typeof gpu.uploadToGPU !== 'function' || typeof gpu.ensureCommandEncoderReady !== 'function')
    return undefined;
  const bufferOf = (t: tf.Tensor): unknown => {
    gpu.uploadToGPU(t.dataId);
    // Released buffers wait for the next submit before reuse, as for tfjs's own kernels.
    gpu.commandQueueOwnedIds.add(t.dataId);
    return gpu.tensorMap.get(t.dataId).resource;
  };
  return {
    copySteps(target, source, starts) {
      const [batch, heads, steps, dim] = source.shape;
      const capacity = target.shape[2];
      const src = bufferOf(source);
      const dst = bufferOf(target);
      gpu.ensureCommandEncoderReady();
      gpu.endComputePassEncoder();
      const bytes = steps * dim * 4;
      for (let r = 0; r < batch; r++) {
        for (let h = 0; h < heads; h++) {
          const row = r * heads + h;
          gpu.commandEncoder!.copyBufferToBuffer(
            src,
            row * bytes,
            dst,
            (row * capacity + starts[r]) * dim * 4,
            bytes,
          );
        }
      }
    },
    // A slice kernel on the GPU reads only the prefix.
    readPrefix(source, size) {
      const [batch, heads, , dim] = source.shape;
      return tf.slice(source, [0, 0, 0, 0], [batch, heads, size, dim]);
    },
    copyHeads(target, source, firstHead, starts, cosSin) {
      if (webGpuPrograms() === undefined) throw new Error('copyHeads needs core webgpu programs');
      const rows = rowStarts(starts);
      const [batch, steps, , dim] = source.shape;
      const count = batch * steps * target.shape[1] * dim;
      // The cache is the program's output: written in place, no new tensor.
      runWithStarts(
        kvWriteProgram(target.shape, source.shape, rows, cosSin !== undefined),
        cosSin ? [source, cosSin] : [source],
        rows,
        [
          { type: 'int32', data: [firstHead] },
          { type: 'int32', data: [count] },
        ],
        target,
      );
    },
  };
}

/** Granularity of read lengths: bounds the number of distinct attention shapes. */
const READ_BUCKET = 64;

export function createInplaceCache(shape: KvCacheShape): KvCache {
  const memory = inplaceMemory();
  if (memory === undefined)
    throw new Error(`inplace KV cache is not available on backend '${tf.getBackend()}'`);
  const { batch, kvHeads, headDim, capacity } = shape;
  const dims: [number, number, number, number] = [batch, kvHeads, capacity, headDim];
  const keys = Array.from({ length: shape.layers }, () => tf.zeros(dims) as tf.Tensor4D);
  const values = Array.from({ length: shape.layers }, () => tf.zeros(dims) as tf.Tensor4D);

  return {
    kind: 'inplace',
    capacity,
    write(layer, k, v, starts) {
      memory.copySteps(keys[layer], k, starts);
      memory.copySteps(values[layer], v, starts);
    },
    read(layer, length) {
      const size = Math.min(roundUp(length, READ_BUCKET), capacity);
      return { keys: memory.readPrefix(keys[layer], size), values: memory.readPrefix(values[layer], size) };
    },
    whole: (layer) => ({ keys: keys[layer], values: values[layer] }),
    writeHeads:
      memory.copyHeads && webGpuPrograms() !== undefined
        ? (layer, k, v, starts) => {
            memory.copyHeads!(keys[layer], k.from, k.head, starts, k.cosSin);
            memory.copyHeads!(values[layer], v.from, v.head, starts);
          }
        : undefined,
    dispose() {
      for (const t of [...keys, ...values]) t.dispose();
    },
  };
}
