import * as tf from '@tensorflow/tfjs-core';
import {
  disposePackedLinear,
  type PackedLinear,
  packedLinear,
  type TransposedLinear,
  transposedLinear,
} from '../kernel-sets/wasm/packed-linear.js';
import { quantLinear } from '../kernel-sets/wasm/quant-linear.js';
import { disposeQuantMatrix, type QuantMatrix } from '../kernel-sets/wasm/quant-matrix.js';
import { type RowLinear, rowLinear } from '../kernel-sets/webgpu/row-linear.js';

/** A dense layer stored [in, out] so the matmul needs no transpose; bias fused into the matmul. */
export interface Linear {
  weight: tf.Tensor2D;
  bias?: tf.Tensor1D;
}

/**
 * A dense layer as given, packed for core's wasm kernel (packLinear), a
 * borrowed [out, in] weight (a tied embedding as the head), or stored
 * [out, in] for core's webgpu programs (RowLinear), or quantized to 8 or
 * 4 bits for core's wasm kernels (QuantMatrix).
 */
export type DenseLayer = Linear | PackedLinear | TransposedLinear | RowLinear | QuantMatrix;

export function linear(x: tf.Tensor2D, layer: DenseLayer): tf.Tensor2D {
  if ('panels' in layer) return packedLinear(x, layer);
  if ('quads' in layer) return quantLinear(x, layer);
  if ('weightRows' in layer) return rowLinear(x, layer);
  if ('weightT' in layer) return transposedLinear(x, layer);
  return tf.fused.matMul({ a: x, b: layer.weight, bias: layer.bias }) as tf.Tensor2D;
}

/** Frees what the layer owns (a TransposedLinear owns nothing). */
export function disposeLinear(layer: DenseLayer | undefined): void {
  if (layer === undefined || 'weightT' in layer) return;
  if ('panels' in layer) disposePackedLinear(layer);
  else if ('quads' in layer) disposeQuantMatrix(layer);
  else if ('weightRows' in layer) {
    layer.weightRows.dispose();
    layer.scales?.dispose();
    layer.bias?.dispose();
  } else {
    layer.weight.dispose();
    layer.bias?.dispose();
  }
}
