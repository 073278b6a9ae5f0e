// Test-only K-quant encoders: plain (not llama.cpp's error-minimizing) choices of scales, in the
// Q4_K and Q6_K block layouts. Files written with them let llama.cpp check that our
// dequantizers read those layouts as it does; the encoders' quality does not matter for that.
import { floatToHalfBits, halfBitsToFloat } from '../src/safetensors/half.js';

const f16 = (x: number) => halfBitsToFloat(floatToHalfBits(x));
const clamp = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x));

/** 256 values per super-block: 8 sub-blocks of 32, x ≈ d·sc·q − dmin·m, q 4 bits, sc and m 6 bits. */
export function quantizeQ4K(values: Float32Array): Uint8Array {
  const out = new Uint8Array((values.length / 256) * 144);
  const view = new DataView(out.buffer);
  for (let b = 0; b < values.length / 256; b++) {
    const x = values.subarray(b * 256, b * 256 + 256);
    const scales: number[] = [];
    const mins: number[] = [];
    for (let j = 0; j < 8; j++) {
      const sub = x.subarray(j * 32, j * 32 + 32);
      const lo = Math.min(0, ...sub);
      scales.push((Math.max(...sub) - lo) / 15);
      mins.push(-lo);
    }
    const d = f16(Math.max(...scales) / 63);
    const dmin = f16(Math.max(...mins) / 63);
    const sc = scales.map((s) => (d ? clamp(Math.round(s / d), 0, 63) : 0));
    const m = mins.map((v) => (dmin ? clamp(Math.round(v / dmin), 0, 63) : 0));
    const at = b * 144;
    view.setUint16(at, floatToHalfBits(d), true);
    view.setUint16(at + 2, floatToHalfBits(dmin), true);
    for (let j = 0; j < 4; j++) {
      out[at + 4 + j] = sc[j] | ((sc[j + 4] >> 4) << 6);
      out[at + 8 + j] = m[j] | ((m[j + 4] >> 4) << 6);
      out[at + 12 + j] = (sc[j + 4] & 15) | ((m[j + 4] & 15) << 4);
    }
    const q = (j: number, l: number) => {
      const step = d * sc[j];
      return step ? clamp(Math.round((x[j * 32 + l] + dmin * m[j]) / step), 0, 15) : 0;
    };
    for (let pair = 0; pair < 4; pair++) {
      for (let l = 0; l < 32; l++) out[at + 16 + pair * 32 + l] = q(2 * pair, l) | (q(2 * pair + 1, l) << 4);
    }
  }
  return out;
}

/** 256 values per super-block: 16 sub-blocks of 16, x ≈ d·sc·(q − 32), q 6 bits, sc int8. */
export function quantizeQ6K(values: Float32Array): Uint8Array {
  const out = new Uint8Array((values.length / 256) * 210);
  const view = new DataView(out.buffer);
  for (let b = 0; b < values.length / 256; b++) {
    const x = values.subarray(b * 256, b * 256 + 256);
    const subScales = Array.from({ length: 16 }, (_, j) => {
      const sub = x.subarray(j * 16, j * 16 + 16);
      return Math.max(...Array.from(sub, Math.abs)) / 31;
    });
    const d = f16(Math.max(...subScales) / 127);
    const sc = subScales.map((s) => (d ? clamp(Math.round(s / d), -128, 127) : 0));
    const at = b * 210;
    view.setUint16(at + 208, floatToHalfBits(d), true);
    for (let j = 0; j < 16; j++) view.setInt8(at + 192 + j, sc[j]);
    const q = (e: number) => {
      const step = d * sc[e >> 4];
      return (step ? clamp(Math.round(x[e] / step), -32, 31) : 0) + 32;
    };
    for (let half = 0; half < 2; half++) {
      for (let l = 0; l < 32; l++) {
        const base = half * 128;
        const [q1, q2, q3, q4] = [q(base + l), q(base + l + 32), q(base + l + 64), q(base + l + 96)];
        out[at + half * 64 + l] = (q1 & 15) | ((q3 & 15) << 4);
        out[at + half * 64 + l + 32] = (q2 & 15) | ((q4 & 15) << 4);
        out[at + 128 + half * 32 + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
      }
    }
  }
  return out;
}
