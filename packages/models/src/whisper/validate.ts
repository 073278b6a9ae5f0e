import { InvalidArgumentError } from '@specstream/core';
import type * as tf from '@tensorflow/tfjs-core';

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
