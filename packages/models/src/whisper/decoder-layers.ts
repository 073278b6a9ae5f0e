import {
  type Activation,
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
import { fuseLinears, headsFirst, scaleLinear } from './attention.js';
import type { DecoderLayerWeights } from './weights.js';

/**
 * A decoder layer as the forward pass uses it: self-attention q/k/v fused
 * into one matmul, cross-attention k/v fused into another (run once per
 * audio), every q pre-scaled by headDim^-0.5.
 */
export interface PreparedDecoderLayer {
  attnNorm: NormWeights;
  qkv: DenseLayer;
  o: DenseLayer;
  crossNorm: NormWeights;
  crossQ: DenseLayer;
  crossKv: DenseLayer;
  crossO: DenseLayer;
  mlpNorm: NormWeights;
  mlp: { up: DenseLayer; down: DenseLayer };
}

/** One layer's cross-attention keys and values, [batch, heads, sourceSteps, headDim]. */
export interface CrossKeysValues {
  keys: tf.Tensor4D;
  values: tf.Tensor4D;
}

export function prepareDecoderLayer(layer: DecoderLayerWeights, scale: number): PreparedDecoderLayer {
  const { attn, cross } = layer;
  return {
    attnNorm: layer.attnNorm,
    qkv: denseForBackend(
      fuseLinears([{ layer: attn.q, factor: scale }, { layer: attn.k }, { layer: attn.v }]),
    ),
    o: denseForBackend(attn.o),
    crossNorm: layer.crossNorm,
    crossQ: denseForBackend(scaleLinear(cross.q, scale)),
    crossKv: denseForBackend(fuseLinears([{ layer: cross.k }, { layer: cross.v }])),
    crossO: denseForBackend(cross.o),
    mlpNorm: layer.mlpNorm,
    mlp: { up: denseForBackend(layer.fc1), down: denseForBackend(layer.fc2) },
  };
}

/** Keys and values of every layer's cross-attention for one encoder output [batch, sourceSteps, dModel]. */
export function crossKeysValues(
  encoderOutput: tf.Tensor3D,
  layers: readonly PreparedDecoderLayer[],
  heads: number,
): CrossKeysValues[] {
  return tf.tidy(() => {
    const [batch, , dModel] = encoderOutput.shape;
    const flat = tf.reshape(encoderOutput, [-1, dModel]) as tf.Tensor2D;
    return layers.map((layer) => {
      const [k, v] = tf.split(linear(flat, layer.crossKv), 2, 1);
      return { keys: headsFirst(k, batch, heads), values: headsFirst(v, batch, heads) };
    });
  });
}

export interface WindowShape {
  batch: number;
  steps: number;
  heads: number;
  eps: number;
}

/**
 * Self-attention projections of x [batch·steps, dModel]: q [batch, steps,
 * heads, headDim] for cachedAttention, keys and values [batch, heads, steps,
 * headDim] for the cache.
 */
export function selfProjections(
  x: tf.Tensor2D,
  layer: PreparedDecoderLayer,
  { batch, steps, heads, eps }: WindowShape,
): { q: tf.Tensor4D; keys: tf.Tensor4D; values: tf.Tensor4D } {
  const h = layerNorm(x, layer.attnNorm, eps) as tf.Tensor2D;
  const qkv = tf.reshape(linear(h, layer.qkv), [batch, steps, 3 * heads, -1]);
  const [q, k, v] = tf.split(qkv, 3, 2) as tf.Tensor4D[];
  return { q, keys: tf.transpose(k, [0, 2, 1, 3]), values: tf.transpose(v, [0, 2, 1, 3]) };
}

/** The cross-attention and MLP residual blocks that follow self-attention. */
export function crossAndMlp(
  x: tf.Tensor2D,
  layer: PreparedDecoderLayer,
  cross: CrossKeysValues,
  shape: WindowShape,
  activation: Activation,
  unmasked: tf.Tensor,
): tf.Tensor2D {
  const { batch, steps, heads, eps } = shape;
  const h = layerNorm(x, layer.crossNorm, eps) as tf.Tensor2D;
  const q = tf.reshape(linear(h, layer.crossQ), [batch, steps, heads, -1]) as tf.Tensor4D;
  const attended = tf.add(x, linear(cachedAttention(q, cross.keys, cross.values, unmasked), layer.crossO));
  const m = layerNorm(attended, layer.mlpNorm, eps) as tf.Tensor2D;
  return tf.add(attended, mlp(m, layer.mlp, activation, false));
}

export function disposeDecoderLayer(layer: PreparedDecoderLayer): void {
  for (const n of [layer.attnNorm, layer.crossNorm, layer.mlpNorm]) disposeNorm(n);
  const linears = [
    layer.qkv,
    layer.o,
    layer.crossQ,
    layer.crossKv,
    layer.crossO,
    layer.mlp.up,
    layer.mlp.down,
  ];
  for (const l of linears) disposeLinear(l);
}
