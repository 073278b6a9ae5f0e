import { instantiateQuantKernels, type QuantKernels } from './quant-kernels.js';
import { fusedMultiplyAdd } from './relaxed-simd.js';
import { WASM_SHARED_KERNELS_BASE64, WASM_SHARED_KERNELS_FMA_BASE64 } from './wasm-binary.js';
import type { WasmKernelExports } from './wasm-kernels.js';

/**
 * Core's weight arena: one shared WebAssembly memory that holds the packed
 * weights of every model on the wasm backend, with core's kernels
 * instantiated over it on this thread and on each worker of the kernel
 * threads (kernel-threads.ts). tfjs-backend-wasm's own memory is not
 * shared (its threaded build does not run in Node), so worker threads can
 * only share weights that live here. Activations are copied in and results
 * copied out per call: rows × width floats, small next to the weights.
 *
 * Offsets are byte offsets, 64-byte aligned; 0 is never handed out (the
 * kernels read 0 as "no bias").
 */
export interface WeightArena {
  readonly exports: SharedKernelExports;
  /** The shared memory, for worker threads to instantiate the kernels over. */
  readonly memory: object;
  /** The compiled kernels, for worker threads. */
  readonly module: object;
  /** The quantized products' module over the same memory (quant-kernels.ts). */
  readonly quant: QuantKernels;
  /** The arena as floats; re-read after any allocation (growth makes a new buffer). */
  floats(): Float32Array;
  alloc(bytes: number): number;
  free(offset: number): void;
  /** Bytes handed out and not freed, the scratch region not counted. */
  bytesInUse(): number;
  /** A region of at least `bytes`, reused across calls (valid until the next call). */
  scratch(bytes: number): number;
}

/** The module over the arena is the same as over tfjs's memory. */
export type SharedKernelExports = WasmKernelExports;

interface SharedMemory {
  readonly buffer: ArrayBufferLike;
  grow(pages: number): number;
}
interface WebAssemblyApi {
  Memory: new (descriptor: { initial: number; maximum: number; shared: boolean }) => SharedMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: object };
}
const wasmApi = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;

const PAGE = 65536;
const ALIGN = 64;
/** wasm32's whole address space; a shared memory reserves it up front and never moves when it grows. */
const MAX_PAGES = 65536;

let arena: WeightArena | null | undefined;

/** The process's arena, or undefined where shared memory or threads are unavailable. */
export function weightArena(): WeightArena | undefined {
  if (arena === undefined) arena = createArena();
  return arena ?? undefined;
}

/** weightArena() where its absence is a bug worth a clear error. */
export function requireArena(): WeightArena {
  const found = weightArena();
  if (found === undefined) throw new Error('the weight arena is unavailable (no shared WebAssembly memory)');
  return found;
}

function createArena(): WeightArena | null {
  let memory: SharedMemory;
  let module: object;
  let exports: SharedKernelExports;
  let quant: QuantKernels;
  // Outside the try: a bad SPECSTREAM_RELAXED_SIMD is the caller's error to see, not a missing arena.
  const binary = fusedMultiplyAdd() ? WASM_SHARED_KERNELS_FMA_BASE64 : WASM_SHARED_KERNELS_BASE64;
  try {
    memory = new wasmApi.Memory({ initial: 1, maximum: MAX_PAGES, shared: true });
    module = new wasmApi.Module(Buffer.from(binary, 'base64'));
    exports = new wasmApi.Instance(module, { tfjs: { memory } }).exports as SharedKernelExports;
    quant = instantiateQuantKernels(memory);
  } catch {
    return null;
  }
  // Free blocks, sorted by offset, coalesced; [ALIGN, end of memory) starts free.
  const free: { at: number; bytes: number }[] = [{ at: ALIGN, bytes: PAGE - ALIGN }];
  const used = new Map<number, number>();
  let inUse = 0;
  let view = new Float32Array(memory.buffer);
  let scratchAt = 0;
  let scratchBytes = 0;

  function release(at: number, bytes: number): void {
    let i = free.findIndex((block) => block.at > at);
    if (i < 0) i = free.length;
    free.splice(i, 0, { at, bytes });
    // Merge with the following block, then with the preceding one.
    if (i + 1 < free.length && at + bytes === free[i + 1].at) {
      free[i].bytes += free[i + 1].bytes;
      free.splice(i + 1, 1);
    }
    if (i > 0 && free[i - 1].at + free[i - 1].bytes === at) {
      free[i - 1].bytes += free[i].bytes;
      free.splice(i, 1);
    }
  }

  function alloc(requested: number): number {
    if (!(requested >= 0) || !Number.isFinite(requested))
      throw new Error(`weight arena: cannot allocate ${requested} bytes`);
    const bytes = Math.max(ALIGN, Math.ceil(requested / ALIGN) * ALIGN);
    let i = free.findIndex((block) => block.bytes >= bytes);
    if (i < 0) {
      const end = memory.buffer.byteLength;
      const last = free[free.length - 1];
      const tail = last && last.at + last.bytes === end ? last.bytes : 0;
      const pages = Math.ceil((bytes - tail) / PAGE);
      if (end / PAGE + pages > MAX_PAGES) {
        throw new Error(`weight arena: ${bytes} more bytes exceed the 4 GiB of a wasm32 memory`);
      }
      memory.grow(pages);
      release(end, pages * PAGE);
      i = free.findIndex((block) => block.bytes >= bytes);
    }
    const block = free[i];
    const at = block.at;
    if (block.bytes === bytes) free.splice(i, 1);
    else {
      block.at += bytes;
      block.bytes -= bytes;
    }
    used.set(at, bytes);
    inUse += bytes;
    return at;
  }

  return {
    exports,
    memory,
    module,
    quant,
    floats() {
      if (view.buffer.byteLength !== memory.buffer.byteLength) view = new Float32Array(memory.buffer);
      return view;
    },
    alloc,
    free(at) {
      const bytes = used.get(at);
      if (bytes === undefined) throw new Error(`weight arena: offset ${at} is not allocated`);
      used.delete(at);
      inUse -= bytes;
      release(at, bytes);
    },
    bytesInUse: () => inUse - (scratchAt === 0 ? 0 : scratchBytes),
    scratch(bytes) {
      if (bytes > scratchBytes) {
        if (scratchAt !== 0) this.free(scratchAt);
        scratchBytes = Math.max(bytes, 2 * scratchBytes, 1 << 16);
        scratchAt = alloc(scratchBytes);
      }
      return scratchAt;
    },
  };
}

/**
 * A product's rows from the arena (`at`, a byte offset), each `padded`
 * floats wide, into the backend's output, `cols` wide: one copy when no
 * padding separates them.
 */
export function copyRowsOut(
  arena: WeightArena,
  at: number,
  padded: number,
  to: Float32Array,
  rows: number,
  cols: number,
): void {
  const from = arena.floats().subarray(at >> 2);
  if (padded === cols) {
    to.set(from.subarray(0, rows * cols));
    return;
  }
  for (let r = 0; r < rows; r++) to.set(from.subarray(r * padded, r * padded + cols), r * cols);
}
