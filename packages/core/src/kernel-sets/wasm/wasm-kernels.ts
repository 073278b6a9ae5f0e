import * as tf from '@tensorflow/tfjs-core';
import { fusedMultiplyAdd } from './relaxed-simd.js';
import { WASM_KERNELS_BASE64, WASM_KERNELS_FMA_BASE64 } from './wasm-binary.js';

/**
 * Core's own WebAssembly SIMD kernels (source: scripts/wasm-kernels.ts),
 * instantiated over tfjs-backend-wasm's memory so they read and write
 * tensors in place. One instance per backend object.
 */
/** A row tile of the packed product (see tile{R} in scripts/wasm-kernels.ts). */
type TileFunction = (
  at: number,
  panels: number,
  bias: number,
  c: number,
  k: number,
  ldc: number,
  p0: number,
  p1: number,
) => void;

export interface WasmKernelExports {
  interleave(a: number, k: number, rows: number, at: number): void;
  packPanels(w: number, k: number, n: number, transposed: number, out: number): void;
  standardize(x: number, out: number, rows: number, d: number, eps: number, center: number): void;
  tile1: TileFunction;
  tile2: TileFunction;
  tile3: TileFunction;
  tile4: TileFunction;
  /** The whole packed product over panels p0..p1-1 (one call per thread). */
  product(
    at: number,
    rows: number,
    panels: number,
    bias: number,
    c: number,
    k: number,
    ldc: number,
    p0: number,
    p1: number,
    /** 1: load each column block into the cache before its row tiles (see scripts/wasm-kernels.ts). */
    prefetch: number,
  ): void;
  dotsProduct(
    x: number,
    w: number,
    c: number,
    k: number,
    rows: number,
    ldc: number,
    v0: number,
    v1: number,
    prefetch: number,
  ): void;
  attend(
    q: number,
    keys: number,
    values: number,
    out: number,
    probs: number,
    starts: number,
    batch: number,
    steps: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    batchStride: number,
    headStride: number,
    slotStride: number,
    window: number,
  ): void;
}

/** The parts of tfjs-backend-wasm's BackendWasm (4.x) the kernels rely on. */
export interface WasmBackendInternals extends tf.KernelBackend {
  wasm: {
    asm?: { memory?: unknown };
    HEAPF32: Float32Array;
    HEAP32: Int32Array;
    _malloc(bytes: number): number;
    _free(pointer: number): void;
  };
  dataIdMap: { get(dataId: object): { memoryOffset: number; refCount: number } | undefined };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
}

export interface WasmKernels {
  readonly exports: WasmKernelExports;
  readonly backend: WasmBackendInternals;
  /** Byte offset of a tensor's data in the heap. */
  offset(t: tf.TensorInfo): number;
  /** A heap region of at least `bytes`, reused across calls (valid until the next call). */
  scratch(bytes: number): number;
  /** The heap as floats; re-read after any allocation (a grown heap is a new buffer). */
  heap(): Float32Array;
  /** The heap as int32s; the same caveat. */
  heap32(): Int32Array;
}

/** The few members of the WebAssembly API used here (ES2023 and Node 20's types do not declare it). */
interface WebAssemblyApi {
  Memory: abstract new (...args: never[]) => object;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: object };
}
const wasmApi = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;

const instances = new WeakMap<object, WasmKernels | null>();
let compiled: object | undefined;

/** The kernels for the current backend, or undefined when it is not wasm (or they cannot start). */
export function wasmKernels(): WasmKernels | undefined {
  if (tf.getBackend() !== 'wasm') return undefined;
  const backend = tf.backend() as WasmBackendInternals;
  let kernels = instances.get(backend);
  if (kernels === undefined) {
    kernels = instantiate(backend);
    instances.set(backend, kernels);
  }
  return kernels ?? undefined;
}

/** wasmKernels() inside a kernel registered for wasm, where their absence is a bug worth a clear error. */
export function requireWasmKernels(): WasmKernels {
  const kernels = wasmKernels();
  if (kernels === undefined) throw new Error('core wasm kernels are unavailable on this backend');
  return kernels;
}

function instantiate(backend: WasmBackendInternals): WasmKernels | null {
  const memory = backend.wasm?.asm?.memory;
  // The backend's own memory must be importable, and the engine must have SIMD
  // (tfjs picks its SIMD build only where it validates; without it, so do we).
  if (!(memory instanceof wasmApi.Memory)) return null;
  // Outside the try: a bad SPECSTREAM_RELAXED_SIMD is the caller's error to see, not missing kernels.
  const binary = fusedMultiplyAdd() ? WASM_KERNELS_FMA_BASE64 : WASM_KERNELS_BASE64;
  try {
    compiled ??= new wasmApi.Module(Buffer.from(binary, 'base64'));
    const instance = new wasmApi.Instance(compiled, { tfjs: { memory } });
    const exports = instance.exports as unknown as WasmKernelExports;
    let region = 0;
    let regionBytes = 0;
    return {
      exports,
      backend,
      offset(t) {
        const data = backend.dataIdMap.get(t.dataId);
        if (data === undefined) throw new Error('tensor data is not on the wasm backend');
        return data.memoryOffset;
      },
      scratch(bytes) {
        if (bytes > regionBytes) {
          if (region !== 0) backend.wasm._free(region);
          regionBytes = Math.max(bytes, 2 * regionBytes, 1 << 16);
          region = backend.wasm._malloc(regionBytes) >>> 0;
        }
        return region;
      },
      heap: () => backend.wasm.HEAPF32,
      heap32: () => backend.wasm.HEAP32,
    };
  } catch {
    return null;
  }
}
