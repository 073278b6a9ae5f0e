import {
  cachedAttention,
  type DenseLayer,
  disposeLinear,
  foldNormIntoLinear,
  type KernelSet,
  type Linear,
  linear,
} from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { fuseLinears, headsFirst, scaleLinear } from './attention.js';
import type { DecoderLayerWeights } from './weights.js';

/**
 * A decoder layer as the forward pass uses it, every product in the kernel
 * set's layout: self-attention q/k/v fused into one matmul, cross-attention
 * k/v fused into another (run once per audio), every q pre-scaled by
 * headDim^-0.5, each LayerNorm's affine part folded into the product after
 * it (as core's causal LM does), so the set standardizes and multiplies.
 */
export interface PreparedDecoderLayer {
  qkv: DenseLayer;
  o: DenseLayer;
  crossQ: DenseLayer;
  crossKv: DenseLayer;
  crossO: DenseLayer;
  mlp: { up: DenseLayer; down: DenseLayer };
}

/** One layer's cross-attention keys and values, [batch, heads, sourceSteps, headDim]. */
export interface CrossKeysValues {
  keys: tf.Tensor4D;
  values: tf.Tensor4D;
}

/** Takes ownership of `layer`. */
export function prepareDecoderLayer(
  layer: DecoderLayerWeights,
  scale: number,
  set: KernelSet,
): PreparedDecoderLayer {
  const { attn, cross } = layer;
  const dense = (l: Linear) => set.prepareLinear(l);
  return {
    qkv: dense(
      foldNormIntoLinear(
        layer.attnNorm,
        fuseLinears([{ layer: attn.q, factor: scale }, { layer: attn.k }, { layer: attn.v }]),
      ),
    ),
    o: dense(attn.o),
    crossQ: dense(foldNormIntoLinear(layer.crossNorm, scaleLinear(cross.q, scale))),
    crossKv: dense(fuseLinears([{ layer: cross.k }, { layer: cross.v }])),
    crossO: dense(cross.o),
    mlp: { up: dense(foldNormIntoLinear(layer.mlpNorm, layer.fc1)), down: dense(layer.fc2) },
  };
}

/** Keys and values of every layer's cross-attention for one encoder output [batch, sourceSteps, dModel]. */
export function crossKeysValues(
  encoderOutput: tf.Tensor3D,
  layers: ReadonlyArray<Pick<PreparedDecoderLayer, 'crossKv'>>,
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

/**
 * Each query row over every key of its audio (no mask): q [batch·steps,
 * heads·headDim] → [batch·steps, heads·headDim]. Decoder-only models have
 * no such step, so it is tfjs's own on every kernel set.
 */
export function crossAttention(
  q: tf.Tensor2D,
  cross: CrossKeysValues,
  batch: number,
  steps: number,
  unmasked: tf.Tensor,
): tf.Tensor2D {
  const [, heads, , headDim] = cross.keys.shape;
  return cachedAttention(tf.reshape(q, [batch, steps, heads, headDim]), cross.keys, cross.values, unmasked);
}

export function disposeDecoderLayer(layer: PreparedDecoderLayer): void {
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
