import * as tf from '@tensorflow/tfjs-core';

/**
 * Reads a tensor's values and disposes it as early as the backend allows:
 * at once where data() has taken its copy by the time it returns (cpu,
 * wasm, tfjs-node), so nothing is left allocated while the caller awaits;
 * when the read settles on webgpu, whose read finishes by writing the values
 * back into the tensor's own record (disposing it first makes tfjs-webgpu
 * throw inside the read).
 */
export function readAndDispose(tensor: tf.Tensor): Promise<tf.backend_util.BackendValues> {
  const pending = tensor.data();
  if (tf.getBackend() === 'webgpu') return pending.finally(() => tensor.dispose());
  tensor.dispose();
  return pending;
}
