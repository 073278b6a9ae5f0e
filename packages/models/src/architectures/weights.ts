import {
  type ArenaMatrix,
  arenaMatrixFromChunks,
  InvalidArgumentError,
  type LayerLinear,
  type Linear,
  type NormWeights,
  type QuantBlocks,
  reserveBackendMemory,
} from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { SafetensorsError } from '../safetensors/errors.js';
import type { TensorReader } from '../safetensors/file.js';

/**
 * Reads named tensors from a checkpoint one at a time, so peak memory stays
 * near the weights' float32 size, and reports progress in bytes.
 */
export interface WeightSource {
  has(name: string): boolean;
  tensor(name: string): Promise<tf.Tensor>;
  /** A float matrix read chunk by chunk into core's weight arena, never whole on the host or in tfjs. */
  arenaMatrix(name: string): Promise<ArenaMatrix>;
  /** A transformers nn.Linear ([out, in]) as a core Linear ([in, out]); bias if present. */
  linear(prefix: string): Promise<Linear>;
  /** A GPT-2 Conv1D, already stored [in, out]. */
  conv1d(prefix: string): Promise<Linear>;
  norm(prefix: string): Promise<NormWeights>;
  /**
   * `linear`, `conv1d` and (for an embedding, [vocab, hidden]) `tensor`, or — where the source
   * holds the weight already quantized in the format the model's kernels keep (a GGUF file's
   * Q8_0/Q4_0 blocks for the wasm set's q8/q4) — that weight as its blocks (QuantBlocks, one
   * row per output or token), with no float copy made. This source: always float.
   */
  linearOrBlocks(prefix: string): Promise<LayerLinear>;
  conv1dOrBlocks(prefix: string): Promise<LayerLinear>;
  embeddingOrBlocks(name: string): Promise<tf.Tensor2D | QuantBlocks>;
  /** Frees every tensor handed out so far: a load that fails part-way leaves nothing behind. */
  disposeAll(): void;
}

export type Progress = (loadedBytes: number, totalBytes: number, name: string) => void;

export function weightSource(
  reader: TensorReader,
  location: string,
  architecture: string,
  onProgress?: Progress,
): WeightSource {
  const total = reader.names.reduce((n, name) => n + byteLength(reader, name), 0);
  // Every tensor becomes float32 or int32: 4 bytes per element, whatever the file's dtype.
  reserveBackendMemory(
    reader.names.reduce((n, name) => n + 4 * reader.info(name).shape.reduce((a, b) => a * b, 1), 0),
  );
  let loaded = 0;
  const handedOut: tf.Tensor[] = [];
  const track = <T extends tf.Tensor>(t: T): T => {
    handedOut.push(t);
    return t;
  };
  /** Counts a tensor as loaded, once it is wherever it goes. */
  function loadedOne(name: string): void {
    loaded += byteLength(reader, name);
    onProgress?.(loaded, total, name);
  }
  function requireTensor(name: string): void {
    if (!reader.has(name)) {
      throw new SafetensorsError(
        location,
        `the ${architecture} architecture needs tensor "${name}", which the checkpoint lacks`,
      );
    }
  }
  async function readValues(name: string) {
    requireTensor(name);
    const { values, dtype } = await reader.readValues(name);
    return { values, dtype, shape: reader.info(name).shape };
  }
  /** Reads one tensor; `arrange` may reorder its values before they become a tensor. */
  async function read(
    name: string,
    arrange?: (values: Float32Array | Int32Array, shape: readonly number[]) => TensorParts,
  ): Promise<tf.Tensor> {
    const { values, dtype, shape } = await readValues(name);
    const parts = arrange ? arrange(values, shape) : { values, shape };
    const t = track(tf.tensor(parts.values, [...parts.shape], dtype));
    loadedOne(name);
    return t;
  }
  const tensor = (name: string) => read(name);
  async function optional(name: string): Promise<tf.Tensor1D | undefined> {
    return reader.has(name) ? ((await tensor(name)) as tf.Tensor1D) : undefined;
  }
  async function linear(prefix: string): Promise<Linear> {
    // Transposed before it becomes a tensor: a tfjs transpose would hold both layouts at once
    // in the backend, and on wasm the freed one leaves a hole that a later tensor rarely fits.
    const weight = (await read(`${prefix}.weight`, transpose2d)) as tf.Tensor2D;
    const bias = await optional(`${prefix}.bias`);
    return bias ? { weight, bias } : { weight };
  }
  async function conv1d(prefix: string): Promise<Linear> {
    const weight = (await tensor(`${prefix}.weight`)) as tf.Tensor2D;
    const bias = await optional(`${prefix}.bias`);
    return bias ? { weight, bias } : { weight };
  }
  return {
    disposeAll: () => {
      for (const t of handedOut) if (!t.isDisposed) t.dispose();
    },
    has: (name) => reader.has(name),
    tensor,
    async arenaMatrix(name) {
      requireTensor(name);
      const { shape } = reader.info(name);
      if (shape.length !== 2)
        throw new SafetensorsError(location, `tensor "${name}" is not a matrix: [${shape}]`);
      const matrix = await arenaMatrixFromChunks([shape[0], shape[1]], reader.readChunks(name));
      loadedOne(name);
      return matrix;
    },
    linear,
    conv1d,
    linearOrBlocks: linear,
    conv1dOrBlocks: conv1d,
    embeddingOrBlocks: async (name) => (await tensor(name)) as tf.Tensor2D,
    async norm(prefix) {
      const weight = (await tensor(`${prefix}.weight`)) as tf.Tensor1D;
      const bias = await optional(`${prefix}.bias`);
      return bias ? { weight, bias } : { weight };
    },
  };
}

function byteLength(reader: TensorReader, name: string): number {
  return reader.info(name).byteLength;
}

interface TensorParts {
  values: Float32Array | Int32Array;
  shape: readonly number[];
}

/** [rows, cols] row-major → [cols, rows], in cache-sized tiles. */
function transpose2d(values: Float32Array | Int32Array, shape: readonly number[]): TensorParts {
  if (shape.length !== 2) throw new InvalidArgumentError(`expected a 2-D weight, got shape [${shape}]`);
  const [rows, cols] = shape;
  const out =
    values instanceof Float32Array ? new Float32Array(values.length) : new Int32Array(values.length);
  const TILE = 64;
  for (let r0 = 0; r0 < rows; r0 += TILE) {
    const r1 = Math.min(r0 + TILE, rows);
    for (let c0 = 0; c0 < cols; c0 += TILE) {
      const c1 = Math.min(c0 + TILE, cols);
      for (let r = r0; r < r1; r++) {
        const from = r * cols;
        for (let c = c0; c < c1; c++) out[c * rows + r] = values[from + c];
      }
    }
  }
  return { values: out, shape: [cols, rows] };
}
