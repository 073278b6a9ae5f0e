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
 * A token table as the webgpu set keeps it: floats [vocab, hidden], or the
 * rows packed as its products' weights are (a RowLinear's weightRows and
 * scales: f16 pairs, q8 quads, q4 octets), each looked-up value unpacked.
 */
export type EmbedTable = tf.Tensor2D | { readonly weightRows: tf.Tensor2D; readonly scales?: tf.Tensor2D };

/**
 * ids: [rows·steps] int32 → [rows·steps, hidden]. Ids from the host (a
 * decode step's few) ride in the program's uniforms instead of being
 * uploaded; a tensor (ids already on the device) is read in place.
 */
export function embedRows(
  table: EmbedTable,
  ids: tf.Tensor1D | ArrayLike<number>,
  positionTable: tf.Tensor2D | undefined,
  starts: ArrayLike<number> | tf.Tensor1D,
  steps: number,
): tf.Tensor2D {
  const onDevice = ids instanceof tf.Tensor;
  // Starts on the device (a recorded pass's, see pass-tape.ts) are read there.
  const startsOnDevice = starts instanceof tf.Tensor;
  const packed = table instanceof tf.Tensor ? { weightRows: table } : table;
  const inputs: tf.NamedTensorMap = {
    table: packed.weightRows,
    ...(packed.scales ? { scales: packed.scales } : {}),
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

type TableFormat = 'f32' | 'f16' | 'q8' | 'q4';

/** Value c of token `id`'s row, unpacked (see packF16Rows, quantizeRowsQ8, quantizeRowsQ4). */
const LOOKUP: Record<TableFormat, string> = {
  f32: 'return table[id * hidden + c];',
  f16: 'return unpack2x16float(bitcast<u32>(table[id * (hidden / 2) + c / 2]))[c % 2];',
  q8: `let word = table[id * (hidden / 4) + c / 4];
      return f32((word << u32(24 - 8 * (c % 4))) >> 24u) * scales[id * (hidden / 32) + c / 32];`,
  q4: `let j = c % 8;
      let shift = u32(8 * (j % 4) + select(0, 4, j >= 4));
      let nibble = (bitcast<u32>(table[id * (hidden / 8) + c / 8]) >> shift) & 15u;
      return (f32(nibble) - 8.0) * scales[id * (hidden / 32) + c / 32];`,
};

function embedProgram(
  rows: number,
  hidden: number,
  format: TableFormat,
  positions: boolean,
  idOf: IntTable,
  startOf: RowStarts,
): WebGpuProgram {
  const threads = 64;
  const quantized = format === 'q8' || format === 'q4';
  return {
    variableNames: ['table', ...(quantized ? ['scales'] : []), ...(positions ? ['positionTable'] : [])],
    outputShape: [rows, hidden],
    shaderKey: `specstreamEmbed_${format}_${positions}_${idOf.key}_${startOf.key}`,
    dispatchLayout: { x: [0, 1] },
    dispatch: [Math.ceil((rows * hidden) / threads), 1, 1],
    workgroupSize: [threads, 1, 1],
    size: true,
    uniforms: `steps : i32, ${idOf.fields}${startOf.fields}`,
    getUserCode: () => `
    ${idOf.accessor}
    ${startOf.accessor}

    fn lookup(id : i32, c : i32, hidden : i32) -> f32 {
      ${LOOKUP[format]}
    }

    ${MAIN} {
      if (index >= uniforms.size) { return; }
      let hidden = uniforms.outShape.y;
      let row = index / hidden;
      let c = index - row * hidden;
      var value = lookup(idOf(row), c, hidden);
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
      scales,
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
    // Packed rows hold 2 (f16), 4 (q8) or 8 (q4) values an int32; a scale per 32 says how wide a row is.
    const perWord = table!.dtype !== 'int32' ? 1 : !scales ? 2 : (32 * scales.shape[1]) / table!.shape[1];
    const format: TableFormat | undefined =
      perWord === 1 ? 'f32' : perWord === 2 ? 'f16' : perWord === 4 ? 'q8' : perWord === 8 ? 'q4' : undefined;
    if (format === undefined) throw new Error(`embedRows: cannot tell how [${table!.shape}] is packed`);
    const hidden = table!.shape[1] * perWord;
    const idOf = intTable('ids', 'idOf', ids ?? hostIds!);
    // Without positions the starts go unused, and a buffer bound but unused breaks the pipeline's layout.
    const startOf = rowStarts(positionTable ? (startsOnDevice ?? (attrs!.starts as number[])) : []);
    return runWithStarts(
      embedProgram(rows, hidden, format, positionTable !== undefined, idOf, startOf),
      [table!, ...(scales ? [scales] : []), ...(positionTable ? [positionTable] : [])],
      [idOf, startOf],
      [{ type: 'int32', data: [steps] }],
    );
  },
});
