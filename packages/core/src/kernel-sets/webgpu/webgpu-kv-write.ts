import { MAIN, type RowStarts, type WebGpuProgram } from './webgpu-program.js';

/**
 * Writes new keys (or values) into a KV cache buffer in place, reading them
 * straight from packed projections: heads firstHead .. firstHead + kvHeads − 1
 * of `packed` [batch, steps, heads, headDim] (a fused q|k|v product) go to
 * slots startOf(b) + s of the cache [batch, kvHeads, capacity, headDim]. One
 * dispatch replaces slicing the heads out, transposing them heads-first and
 * a copy command per row and head. The cache is the program's output buffer,
 * passed in rather than allocated (see inplace.ts). Keys of rotary models are
 * rotated here as they are written (`rotary`: the cos|sin table is an input).
 */
export function kvWriteProgram(
  cacheShape: readonly number[],
  packedShape: readonly number[],
  startOf: RowStarts,
  rotary = false,
): WebGpuProgram {
  const [batch, steps, , headDim] = packedShape;
  const count = batch * steps * cacheShape[1] * headDim;
  const threads = 64;
  // With rotary, each written value is x·cos + rotate_half(x)·sin of its position (the table
  // cosSin [batch·steps, headDim]: cos for the first half, then sin), as rotatePacked computes it.
  const value = rotary
    ? `{
        let half = dim / 2;
        let i = d % half;
        let at = (b * steps + s) * dim;
        let c = cosSin[at + i];
        let sn = cosSin[at + half + i];
        if (d < half) { result[slotAt] = packed[source] * c - packed[source + half] * sn; }
        else { result[slotAt] = packed[source] * c + packed[source - half] * sn; }
      }`
    : 'result[slotAt] = packed[source];';
  return {
    variableNames: rotary ? ['packed', 'cosSin'] : ['packed'],
    outputShape: [...cacheShape],
    shaderKey: `specstreamKvWrite_${rotary}_${startOf.key}`,
    dispatchLayout: { x: cacheShape.map((_, i) => i) },
    dispatch: [Math.ceil(count / threads), 1, 1],
    workgroupSize: [threads, 1, 1],
    uniforms: `firstHead : i32, count : i32, ${startOf.fields}`,
    getUserCode: () => `
    ${startOf.accessor}

    ${MAIN} {
      if (index >= uniforms.count) { return; }
      let dim = uniforms.packedShape.w;
      let kvHeads = uniforms.outShape.y;
      let steps = uniforms.packedShape.y;
      let d = index % dim;
      let h = (index / dim) % kvHeads;
      let s = (index / (dim * kvHeads)) % steps;
      let b = index / (dim * kvHeads * steps);
      let slot = startOf(b) + s;
      let source = ((b * steps + s) * uniforms.packedShape.z + uniforms.firstHead + h) * dim + d;
      let slotAt = ((b * kvHeads + h) * uniforms.outShape.z + slot) * dim + d;
      ${value}
    }
  `,
  };
}
