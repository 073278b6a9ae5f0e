import * as tf from '@tensorflow/tfjs-core';
import { activateRows, activationSupported } from '../kernels/activation.js';
import { rowLinear } from '../kernels/row-linear.js';
import { type ConstantOf, plainNumber } from './constants.js';
import { type DenseLayer, linear } from './linear.js';
import { type Activation, activate } from './mlp.js';
import { type NormKind, standardize } from './norm.js';

export interface FusedLinearOptions {
  /** Standardize x's rows first: a norm whose affine part was folded into the layer. */
  norm?: { kind: NormKind; eps: number };
  activation?: Activation;
  /** The layer's output is [gate | up]: the result is act(gate)·up, half as wide. Needs `activation`. */
  gated?: boolean;
  /** Added last: the residual stream the layer writes into, [rows, out]. */
  residual?: tf.Tensor2D;
  /**
   * Multiply only x's rows offset, offset + stride, … (a pass's last step
   * per batch row): inside the program for a RowLinear, a gather elsewhere.
   */
  pickRows?: { stride: number; offset: number };
  constant?: ConstantOf;
}

/**
 * residual + act(standardize(x)·W + b), each part optional: the shape of
 * every product in a pre-norm transformer layer. For a RowLinear (webgpu
 * with core's programs) it is one program instead of three to six kernels;
 * elsewhere the same ops as before.
 */
export function fusedLinear(
  x: tf.Tensor2D,
  layer: DenseLayer,
  options: FusedLinearOptions = {},
): tf.Tensor2D {
  const { norm, activation, gated = false, residual, pickRows } = options;
  if (gated && activation === undefined) throw new Error('fusedLinear: a gated layer needs an activation');
  if ('weightRows' in layer) return rowLinear(x, layer, options);
  const constant = options.constant ?? plainNumber;
  return tf.tidy(() => {
    const rows = pickRows ? pickedRows(x.shape[0], pickRows) : undefined;
    const input = rows ? (tf.gather(x, rows) as tf.Tensor2D) : x;
    let y = linear(norm ? (standardize(norm.kind, input, norm.eps, constant) as tf.Tensor2D) : input, layer);
    if (activation !== undefined) {
      if (activationSupported()) y = activateRows(activation, y, gated);
      else if (!gated) y = activate(activation, y, constant) as tf.Tensor2D;
      else {
        const [gate, up] = tf.split(y, 2, 1);
        y = tf.mul(activate(activation, gate, constant), up) as tf.Tensor2D;
      }
    }
    return residual ? (tf.add(residual, y) as tf.Tensor2D) : y;
  });
}

function pickedRows(total: number, { stride, offset }: { stride: number; offset: number }): Int32Array {
  if (!Number.isInteger(stride) || stride < 1 || !Number.isInteger(offset) || offset < 0 || offset >= total) {
    throw new Error(`fusedLinear: cannot pick rows ${offset}, ${offset} + ${stride}, … of ${total} rows`);
  }
  return Int32Array.from(
    { length: Math.floor((total - 1 - offset) / stride) + 1 },
    (_, r) => offset + r * stride,
  );
}
