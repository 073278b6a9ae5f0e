import { InvalidArgumentError } from '@specstream/core';
import type * as tf from '@tensorflow/tfjs-core';

/**
 * Core checks its `logits` indices with a validate.ts function that its
 * index does not export; this one throws the same messages, so a Whisper
 * decoder fails exactly like core's.
 */
export function checkLogitsIndices(indices: ArrayLike<number>, batch: number, steps: number): void {
  if (indices.length !== batch) {
    throw new InvalidArgumentError(
      `logits indices need one entry per row: expected ${batch}, got ${indices.length}`,
    );
  }
  for (let r = 0; r < batch; r++) {
    const index = indices[r];
    if (!Number.isInteger(index) || index < 0 || index >= steps) {
      throw new InvalidArgumentError(
        `logits index ${index} for row ${r} is outside the window [0, ${steps})`,
      );
    }
  }
}

/** The encoder's output as the decoder attends to it: [batch, sourceSteps, dModel], float32. */
export function checkEncoderOutput(output: tf.Tensor3D, batch: number, dModel: number): void {
  const shape = output?.shape ?? [];
  const ok =
    shape.length === 3 &&
    output.dtype === 'float32' &&
    shape[0] === batch &&
    shape[1] >= 1 &&
    shape[2] === dModel;
  if (!ok) {
    throw new InvalidArgumentError(
      `encoderOutput must be float32 [${batch}, sourceSteps, ${dModel}] (one row per state row); got ${output?.dtype} [${shape}]`,
    );
  }
  if (output.isDisposed) throw new InvalidArgumentError('encoderOutput was disposed');
}
