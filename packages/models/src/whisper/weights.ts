import type { Linear, NormWeights } from '@specstream/core';
import type * as tf from '@tensorflow/tfjs-core';
import type { WeightSource } from '../architectures/weights.js';
import { SafetensorsError } from '../safetensors/errors.js';
import type { WhisperConfig } from './config.js';

/** One attention block, matrices [in, out]; transformers gives k_proj no bias. */
export interface AttentionWeights {
  q: Linear;
  k: Linear;
  v: Linear;
  o: Linear;
}

export interface EncoderLayerWeights {
  attnNorm: NormWeights;
  attn: AttentionWeights;
  mlpNorm: NormWeights;
  fc1: Linear;
  fc2: Linear;
}

export interface DecoderLayerWeights extends EncoderLayerWeights {
  crossNorm: NormWeights;
  cross: AttentionWeights;
}

/** A torch Conv1d as stored: weight [out, in, kernel]. */
export interface ConvWeights {
  weight: tf.Tensor3D;
  bias: tf.Tensor1D;
}

export interface EncoderWeights {
  conv1: ConvWeights;
  conv2: ConvWeights;
  /** [maxSourcePositions, dModel]: sinusoids in OpenAI's checkpoints, but stored, so read not recomputed. */
  embedPositions: tf.Tensor2D;
  layers: EncoderLayerWeights[];
  finalNorm: NormWeights;
}

export interface DecoderWeights {
  /** [vocab, dModel]; also the output head (tied). */
  embedTokens: tf.Tensor2D;
  embedPositions: tf.Tensor2D;
  layers: DecoderLayerWeights[];
  finalNorm: NormWeights;
}

/**
 * Reads every tensor of a WhisperForConditionalGeneration checkpoint and
 * checks its shape against the config, so a mismatched checkpoint fails here
 * with the tensor's name instead of inside a matmul. On error the caller
 * frees what was read with `source.disposeAll()`.
 */
export async function readWhisperWeights(
  source: WeightSource,
  config: WhisperConfig,
  location: string,
): Promise<{ encoder: EncoderWeights; decoder: DecoderWeights }> {
  const d = config.dModel;
  const expect = <T extends tf.Tensor>(name: string, t: T, shape: number[]): T => {
    if (t.shape.join() !== shape.join()) {
      throw new SafetensorsError(location, `"${name}" has shape [${t.shape}], the config implies [${shape}]`);
    }
    return t;
  };
  const tensor = async <T extends tf.Tensor>(name: string, shape: number[]) =>
    expect(name, (await source.tensor(name)) as T, shape);
  const linear = async (prefix: string, inDim: number, outDim: number) => {
    const layer = await source.linear(prefix);
    expect(`${prefix}.weight`, layer.weight, [inDim, outDim]);
    if (layer.bias) expect(`${prefix}.bias`, layer.bias, [outDim]);
    return layer;
  };
  const norm = async (prefix: string) => {
    const n = await source.norm(prefix);
    expect(`${prefix}.weight`, n.weight, [d]);
    return n;
  };
  const attention = async (prefix: string): Promise<AttentionWeights> => ({
    q: await linear(`${prefix}.q_proj`, d, d),
    k: await linear(`${prefix}.k_proj`, d, d),
    v: await linear(`${prefix}.v_proj`, d, d),
    o: await linear(`${prefix}.out_proj`, d, d),
  });
  const layer = async (prefix: string, ffn: number): Promise<EncoderLayerWeights> => ({
    attnNorm: await norm(`${prefix}.self_attn_layer_norm`),
    attn: await attention(`${prefix}.self_attn`),
    mlpNorm: await norm(`${prefix}.final_layer_norm`),
    fc1: await linear(`${prefix}.fc1`, d, ffn),
    fc2: await linear(`${prefix}.fc2`, ffn, d),
  });
  const conv = async (prefix: string, inDim: number): Promise<ConvWeights> => ({
    weight: await tensor(`${prefix}.weight`, [d, inDim, 3]),
    bias: await tensor(`${prefix}.bias`, [d]),
  });

  // WhisperModel alone has no "model." prefix.
  const root = source.has('model.encoder.conv1.weight') ? 'model.' : '';
  const encoderLayers: EncoderLayerWeights[] = [];
  for (let i = 0; i < config.encoderLayers; i++) {
    encoderLayers.push(await layer(`${root}encoder.layers.${i}`, config.encoderFfnDim));
  }
  const encoder: EncoderWeights = {
    conv1: await conv(`${root}encoder.conv1`, config.numMelBins),
    conv2: await conv(`${root}encoder.conv2`, d),
    embedPositions: await tensor(`${root}encoder.embed_positions.weight`, [config.maxSourcePositions, d]),
    layers: encoderLayers,
    finalNorm: await norm(`${root}encoder.layer_norm`),
  };
  const decoderLayers: DecoderLayerWeights[] = [];
  for (let i = 0; i < config.decoderLayers; i++) {
    const prefix = `${root}decoder.layers.${i}`;
    const base = await layer(prefix, config.decoderFfnDim);
    const crossNorm = await norm(`${prefix}.encoder_attn_layer_norm`);
    decoderLayers.push({ ...base, crossNorm, cross: await attention(`${prefix}.encoder_attn`) });
  }
  const decoder: DecoderWeights = {
    embedTokens: await tensor(`${root}decoder.embed_tokens.weight`, [config.vocabSize, d]),
    embedPositions: await tensor(`${root}decoder.embed_positions.weight`, [config.maxTargetPositions, d]),
    layers: decoderLayers,
    finalNorm: await norm(`${root}decoder.layer_norm`),
  };
  return { encoder, decoder };
}
