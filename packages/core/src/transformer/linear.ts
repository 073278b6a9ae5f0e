import * as tf from '@tensorflow/tfjs-core';

/** A dense layer stored [in, out] so the matmul needs no transpose; bias fused into the matmul. */
export interface Linear {
  weight: tf.Tensor2D;
  bias?: tf.Tensor1D;
}

export function linear(x: tf.Tensor2D, layer: Linear): tf.Tensor2D {
  return tf.fused.matMul({ a: x, b: layer.weight, bias: layer.bias }) as tf.Tensor2D;
}

export function disposeLinear(layer: Linear | undefined): void {
  layer?.weight.dispose();
  layer?.bias?.dispose();
}
