// Block quantization in ggml's layouts, written from the format's description:
//
//   Q8_0: blocks of 32 values: f16 scale d = amax / 127, then 32 int8 q = round(x / d); x ≈ q·d.
//   Q4_0: blocks of 32 values: f16 scale d = m / -8, where m is the value of largest magnitude
//         (sign kept), then 16 bytes; element j < 16 is the low nibble of byte j and element
//         j + 16 its high nibble; a nibble n stands for (n − 8)·d. The value m itself maps to
//         nibble 0 (−8·d = m); the opposite end, −m, would need +8 and is clamped to 7.
//
// The scale is rounded to f16 when stored, but the values are divided by the f32 scale (as
// llama.cpp's reference quantizer does), so dequantized values differ from the inputs by at
// most d/2 (Q8_0; up to |d| for Q4_0's clamped end) plus |q|·|d − f16(d)|. Arithmetic that is
// float32 in C is rounded to float32 here (Math.fround), so files come out bit-identical.
import { floatToHalfBits, halfBitsToFloat, halfBitsToFloat32 } from '../safetensors/half.js';
import { GGML_BLOCK, GgmlType } from './constants.js';

const f32 = Math.fround;

/** Round half away from zero, as C's roundf. */
function roundAway(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

export const QK = 32;

/** `values.length` must be a multiple of 32. */
export function quantizeQ8_0(values: Float32Array): Uint8Array {
  const blocks = values.length / QK;
  const out = new Uint8Array(blocks * GGML_BLOCK[GgmlType.Q8_0].bytes);
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    const base = b * QK;
    let amax = 0;
    for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(values[base + j]));
    const d = f32(amax / 127);
    const id = d ? f32(1 / d) : 0;
    const at = b * 34;
    view.setUint16(at, floatToHalfBits(d), true);
    for (let j = 0; j < QK; j++) view.setInt8(at + 2 + j, roundAway(f32(values[base + j] * id)));
  }
  return out;
}

export function quantizeQ4_0(values: Float32Array): Uint8Array {
  const blocks = values.length / QK;
  const out = new Uint8Array(blocks * GGML_BLOCK[GgmlType.Q4_0].bytes);
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    const base = b * QK;
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QK; j++) {
      const v = values[base + j];
      if (Math.abs(v) > amax) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = f32(max / -8);
    const id = d ? f32(1 / d) : 0;
    const at = b * 18;
    view.setUint16(at, floatToHalfBits(d), true);
    // x·id lies in [−8, 8]; adding 8.5 and truncating rounds it to the nearest nibble (halves up).
    const nibble = (x: number) => Math.min(15, Math.trunc(f32(f32(x * id) + 8.5)));
    for (let j = 0; j < QK / 2; j++) {
      out[at + 2 + j] = nibble(values[base + j]) | (nibble(values[base + j + QK / 2]) << 4);
    }
  }
  return out;
}

/** `count` values of type `type` from `bytes` (which hold exactly those), as float32. */
export function dequantize(type: number, bytes: Uint8Array, count: number): Float32Array {
  switch (type) {
    case GgmlType.F32: {
      // Positioned reads land at any offset: copy when the view would be unaligned.
      const source = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
      return new Float32Array(source.buffer, source.byteOffset, count);
    }
    case GgmlType.F16: {
      const source = bytes.byteOffset % 2 === 0 ? bytes : bytes.slice();
      return halfBitsToFloat32(new Uint16Array(source.buffer, source.byteOffset, count));
    }
    case GgmlType.Q8_0:
      return dequantizeQ8_0(bytes, count);
    case GgmlType.Q4_0:
      return dequantizeQ4_0(bytes, count);
    case GgmlType.Q4_K:
      return dequantizeQ4K(bytes, count);
    case GgmlType.Q6_K:
      return dequantizeQ6K(bytes, count);
    default:
      throw new Error(`dequantize: ggml type ${type} is not supported`);
  }
}

function halfAt(bytes: Uint8Array, at: number): number {
  return halfBitsToFloat(bytes[at] | (bytes[at + 1] << 8));
}

export function dequantizeQ8_0(bytes: Uint8Array, count: number): Float32Array {
  const out = new Float32Array(count);
  for (let b = 0; b < count / QK; b++) {
    const at = b * 34;
    const d = halfAt(bytes, at);
    for (let j = 0; j < QK; j++) {
      const q = bytes[at + 2 + j];
      out[b * QK + j] = (q > 127 ? q - 256 : q) * d;
    }
  }
  return out;
}

export function dequantizeQ4_0(bytes: Uint8Array, count: number): Float32Array {
  const out = new Float32Array(count);
  for (let b = 0; b < count / QK; b++) {
    const at = b * 18;
    const d = halfAt(bytes, at);
    for (let j = 0; j < QK / 2; j++) {
      const byte = bytes[at + 2 + j];
      out[b * QK + j] = ((byte & 0x0f) - 8) * d;
      out[b * QK + j + QK / 2] = ((byte >> 4) - 8) * d;
    }
  }
  return out;
}

const QK_K = 256;

/**
 * Q4_K: super-blocks of 256 = 8 sub-blocks of 32, x = d·sc·q − dmin·m with 6-bit sc and m
 * packed in 12 bytes: sub-blocks 0-3 take the low 6 bits of bytes 0-3 (sc) and 4-7 (m);
 * sub-blocks 4-7 take a nibble of bytes 8-11 plus the top 2 bits of bytes 0-3 (sc) or 4-7 (m).
 * Each 32 bytes of quants hold two sub-blocks: low nibbles the first, high nibbles the second.
 */
export function dequantizeQ4K(bytes: Uint8Array, count: number): Float32Array {
  const out = new Float32Array(count);
  const blockBytes = GGML_BLOCK[GgmlType.Q4_K].bytes;
  for (let b = 0; b < count / QK_K; b++) {
    const at = b * blockBytes;
    const d = halfAt(bytes, at);
    const dmin = halfAt(bytes, at + 2);
    const scales = bytes.subarray(at + 4, at + 16);
    const qs = bytes.subarray(at + 16, at + 16 + 128);
    const scaleMin = (j: number): [number, number] =>
      j < 4
        ? [scales[j] & 63, scales[j + 4] & 63]
        : [
            (scales[j + 4] & 0x0f) | ((scales[j - 4] >> 6) << 4),
            (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4),
          ];
    let y = b * QK_K;
    for (let pair = 0; pair < 4; pair++) {
      const [sc1, m1] = scaleMin(2 * pair);
      const [sc2, m2] = scaleMin(2 * pair + 1);
      const q = qs.subarray(pair * 32, pair * 32 + 32);
      for (let l = 0; l < 32; l++) out[y + l] = d * sc1 * (q[l] & 0x0f) - dmin * m1;
      for (let l = 0; l < 32; l++) out[y + 32 + l] = d * sc2 * (q[l] >> 4) - dmin * m2;
      y += 64;
    }
  }
  return out;
}

/**
 * Q6_K: super-blocks of 256 = 16 sub-blocks of 16 with int8 scales, x = d·sc·(q − 32), q of
 * 6 bits: 4 in `ql` (128 bytes), 2 in `qh` (64 bytes). Each half of 128 values uses 64 bytes
 * of ql (low nibbles: values 0-63, high: 64-127, in runs of 32) and 32 bytes of qh (bit pairs
 * 0, 2, 4, 6 for the four runs of 32).
 */
export function dequantizeQ6K(bytes: Uint8Array, count: number): Float32Array {
  const out = new Float32Array(count);
  const blockBytes = GGML_BLOCK[GgmlType.Q6_K].bytes;
  for (let b = 0; b < count / QK_K; b++) {
    const at = b * blockBytes;
    const d = halfAt(bytes, at + 128 + 64 + 16);
    for (let half = 0; half < 2; half++) {
      const ql = at + half * 64;
      const qh = at + 128 + half * 32;
      const sc = at + 128 + 64 + half * 8;
      const y = b * QK_K + half * 128;
      for (let l = 0; l < 32; l++) {
        const s = l >> 4; // sub-blocks of 16
        const h = bytes[qh + l];
        const q1 = ((bytes[ql + l] & 0x0f) | ((h & 3) << 4)) - 32;
        const q2 = ((bytes[ql + l + 32] & 0x0f) | (((h >> 2) & 3) << 4)) - 32;
        const q3 = ((bytes[ql + l] >> 4) | (((h >> 4) & 3) << 4)) - 32;
        const q4 = ((bytes[ql + l + 32] >> 4) | (((h >> 6) & 3) << 4)) - 32;
        const scale = (k: number) => {
          const v = bytes[sc + k];
          return v > 127 ? v - 256 : v;
        };
        out[y + l] = d * scale(s) * q1;
        out[y + l + 32] = d * scale(s + 2) * q2;
        out[y + l + 64] = d * scale(s + 4) * q3;
        out[y + l + 96] = d * scale(s + 6) * q4;
      }
    }
  }
  return out;
}
