import type { Linear, NormWeights } from '@specstream/core';
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
  /** A transformers nn.Linear ([out, in]) as a core Linear ([in, out]); bias if present. */
  linear(prefix: string): Promise<Linear>;
  /** A GPT-2 Conv1D, already stored [in, out]. */
  conv1d(prefix: string): Promise<Linear>;
  norm(prefix: string): Promise<NormWeights>;
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
  let loaded = 0;
  const handedOut: tf.Tensor[] = [];
  const track = <T extends tf.Tensor>(t: T): T => {
    handedOut.push(t);
    return t;
  };
  async function tensor(name: string): Promise<tf.Tensor> {
    if (!reader.has(name)) {
      throw new SafetensorsError(
        location,
        `the ${architecture} architecture needs tensor "${name}", which the checkpoint lacks`,
      );
    }
    const t = track(await reader.readTensor(name));
    loaded += byteLength(reader, name);
    onProgress?.(loaded, total, name);
    return t;
  }
  async function optional(name: string): Promise<tf.Tensor1D | undefined> {
    return reader.has(name) ? ((await tensor(name)) as tf.Tensor1D) : undefined;
  }
  return {
    disposeAll: () => {
      for (const t of handedOut) if (!t.isDisposed) t.dispose();
    },
    has: (name) => reader.has(name),
    tensor,
    async linear(prefix) {
      const stored = await tensor(`${prefix}.weight`);
      const weight = track(tf.transpose(stored) as tf.Tensor2D);
      stored.dispose();
      const bias = await optional(`${prefix}.bias`);
      return bias ? { weight, bias } : { weight };
    },
    async conv1d(prefix) {
      const weight = (await tensor(`${prefix}.weight`)) as tf.Tensor2D;
      const bias = await optional(`${prefix}.bias`);
      return bias ? { weight, bias } : { weight };
    },
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
