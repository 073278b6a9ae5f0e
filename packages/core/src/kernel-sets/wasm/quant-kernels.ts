import { fusedMultiplyAdd } from './relaxed-simd.js';
import {
  RELAXED_DOT_PROBE_BASE64,
  WASM_QUANT_KERNELS_BASE64,
  WASM_QUANT_KERNELS_RELAXED_BASE64,
} from './wasm-binary.js';

/**
 * Core's quantized products (quantKernelsWat in scripts/wasm-kernels.ts): a
 * module of their own over the weight arena's shared memory, instantiated
 * beside the float kernels on this thread and on each kernel thread. Two
 * builds: plain SIMD, and one that adds a q4 product on relaxed SIMD's
 * 8-bit dot product, loaded only where that instruction gives right answers.
 */

/** A quantized product over quads q0..q1−1 (see quantProduct in scripts/wasm-kernels.ts). */
type QuantProduct = (
  x: number,
  rows: number,
  w: number,
  bias: number,
  c: number,
  k: number,
  ldc: number,
  q0: number,
  q1: number,
) => void;

export interface QuantKernelExports {
  /** Quantizes f32 activations [rows, k] per block of 32 into the layout the products read. */
  quantizeRows(x: number, rows: number, k: number, out: number): void;
  quantq8: QuantProduct;
  quantq4: QuantProduct;
  /** q4 on relaxed SIMD's dot product; only in the relaxed build. */
  quantq4r?: QuantProduct;
}

export interface QuantKernels {
  readonly module: object;
  readonly exports: QuantKernelExports;
  /** Whether this is the relaxed build (quantq4r present). */
  readonly relaxed: boolean;
}

interface WebAssemblyApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: object };
}
const wasmApi = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;

let relaxedDot: boolean | undefined;

/**
 * Whether relaxed SIMD's i16x8.relaxed_dot_i8x16_i7x16_s is there and right:
 * relaxed SIMD on (fusedMultiplyAdd(), which SPECSTREAM_RELAXED_SIMD=off
 * turns off), and a probe's pair sums over signed bytes (−128…127) and
 * 7-bit ones equal the exact ones. Node 20's V8 has the instruction behind
 * a flag, and gets its i32x4 accumulating sibling wrong (twice the dot
 * product, addend dropped), so the answer is checked, not assumed.
 */
export function relaxedDotProduct(): boolean {
  if (relaxedDot === undefined) {
    relaxedDot = false;
    if (fusedMultiplyAdd()) {
      try {
        const instance = new wasmApi.Instance(
          new wasmApi.Module(Buffer.from(RELAXED_DOT_PROBE_BASE64, 'base64')),
          {},
        );
        const { memory, dot } = instance.exports as { memory: { buffer: ArrayBuffer }; dot(): void };
        const a = Int8Array.from(
          { length: 16 },
          (_, i) => [-128, 127, -1, 5, 3, -77, 100, -3][i % 8] + (i >> 3),
        );
        const b = Int8Array.from(
          { length: 16 },
          (_, i) => [126, 125, 1, 0, 15, 64, 2, 125][i % 8] + (i >> 3),
        );
        new Int8Array(memory.buffer).set(a, 0);
        new Int8Array(memory.buffer).set(b, 16);
        dot();
        const got = new Int16Array(memory.buffer, 32, 8);
        relaxedDot = Array.from(got).every((v, l) => v === a[2 * l] * b[2 * l] + a[2 * l + 1] * b[2 * l + 1]);
      } catch {
        relaxedDot = false;
      }
    }
  }
  return relaxedDot;
}

/** The quantized kernels over `memory` (a shared WebAssembly memory): the relaxed build where it is right. */
export function instantiateQuantKernels(memory: object, relaxed = relaxedDotProduct()): QuantKernels {
  const binary = relaxed ? WASM_QUANT_KERNELS_RELAXED_BASE64 : WASM_QUANT_KERNELS_BASE64;
  const module = new wasmApi.Module(Buffer.from(binary, 'base64'));
  const exports = new wasmApi.Instance(module, { tfjs: { memory } }).exports as QuantKernelExports;
  return { module, exports, relaxed };
}
