import * as tf from '@tensorflow/tfjs-core';
import {
  MAIN,
  type RowStarts,
  rowStarts,
  runWithStarts,
  type WebGpuProgram,
  webGpuPrograms,
} from './webgpu-program.js';

/**
 * Token embeddings plus learned position embeddings in one kernel (webgpu):
 * row r's step s looks up ids[r·steps + s] and position starts[r] + s. tfjs
 * takes two gathers and an add, and the positions as an uploaded tensor.
 */
export const EMBED = 'SpecstreamEmbed';

export function embedSupported(): boolean {
  return webGpuPrograms() !== undefined;
}

/** ids: [rows·steps] int32 → [rows·steps, hidden]. */
export function embedRows(
  table: tf.Tensor2D,
  ids: tf.Tensor1D,
  positionTable: tf.Tensor2D | undefined,
  starts: ArrayLike<number>,
  steps: number,
): tf.Tensor2D {
  const inputs: tf.NamedTensorMap = positionTable ? { table, ids, positionTable } : { table, ids };
  return tf.engine().runKernel(EMBED, inputs, { starts: Array.from(starts), steps }) as tf.Tensor2D;
}

function embedProgram(rows: number, hidden: number, positions: boolean, startOf: RowStarts): WebGpuProgram {
  const threads = 64;
  return {
    variableNames: positions ? ['table', 'ids', 'positionTable'] : ['table', 'ids'],
    outputShape: [rows, hidden],
    shaderKey: `specstreamEmbed_${positions}_${startOf.key}`,
    dispatchLayout: { x: [0, 1] },
    dispatch: [Math.ceil((rows * hidden) / threads), 1, 1],
    workgroupSize: [threads, 1, 1],
    size: true,
    uniforms: `steps : i32, ${startOf.fields}`,
    getUserCode: () => `
    ${startOf.accessor}

    ${MAIN} {
      if (index >= uniforms.size) { return; }
      let hidden = uniforms.outShape.y;
      let row = index / hidden;
      let c = index - row * hidden;
      var value = table[ids[row] * hidden + c];
      ${
        positions
          ? `let position = startOf(row / uniforms.steps) + row % uniforms.steps;
      value = value + positionTable[position * hidden + c];`
          : ''
      }
      result[index] = value;
    }
  `,
  };
}

tf.registerKernel({
  kernelName: EMBED,
  backendName: 'webgpu',
  kernelFunc: ({ inputs, attrs }) => {
    const { table, ids, positionTable } = inputs as Record<string, tf.TensorInfo | undefined>;
    const starts = attrs!.starts as number[];
    const steps = attrs!.steps as number;
    const rows = ids!.shape[0];
    if (ids!.dtype !== 'int32' || rows !== starts.length * steps) {
      throw new Error(
        `embedRows: ids ${ids!.dtype} [${ids!.shape}] do not give ${starts.length} rows of ${steps} steps`,
      );
    }
    const hidden = table!.shape[1];
    // Without positions the starts go unused, and a buffer bound but unused breaks the pipeline's layout.
    const rowStartsOf = rowStarts(positionTable ? starts : []);
    const used = positionTable ? [table!, ids!, positionTable] : [table!, ids!];
    return runWithStarts(
      embedProgram(rows, hidden, positionTable !== undefined, rowStartsOf),
      used,
      rowStartsOf,
      [{ type: 'int32', data: [steps] }],
    );
  },
});
