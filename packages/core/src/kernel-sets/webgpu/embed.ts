import * as tf from '@tensorflow/tfjs-core';
import {
  type IntTable,
  intTable,
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

/**
 * ids: [rows·steps] int32 → [rows·steps, hidden]. Ids from the host (a
 * decode step's few) ride in the program's uniforms instead of being
 * uploaded; a tensor (ids already on the device) is read in place.
 */
export function embedRows(
  table: tf.Tensor2D,
  ids: tf.Tensor1D | ArrayLike<number>,
  positionTable: tf.Tensor2D | undefined,
  starts: ArrayLike<number> | tf.Tensor1D,
  steps: number,
): tf.Tensor2D {
  const onDevice = ids instanceof tf.Tensor;
  // Starts on the device (a recorded pass's, see pass-tape.ts) are read there.
  const startsOnDevice = starts instanceof tf.Tensor;
  const inputs: tf.NamedTensorMap = {
    table,
    ...(onDevice ? { ids } : {}),
    ...(positionTable ? { positionTable } : {}),
    ...(startsOnDevice && positionTable ? { starts } : {}),
  };
  const attrs = {
    batch: startsOnDevice ? starts.shape[0] : starts.length,
    starts: startsOnDevice ? [] : Array.from(starts),
    steps,
    ...(onDevice ? {} : { hostIds: Array.from(ids) }),
  };
  return tf.engine().runKernel(EMBED, inputs, attrs) as tf.Tensor2D;
}

function embedProgram(
  rows: number,
  hidden: number,
  positions: boolean,
  idOf: IntTable,
  startOf: RowStarts,
): WebGpuProgram {
  const threads = 64;
  return {
    variableNames: positions ? ['table', 'positionTable'] : ['table'],
    outputShape: [rows, hidden],
    shaderKey: `specstreamEmbed_${positions}_${idOf.key}_${startOf.key}`,
    dispatchLayout: { x: [0, 1] },
    dispatch: [Math.ceil((rows * hidden) / threads), 1, 1],
    workgroupSize: [threads, 1, 1],
    size: true,
    uniforms: `steps : i32, ${idOf.fields}${startOf.fields}`,
    getUserCode: () => `
    ${idOf.accessor}
    ${startOf.accessor}

    ${MAIN} {
      if (index >= uniforms.size) { return; }
      let hidden = uniforms.outShape.y;
      let row = index / hidden;
      let c = index - row * hidden;
      var value = table[idOf(row) * hidden + c];
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
    const {
      table,
      ids,
      positionTable,
      starts: startsOnDevice,
    } = inputs as Record<string, tf.TensorInfo | undefined>;
    const batch = attrs!.batch as number;
    const steps = attrs!.steps as number;
    const hostIds = attrs!.hostIds as number[] | undefined;
    const rows = ids ? ids.shape[0] : hostIds!.length;
    if ((ids && ids.dtype !== 'int32') || rows !== batch * steps) {
      const got = ids ? `${ids.dtype} [${ids.shape}]` : `[${rows}] from the host`;
      throw new Error(`embedRows: ids ${got} do not give ${batch} rows of ${steps} steps`);
    }
    const hidden = table!.shape[1];
    const idOf = intTable('ids', 'idOf', ids ?? hostIds!);
    // Without positions the starts go unused, and a buffer bound but unused breaks the pipeline's layout.
    const startOf = rowStarts(positionTable ? (startsOnDevice ?? (attrs!.starts as number[])) : []);
    return runWithStarts(
      embedProgram(rows, hidden, positionTable !== undefined, idOf, startOf),
      positionTable ? [table!, positionTable] : [table!],
      [idOf, startOf],
      [{ type: 'int32', data: [steps] }],
    );
  },
});
