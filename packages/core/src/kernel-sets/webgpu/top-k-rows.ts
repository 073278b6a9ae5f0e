import * as tf from '@tensorflow/tfjs-core';
import { greedyRowsSupported } from './greedy-rows.js';
import { MAIN, requireWebGpuPrograms, type WebGpuProgram } from './webgpu-program.js';

/**
 * Each row's k largest logits, found on the device (webgpu), so sampling
 * with top-k reads 8 bytes per candidate instead of the whole vocabulary
 * (a GPT-2 row is 200 KB; a batch of 32, 6.4 MB a step). One workgroup per
 * row finds the k-th largest value exactly by radix selection over the
 * floats' order-preserving bit patterns (four passes of a 256-bucket
 * histogram), then writes every logit above it and, up to k, those equal to
 * it; the host keeps the lowest ids among those equal (topKIds' tie rule).
 * tfjs's own top-k is a bitonic sort of ~140 dispatches a step.
 */
export const TOP_K_ROWS = 'SpecstreamTopKRows';

/** Candidates a row can return: k above the k-th value plus up to k equal to it. */
const slotsFor = (k: number) => 2 * k;

/** The largest k the program takes (its output holds 2k candidates a row). */
export const MAX_TOP_K_ROWS = 256;

/** A workgroup per row, as greedyRows takes: where core's programs run and the rows fit one dispatch axis. */
export function topKRowsSupported(rows: number, k: number): boolean {
  return greedyRowsSupported(rows) && Number.isInteger(k) && k >= 1 && k <= MAX_TOP_K_ROWS;
}

/**
 * logits [..., vocab] → int32 [rows, 1 + 4k]: per row a count n of
 * candidates, then n ids and their logits' bits (2k slots each); or −1 (a
 * NaN or +Infinity in the row, whose logits the caller then reads so the
 * sampler raises its own error) or −2 (more than k logits tie with the k-th:
 * read the row). −Infinity logits are never candidates.
 */
export function topKRows(logits: tf.Tensor, k: number): tf.Tensor2D {
  return tf.engine().runKernel(TOP_K_ROWS, { logits }, { k }) as tf.Tensor2D;
}

/**
 * A row of topKRows' output as the full-vocabulary logits the sampler
 * reads: −Infinity everywhere but the k candidates (among logits equal to
 * the k-th, the lowest ids). The sampler then draws exactly what it would
 * from the whole row with the same top-k. Undefined for a row the program
 * refused (the caller reads that row's logits).
 */
export function candidateLogits(
  output: Int32Array,
  row: number,
  k: number,
  vocab: number,
): Float32Array | undefined {
  const width = 1 + 2 * slotsFor(k);
  const at = row * width;
  const count = output[at];
  if (count < 0) return undefined;
  if (count > slotsFor(k)) throw new Error(`candidateLogits: row ${row} claims ${count} candidates`);
  const floats = new Float32Array(output.buffer, output.byteOffset, output.length);
  const found = Array.from({ length: count }, (_, j) => ({
    id: output[at + 1 + j],
    value: floats[at + 1 + slotsFor(k) + j],
  }));
  // Larger first; among equals the lower id (only those equal to the k-th can be cut).
  found.sort((a, b) => b.value - a.value || a.id - b.id);
  const logits = new Float32Array(vocab).fill(Number.NEGATIVE_INFINITY);
  for (const { id, value } of found.slice(0, k)) logits[id] = value;
  return logits;
}

const THREADS = 256;

function topKRowsProgram(rows: number, k: number): WebGpuProgram {
  const slots = slotsFor(k);
  return {
    variableNames: ['logits'],
    outputShape: [rows, 1 + 2 * slots],
    shaderKey: `specstreamTopKRows_${k}`,
    dispatchLayout: { x: [0, 1] },
    dispatch: [rows, 1, 1],
    workgroupSize: [THREADS, 1, 1],
    uniforms: 'vocab : i32, ',
    getUserCode: () => `
    const K = ${k}u;
    const SLOTS = ${slots};
    var<workgroup> histogram : array<atomic<u32>, 256>;
    var<workgroup> above : atomic<u32>;
    var<workgroup> equal : atomic<u32>;
    var<workgroup> refused : atomic<u32>;
    var<workgroup> chosen : vec3<u32>;

    // Order-preserving: larger floats give larger keys (negatives flipped whole, positives' sign set).
    fn keyOf(v : f32) -> u32 {
      let bits = bitcast<u32>(v);
      return select(bits | 0x80000000u, ~bits, (bits >> 31u) == 1u);
    }

    ${MAIN} {
      let tid = i32(localId.x);
      let row = index / ${THREADS};
      let vocab = uniforms.vocab;
      let at = row * vocab;
      let outAt = row * (1 + 2 * SLOTS);
      let negativeInfinity = 0x007fffffu; // keyOf(-Infinity)
      if (tid == 0) {
        atomicStore(&above, 0u);
        atomicStore(&equal, 0u);
        atomicStore(&refused, 0u);
      }
      workgroupBarrier();
      for (var i = tid; i < vocab; i = i + ${THREADS}) {
        let v = logits[at + i];
        if (isnan(v) || (bitcast<u32>(v) == 0x7f800000u)) { atomicStore(&refused, 1u); }
      }
      // prefix: the k-th largest key's bits found so far; need: how many of the keys with that
      // prefix are still to take (the k-th counted from the largest).
      var prefix = 0u;
      var mask = 0u;
      var need = K;
      for (var round = 0u; round < 4u; round = round + 1u) {
        let shift = 24u - 8u * round;
        atomicStore(&histogram[tid], 0u);
        workgroupBarrier();
        for (var i = tid; i < vocab; i = i + ${THREADS}) {
          let key = keyOf(logits[at + i]);
          if ((key & mask) == prefix) { atomicAdd(&histogram[(key >> shift) & 255u], 1u); }
        }
        workgroupBarrier();
        if (tid == 0) {
          var seen = 0u;
          var bucket = 255u;
          loop {
            let here = atomicLoad(&histogram[bucket]);
            if (seen + here >= need || bucket == 0u) { break; }
            seen = seen + here;
            bucket = bucket - 1u;
          }
          chosen = vec3<u32>(prefix | (bucket << shift), need - seen, 0u);
        }
        let picked = workgroupUniformLoad(&chosen);
        prefix = picked.x;
        need = picked.y;
        mask = mask | (255u << shift);
      }
      // prefix is now the k-th largest key (or below every key when the row has fewer than k).
      for (var i = tid; i < vocab; i = i + ${THREADS}) {
        let v = logits[at + i];
        let key = keyOf(v);
        if (key <= negativeInfinity) { continue; }
        if (key > prefix) {
          let slot = i32(atomicAdd(&above, 1u));
          if (slot < SLOTS) {
            result[outAt + 1 + slot] = i;
            result[outAt + 1 + SLOTS + slot] = bitcast<i32>(v);
          }
        } else if (key == prefix) {
          // Equal to the k-th: after the ones above (at most k - 1 of them), up to k of these.
          let slot = i32(K) + i32(atomicAdd(&equal, 1u));
          if (slot < SLOTS) {
            result[outAt + 1 + slot] = i;
            result[outAt + 1 + SLOTS + slot] = bitcast<i32>(v);
          }
        }
      }
      workgroupBarrier();
      storageBarrier();
      if (tid == 0) {
        let a = atomicLoad(&above);
        let ties = atomicLoad(&equal);
        let e = min(ties, K);
        // The ones above fill slots 0..a-1 (a < k); move the equal ones down after them.
        for (var j = 0u; j < e; j = j + 1u) {
          result[outAt + 1 + i32(a + j)] = result[outAt + 1 + i32(K + j)];
          result[outAt + 1 + SLOTS + i32(a + j)] = result[outAt + 1 + SLOTS + i32(K + j)];
        }
        // More than k equal to the k-th: which ids were kept is arbitrary, so the caller reads the row.
        result[outAt] = select(select(i32(a + e), -2, ties > K), -1, atomicLoad(&refused) != 0u);
      }
    }
  `,
  };
}

tf.registerKernel({
  kernelName: TOP_K_ROWS,
  backendName: 'webgpu',
  kernelFunc: ({ inputs, attrs }) => {
    const logits = inputs.logits as tf.TensorInfo;
    const k = attrs!.k as number;
    const vocab = logits.shape[logits.shape.length - 1];
    const rows = logits.shape.slice(0, -1).reduce((a, b) => a * b, 1);
    if (!topKRowsSupported(rows, k)) throw new Error(`topKRows: cannot take the top ${k} of ${rows} rows`);
    return requireWebGpuPrograms().runWebGPUProgram(topKRowsProgram(rows, k), [logits], 'int32', [
      { type: 'int32', data: [vocab] },
    ]);
  },
});
