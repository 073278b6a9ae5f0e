import type * as tf from '@tensorflow/tfjs-core';
import { openCheckpoint } from './checkpoint.js';
import type { TensorInfo } from './header.js';

export interface LoadTensorsOptions {
  /** Load only these tensors (all when omitted). Unknown names fail before anything is read. */
  names?: readonly string[];
  /**
   * Called after each tensor. Bytes count what was read from disk (F16 tensors count 2 per
   * element), so `loadedBytes` reaches `totalBytes` exactly after the last tensor.
   */
  onProgress?: (loadedBytes: number, totalBytes: number, name: string) => void;
}

/**
 * Reads a checkpoint (model folder or .safetensors file) tensor by tensor, so the peak is the
 * float32 size of the weights plus one tensor in flight, never a whole file in one buffer.
 * On failure every tensor created so far is disposed.
 */
export async function loadTensors(
  location: string,
  options: LoadTensorsOptions = {},
): Promise<Map<string, tf.Tensor>> {
  const checkpoint = await openCheckpoint(location);
  const loaded = new Map<string, tf.Tensor>();
  try {
    const names = [...new Set(options.names ?? checkpoint.names)];
    const entries = names.map((name) => [name, checkpoint.info(name)] as const);
    // Reading in file order lets the OS read ahead instead of seeking back and forth.
    entries.sort(([, a], [, b]) => compareFilePosition(a, b));
    const totalBytes = entries.reduce((sum, [, info]) => sum + info.byteLength, 0);
    let loadedBytes = 0;
    for (const [name, info] of entries) {
      loaded.set(name, await checkpoint.readTensor(name));
      loadedBytes += info.byteLength;
      options.onProgress?.(loadedBytes, totalBytes, name);
    }
    return loaded;
  } catch (error) {
    for (const tensor of loaded.values()) tensor.dispose();
    throw error;
  } finally {
    await checkpoint.close();
  }
}

function compareFilePosition(a: TensorInfo, b: TensorInfo): number {
  if (a.file !== b.file) return a.file < b.file ? -1 : 1;
  return a.fileOffset - b.fileOffset;
}
