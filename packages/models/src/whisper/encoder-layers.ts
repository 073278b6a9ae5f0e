import {
  type Activation,
  activate,
  cachedAttention,
  type DenseLayer,
  denseForBackend,
  disposeLinear,
  disposeNorm,
  layerNorm,
  linear,
  mlp,
  type NormWeights,
} from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { fuseLinears } from './attention.js';
import type { ConvWeights, EncoderLayerWeights } from './weights.js';

/** An encoder layer as the forward pass uses it: q/k/v fused into one matmul, q pre-scaled. */
export interface PreparedEncoderLayer {
  attnNorm: NormWeights;
  qkv: DenseLayer;
  o: DenseLayer;
  mlpNorm: NormWeights;
  mlp: { up: DenseLayer; down: DenseLayer };
}

/** A conv as tf.conv1d takes it: filter [kernel, in, out]. */
export interface PreparedConv {
  filter: tf.Tensor3D;
  bias: tf.Tensor1D;
}

export function prepareConv(conv: ConvWeights): PreparedConv {
  const filter = tf.transpose(conv.weight, [2, 1, 0]) as tf.Tensor3D;
  conv.weight.dispose();
  return { filter, bias: conv.bias };
}

/**
 * torch's Conv1d(padding=1) followed by the activation. tfjs's numeric
 * padding would also pad the dummy height axis conv1d adds for its conv2d,
 * so the frames are padded here and convolved 'valid'.
 */
export function convolve(x: tf.Tensor3D, conv: PreparedConv, stride: number, act: Activation): tf.Tensor3D {
  const padded = tf.pad(x, [
    [0, 0],
    [1, 1],
    [0, 0],
  ]);
  return activate(act, tf.add(tf.conv1d(padded, conv.filter, stride, 'valid'), conv.bias)) as tf.Tensor3D;
}

export function prepareEncoderLayer(layer: EncoderLayerWeights, scale: number): PreparedEncoderLayer {
  const { q, k, v, o } = layer.attn;
  return {
    attnNorm: layer.attnNorm,
    qkv: denseForBackend(fuseLinears([{ layer: q, factor: scale }, { layer: k }, { layer: v }])),
    o: denseForBackend(o),
    mlpNorm: layer.mlpNorm,
    mlp: { up: denseForBackend(layer.fc1), down: denseForBackend(layer.fc2) },
  };
}

export interface EncoderLayerShape {
  batch: number;
  steps: number;
  heads: number;
  eps: number;
  activation: Activation;
}

/**
 * One pre-LayerNorm layer over x [batch·steps, dModel]. Self-attention is
 * bidirectional: core's cachedAttention with a zero mask, keys being the
 * window's own steps.
 */
export function encoderLayer(
  x: tf.Tensor2D,
  layer: PreparedEncoderLayer,
  shape: EncoderLayerShape,
  unmasked: tf.Tensor,
): tf.Tensor2D {
  const { batch, steps, heads, eps, activation } = shape;
  const h = layerNorm(x, layer.attnNorm, eps) as tf.Tensor2D;
  const qkv = tf.reshape(linear(h, layer.qkv), [batch, steps, 3 * heads, -1]);
  const [q, k, v] = tf.split(qkv, 3, 2) as tf.Tensor4D[];
  const keys = tf.transpose(k, [0, 2, 1, 3]);
  const values = tf.transpose(v, [0, 2, 1, 3]);
  const attended = tf.add(x, linear(cachedAttention(q, keys, values, unmasked), layer.o)) as tf.Tensor2D;
  const m = layerNorm(attended, layer.mlpNorm, eps) as tf.Tensor2D;
  return tf.add(attended, mlp(m, layer.mlp, activation, false));
}

export function disposeEncoderLayer(layer: PreparedEncoderLayer): void {
  for (const n of [layer.attnNorm, layer.mlpNorm]) disposeNorm(n);
  for (const l of [layer.qkv, layer.o, layer.mlp.up, layer.mlp.down]) disposeLinear(l);
}
