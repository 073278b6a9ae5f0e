import * as tf from '@tensorflow/tfjs-core';
import { activateRows, activationSupported } from '../kernels/activation.js';
import { LINEAR_MAX_ROWS, linearProgram } from '../kernels/webgpu-linear.js';
import { requireWebGpuPrograms, webGpuPrograms } from '../kernels/webgpu-program.js';
import { type ConstantOf, plainNumber } from './constants.js';
import { type DenseLayer, linear } from './linear.js';
import { type Activation, activate } from './mlp.js';
import { type NormKind, standardize } from './norm.js';

/** One webgpu program for a whole fusedLinear (linearProgram). */
export const FUSED_LINEAR = 'SpecstreamFusedLinear';

export interface FusedLinearOptions {
  /** Standardize x's rows first: a norm whose affine part was folded into the layer. */
  norm?: { kind: NormKind; eps: number };
  activation?: Activation;
  /** The layer's output is [gate | up]: the result is act(gate)·up, half as wide. Needs `activation`. */
  gated?: boolean;
  /** Added last: the residual stream the layer writes into, [rows, out]. */
  residual?: tf.Tensor2D;
  constant?: ConstantOf;
}

/**
 * residual + act(standardize(x)·W + b), each part optional: the shape of
 * every product in a pre-norm transformer layer. On webgpu, for up to 16
 * rows (decoding and verification), it is one program instead of three to
 * six kernels; elsewhere, and for longer inputs, the same ops as before.
 */
export function fusedLinear(
  x: tf.Tensor2D,
  layer: DenseLayer,
  options: FusedLinearOptions = {},
): tf.Tensor2D {
  const { norm, activation, gated = false, residual } = options;
  if (gated && activation === undefined) throw new Error('fusedLinear: a gated layer needs an activation');
  if ('weight' in layer && x.shape[0] <= LINEAR_MAX_ROWS && webGpuPrograms() !== undefined) {
    const inputs: tf.NamedTensorMap = { x, w: layer.weight };
    if (layer.bias) inputs.bias = layer.bias;
    if (residual) inputs.residual = residual;
    const attrs = {
      norm: norm?.kind ?? 'none',
      eps: norm?.eps ?? 0,
      activation: activation ?? 'none',
      gated,
    };
    return tf.engine().runKernel(FUSED_LINEAR, inputs, attrs) as tf.Tensor2D;
  }
  const constant = options.constant ?? plainNumber;
  return tf.tidy(() => {
    let y = linear(norm ? (standardize(norm.kind, x, norm.eps, constant) as tf.Tensor2D) : x, layer);
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

tf.registerKernel({
  kernelName: FUSED_LINEAR,
  backendName: 'webgpu',
  kernelFunc: ({ inputs, attrs }) => {
    const { x, w, bias, residual } = inputs as Record<string, tf.TensorInfo | undefined>;
    const [rows, inner] = x!.shape;
    const gated = attrs!.gated === true;
    const columns = gated ? w!.shape[1] / 2 : w!.shape[1];
    if (w!.shape[0] !== inner || (gated && w!.shape[1] % 2 !== 0)) {
      throw new Error(
        `fusedLinear: cannot multiply [${x!.shape}] by [${w!.shape}]${gated ? ' (gated)' : ''}`,
      );
    }
    if (residual && (residual.shape[0] !== rows || residual.shape[1] !== columns)) {
      throw new Error(`fusedLinear: residual [${residual.shape}] is not [${rows},${columns}]`);
    }
    const norm = attrs!.norm as 'layer' | 'rms' | 'none';
    const activation = attrs!.activation as Activation | 'none';
    const program = linearProgram({
      rows,
      columns,
      norm: norm === 'none' ? undefined : norm,
      bias: bias !== undefined,
      activation: activation === 'none' ? undefined : activation,
      gated,
      residual: residual !== undefined,
    });
    const used = [x!, w!, ...(bias ? [bias] : []), ...(residual ? [residual] : [])];
    return requireWebGpuPrograms().runWebGPUProgram(program, used, 'float32', [
      { type: 'float32', data: [attrs!.eps as number] },
    ]);
  },
});
