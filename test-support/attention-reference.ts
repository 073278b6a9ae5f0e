/**
 * Softmax attention in float64, straight from the definition: the reference
 * core's attention kernels (wasm, webgpu) are tested against. q [batch,
 * steps, heads, headDim]; keys/values [batch, kvHeads, slots, headDim]; row
 * b's step s sees slots max(0, starts[b] + s + 1 − window) … starts[b] + s.
 * Test-only code, shared by the packages' tests.
 */
export function referenceAttention(
  q: Float32Array,
  keys: Float32Array,
  values: Float32Array,
  starts: number[],
  [steps, heads, kvHeads, headDim, slots, window]: number[],
): Float64Array {
  const batch = starts.length;
  const out = new Float64Array(batch * steps * heads * headDim);
  for (let b = 0; b < batch; b++) {
    for (let s = 0; s < steps; s++) {
      for (let h = 0; h < heads; h++) {
        const kv = Math.floor(h / (heads / kvHeads));
        const last = starts[b] + s;
        const first = Math.max(0, last + 1 - window);
        const qAt = ((b * steps + s) * heads + h) * headDim;
        const at = (j: number) => ((b * kvHeads + kv) * slots + j) * headDim;
        const scores: number[] = [];
        for (let j = first; j <= last; j++) {
          let dot = 0;
          for (let d = 0; d < headDim; d++) dot += q[qAt + d] * keys[at(j) + d];
          scores.push(dot);
        }
        const max = Math.max(...scores);
        const weights = scores.map((x) => Math.exp(x - max));
        const total = weights.reduce((acc, w) => acc + w, 0);
        for (let d = 0; d < headDim; d++) {
          let sum = 0;
          for (let j = first; j <= last; j++) sum += weights[j - first] * values[at(j) + d];
          out[qAt + d] = sum / total;
        }
      }
    }
  }
  return out;
}
