import { MAIN, type RowStarts, type WebGpuProgram } from './webgpu-program.js';

/** Query threads per workgroup, and slots scored per tile. */
const TILE = 64;

/**
 * causalAttention as one WGSL program: a workgroup per (row, step, head)
 * walks the slots its query sees in tiles of 64, one slot's score per
 * thread, and keeps a running maximum and sum (online softmax) while each
 * thread accumulates its share of the head's dimensions over the values.
 * No mask, no score tensor, no transposes; only the visible slots are read.
 * `startOf` (the caller's row uniforms) gives each row's cache start. The
 * queries are the first `heads` heads of q's axis 2, which may hold more
 * (a packed q|k|v projection, read in place); with `rotary` they are
 * rotated as they are read, by the cos|sin table input (see rotatePacked).
 */
export function attentionProgram(
  shape: { batch: number; steps: number; heads: number; headDim: number },
  layout: 'heads' | 'slots',
  startOf: RowStarts,
  splits = 1,
  rotary = false,
): WebGpuProgram {
  const { batch, steps, heads, headDim } = shape;
  const headsFirst = layout === 'heads';
  // Split (flash-decoding): each (row, step, head) spreads its slots over `splits` workgroups, each
  // writing its unnormalized sum with its maximum and total ([items·splits, D + 2], the `splits`
  // uniform), which combineProgram merges.
  const split = splits > 1;
  const items = batch * steps * heads;
  // Keys and values read as vec4s where a head is whole vec4s (D ≤ 256): a slot's score is D/4
  // loads, and the values are summed by G = D/4 threads a vec4 each, L = ⌊64/G⌋ slots at a time
  // (each thread a slot of every L), met in shared memory at the end. Else one float at a time.
  const vec = headDim % 4 === 0 && headDim <= 4 * TILE;
  const G = vec ? headDim / 4 : 0;
  const L = vec ? Math.floor(TILE / G) : 0;
  const perThread = Math.ceil(headDim / TILE);
  const queryVec = (i: string) =>
    `vec4<f32>(query[4 * ${i}], query[4 * ${i} + 1], query[4 * ${i} + 2], query[4 * ${i} + 3])`;
  return {
    variableNames: rotary ? ['q', 'keys', 'values', 'cosSin'] : ['q', 'keys', 'values'],
    outputShape: split ? [items * splits, headDim + 2] : [batch * steps, heads * headDim],
    shaderKey: `specstreamAttention_${headDim}_${layout}_${split ? 'split' : 'whole'}_${rotary}_${vec}_${startOf.key}`,
    dispatchLayout: { x: [0, 1] },
    dispatch: [items * splits, 1, 1],
    workgroupSize: [TILE, 1, 1],
    ...(vec ? { variableComponents: rotary ? [1, 4, 4, 1] : [1, 4, 4] } : {}),
    uniforms: `window : i32, queryHeads : i32, splits : i32, ${startOf.fields}`,
    getUserCode: () => `
    const D = ${headDim};
    var<workgroup> query : array<f32, D>;
    var<workgroup> scores : array<f32, ${TILE}>;
    var<workgroup> span : vec2<i32>;
    ${vec ? `var<workgroup> partial : array<vec4<f32>, ${TILE}>;` : ''}

    ${startOf.accessor}

    // Offset of slot p of KV head kvh in row b${vec ? ', in vec4s' : ''}.
    fn slotAt(b : i32, kvh : i32, p : i32) -> i32 {
      ${
        headsFirst
          ? `return ((b * uniforms.keysShape.y + kvh) * uniforms.keysShape.z + p) * D${vec ? ' / 4' : ''};`
          : `return ((b * uniforms.keysShape.y + p) * uniforms.keysShape.z + kvh) * D${vec ? ' / 4' : ''};`
      }
    }

    ${MAIN} {
      let tid = i32(localId.x);
      let heads = uniforms.queryHeads;
      let steps = uniforms.qShape.y;
      // More than 65,535 workgroups come as a square (tfjs reshapes the dispatch): the few past
      // the end redo the last one's work and write nothing.
      let groups = uniforms.qShape.x * steps * heads * uniforms.splits;
      let live = index / ${TILE} < groups;
      let group = min(index / ${TILE}, groups - 1);
      let item = group / uniforms.splits;
      let h = item % heads;
      let s = (item / heads) % steps;
      let b = item / (heads * steps);
      let kvHeads = ${headsFirst ? 'uniforms.keysShape.y' : 'uniforms.keysShape.z'};
      let kvh = h / (heads / kvHeads);
      let at = item * D;
      let queryAt = ((b * steps + s) * uniforms.qShape.z + h) * D;
      ${
        rotary
          ? `// Rotary: x·cos + rotate_half(x)·sin of the query's position (cos|sin table row b·steps + s).
      let angles = (b * steps + s) * D;
      for (var d = tid; d < D; d = d + ${TILE}) {
        let i = d % ${headDim / 2};
        let c = cosSin[angles + i];
        let sn = cosSin[angles + ${headDim / 2} + i];
        if (d < ${headDim / 2}) { query[d] = q[queryAt + d] * c - q[queryAt + d + ${headDim / 2}] * sn; }
        else { query[d] = q[queryAt + d] * c + q[queryAt + d - ${headDim / 2}] * sn; }
      }`
          : `for (var d = tid; d < D; d = d + ${TILE}) { query[d] = q[queryAt + d]; }`
      }
      if (tid == 0) {
        let last = startOf(b) + s;
        let visibleFrom = max(0, last + 1 - uniforms.window);
        ${
          split
            ? `// This workgroup's share of the visible slots, in whole tiles.
        let part = group % uniforms.splits;
        let share = ((last + 1 - visibleFrom + uniforms.splits - 1) / uniforms.splits + ${TILE - 1}) / ${TILE} * ${TILE};
        let lo = visibleFrom + part * share;
        span = vec2<i32>(lo, max(lo, min(last + 1, lo + share)));`
            : 'span = vec2<i32>(visibleFrom, last + 1);'
        }
      }
      let seen = workgroupUniformLoad(&span);
      var best = -3.402823e+38;
      var total = 0.0;
      ${vec ? vecBody(G, L, queryVec) : scalarBody(headDim, perThread)}
      ${vec ? vecOutput(G, L, split) : scalarOutput(perThread, split)}
    }
  `,
  };
}

/** Tiles with vec4 reads: scores a slot per thread, weights in shared memory, values by G×L threads. */
function vecBody(G: number, L: number, queryVec: (i: string) => string): string {
  return `let g = tid % ${G};
      let lane = tid / ${G};
      var mixed = vec4<f32>(0.0);
      for (var first = seen.x; first < seen.y; first = first + ${TILE}) {
        let p = first + tid;
        var score = -3.402823e+38;
        if (p < seen.y) {
          let k = slotAt(b, kvh, p);
          var dot4 = vec4<f32>(0.0);
          for (var i = 0; i < ${G}; i = i + 1) { dot4 = dot4 + ${queryVec('i')} * keys[k + i]; }
          score = dot4.x + dot4.y + dot4.z + dot4.w;
        }
        scores[tid] = score;
        workgroupBarrier();
        let count = min(${TILE}, seen.y - first);
        var tileBest = best;
        for (var j = 0; j < count; j = j + 1) { tileBest = max(tileBest, scores[j]); }
        workgroupBarrier();
        // Each slot's weight once, by its own thread.
        if (tid < count) { scores[tid] = exp(score - tileBest); }
        workgroupBarrier();
        let rescale = exp(best - tileBest);
        total = total * rescale;
        mixed = mixed * rescale;
        for (var j = 0; j < count; j = j + 1) { total = total + scores[j]; }
        if (lane < ${L}) {
          for (var j = lane; j < count; j = j + ${L}) {
            mixed = mixed + scores[j] * values[slotAt(b, kvh, first + j) + g];
          }
        }
        best = tileBest;
        workgroupBarrier();
      }
      partial[tid] = mixed;
      workgroupBarrier();`;
}

/** The vec4 path's output: thread g of lane 0 sums its vec4 over the lanes. */
function vecOutput(G: number, L: number, split: boolean): string {
  return `if (live && tid < ${G}) {
        var sum = vec4<f32>(0.0);
        for (var l = 0; l < ${L}; l = l + 1) { sum = sum + partial[l * ${G} + tid]; }
        ${
          split
            ? `let partAt = group * (D + 2);
        for (var c = 0; c < 4; c = c + 1) { result[partAt + 4 * tid + c] = sum[c]; }
        if (tid == 0) {
          result[partAt + D] = best;
          result[partAt + D + 1] = total;
        }`
            : 'for (var c = 0; c < 4; c = c + 1) { result[at + 4 * tid + c] = sum[c] / total; }'
        }
      }`;
}

/** Tiles read a float at a time (heads that are not whole vec4s, or wider than 256). */
function scalarBody(headDim: number, perThread: number): string {
  return `var mixed : array<f32, ${perThread}>;
      for (var first = seen.x; first < seen.y; first = first + ${TILE}) {
        let p = first + tid;
        var score = -3.402823e+38;
        if (p < seen.y) {
          let k = slotAt(b, kvh, p);
          var dot = 0.0;
          for (var d = 0; d < D; d = d + 1) { dot = dot + query[d] * keys[k + d]; }
          score = dot;
        }
        scores[tid] = score;
        workgroupBarrier();
        let count = min(${TILE}, seen.y - first);
        var tileBest = best;
        for (var j = 0; j < count; j = j + 1) { tileBest = max(tileBest, scores[j]); }
        let rescale = exp(best - tileBest);
        total = total * rescale;
        for (var i = 0; i < ${perThread}; i = i + 1) { mixed[i] = mixed[i] * rescale; }
        for (var j = 0; j < count; j = j + 1) {
          let weight = exp(scores[j] - tileBest);
          total = total + weight;
          let v = slotAt(b, kvh, first + j);
          for (var i = 0; i < ${perThread}; i = i + 1) {
            let d = tid + i * ${TILE};
            if (d < D) { mixed[i] = mixed[i] + weight * values[v + d]; }
          }
        }
        best = tileBest;
        workgroupBarrier();
      }`;
}

function scalarOutput(perThread: number, split: boolean): string {
  return split
    ? `let partAt = group * (D + 2);
      if (live) {
        for (var i = 0; i < ${perThread}; i = i + 1) {
          let d = tid + i * ${TILE};
          if (d < D) { result[partAt + d] = mixed[i]; }
        }
        if (tid == 0) {
          result[partAt + D] = best;
          result[partAt + D + 1] = total;
        }
      }`
    : `if (live) {
        for (var i = 0; i < ${perThread}; i = i + 1) {
          let d = tid + i * ${TILE};
          if (d < D) { result[at + d] = mixed[i] / total; }
        }
      }`;
}

/**
 * Merges the split partial sums of attentionProgram: per (row, step, head)
 * and dimension, Σ_s mixed_s·e^(max_s − M) / Σ_s total_s·e^(max_s − M), M
 * the largest maximum. A part that saw no slot has total 0 and adds nothing.
 * The number of parts per item is the `splits` uniform.
 */
export function combineProgram(items: number, headDim: number, outShape: [number, number]): WebGpuProgram {
  const threads = 64;
  return {
    variableNames: ['parts'],
    outputShape: outShape,
    shaderKey: `specstreamAttentionCombine_${headDim}`,
    dispatchLayout: { x: [0, 1] },
    dispatch: [Math.ceil((items * headDim) / threads), 1, 1],
    workgroupSize: [threads, 1, 1],
    size: true,
    uniforms: 'splits : i32, ',
    getUserCode: () => `
    const D = ${headDim};
    ${MAIN} {
      if (index >= uniforms.size) { return; }
      let item = index / D;
      let d = index % D;
      let first = item * uniforms.splits;
      var top = -3.402823e+38;
      for (var p = 0; p < uniforms.splits; p = p + 1) {
        if (parts[(first + p) * (D + 2) + D + 1] > 0.0) { top = max(top, parts[(first + p) * (D + 2) + D]); }
      }
      var total = 0.0;
      var sum = 0.0;
      for (var p = 0; p < uniforms.splits; p = p + 1) {
        let at = (first + p) * (D + 2);
        if (parts[at + D + 1] > 0.0) {
          let scale = exp(parts[at + D] - top);
          total = total + parts[at + D + 1] * scale;
          sum = sum + parts[at + d] * scale;
        }
      }
      result[index] = sum / total;
    }
  `,
  };
}
