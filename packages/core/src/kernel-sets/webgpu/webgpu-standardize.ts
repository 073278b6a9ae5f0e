import { MAIN, type WebGpuProgram, workgroupSumWgsl } from './webgpu-program.js';

/**
 * standardizeRows as one WGSL program: a workgroup per row sums it (and,
 * for LayerNorm, the squared deviations from the mean) in shared memory,
 * then writes the row scaled. Two passes over the row, as the composed ops
 * do, so the variance is taken around the mean rather than from E[x²].
 */
export function standardizeProgram(shape: readonly number[], center: boolean): WebGpuProgram {
  const cols = shape[shape.length - 1];
  const rows = shape.slice(0, -1).reduce((a, b) => a * b, 1);
  const threads = cols > 256 ? 256 : 64;
  return {
    variableNames: ['x'],
    outputShape: [...shape],
    shaderKey: `specstreamStandardize_${threads}_${center ? 'layer' : 'rms'}`,
    dispatchLayout: { x: shape.map((_, i) => i) },
    dispatch: [rows, 1, 1],
    workgroupSize: [threads, 1, 1],
    uniforms: 'eps : f32, cols : i32, ',
    getUserCode: () => `
    ${workgroupSumWgsl(threads)}

    ${MAIN} {
      let tid = i32(localId.x);
      let row = index / ${threads};
      let cols = uniforms.cols;
      let base = row * cols;
      var mean = 0.0;
      ${
        center
          ? `var sum = 0.0;
      for (var c = tid; c < cols; c = c + ${threads}) { sum = sum + x[base + c]; }
      mean = workgroupSum(tid, sum) / f32(cols);`
          : ''
      }
      var squares = 0.0;
      for (var c = tid; c < cols; c = c + ${threads}) {
        let d = x[base + c] - mean;
        squares = squares + d * d;
      }
      let scale = inverseSqrt(workgroupSum(tid, squares) / f32(cols) + uniforms.eps);
      for (var c = tid; c < cols; c = c + ${threads}) {
        result[base + c] = (x[base + c] - mean) * scale;
      }
    }
  `,
  };
}
