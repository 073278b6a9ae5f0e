import {
  type CausalLm,
  type CausalLmConfig,
  type CausalLmOptions,
  createCausalLm,
  disposeArenaMatrix,
  disposePreparedCausalLmLayer,
  InvalidArgumentError,
  isArenaMatrix,
  isQuantBlocks,
  type KvCacheKind,
  kernelSet,
  type LayerLinear,
  type PreparedCausalLmLayer,
  prepareCausalLmLayer,
  type QuantBlocks,
  tiedEmbeddingInArena,
} from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { field, type HfConfig } from './hf-config.js';
import type { WeightSource } from './weights.js';

const ACTIVATIONS = {
  gelu_new: 'gelu_tanh',
  gelu_pytorch_tanh: 'gelu_tanh',
  gelu: 'gelu',
  relu: 'relu',
} as const;

export function gpt2Config(config: HfConfig, kvCache?: KvCacheKind): CausalLmConfig {
  const hiddenSize = field<number>(config, 'n_embd');
  const heads = field<number>(config, 'n_head');
  const act = field<string>(config, 'activation_function', 'gelu_new');
  if (!(act in ACTIVATIONS)) throw new InvalidArgumentError(`GPT-2 activation "${act}" is not supported`);
  if (config.scale_attn_by_inverse_layer_idx) {
    throw new InvalidArgumentError('GPT-2 scale_attn_by_inverse_layer_idx is not supported');
  }
  return {
    vocabSize: field(config, 'vocab_size'),
    hiddenSize,
    layers: field(config, 'n_layer'),
    heads,
    kvHeads: heads,
    headDim: hiddenSize / heads,
    norm: 'layer',
    normEps: field(config, 'layer_norm_epsilon', 1e-5),
    activation: ACTIVATIONS[act as keyof typeof ACTIVATIONS],
    gatedMlp: false,
    positions: { kind: 'learned', maxPositions: field(config, 'n_positions') },
    attentionScale: config.scale_attn_weights === false ? 1 : undefined,
    kvCache,
  };
}

/**
 * GPT-2 fuses q/k/v in one Conv1D (c_attn, [in, 3·hidden]); core fuses them again after the
 * split. Blocks (one row per output) split by rows.
 */
function splitQkv(fused: LayerLinear): [LayerLinear, LayerLinear, LayerLinear] {
  const fusedWeight = fused.weight;
  const weights = isQuantBlocks(fusedWeight)
    ? [0, 1, 2].map((i): QuantBlocks => {
        const outDim = fusedWeight.outDim / 3;
        const rowBytes = fusedWeight.data.length / fusedWeight.outDim;
        const data = fusedWeight.data.subarray(i * outDim * rowBytes, (i + 1) * outDim * rowBytes);
        return { ...fusedWeight, outDim, data };
      })
    : (tf.split(fusedWeight, 3, 1) as tf.Tensor2D[]);
  const biases = fused.bias ? (tf.split(fused.bias, 3, 0) as tf.Tensor1D[]) : [];
  if (!isQuantBlocks(fusedWeight)) fusedWeight.dispose();
  fused.bias?.dispose();
  return [0, 1, 2].map((i) =>
    biases[i] ? { weight: weights[i], bias: biases[i] } : { weight: weights[i] },
  ) as [LayerLinear, LayerLinear, LayerLinear];
}

export async function loadGpt2(
  config: HfConfig,
  weights: WeightSource,
  kvCache?: KvCacheKind,
  set: CausalLmOptions = {},
): Promise<CausalLm> {
  // One kernel set for the whole model: its layers are prepared in that set's layouts and weight format.
  const chosen = kernelSet(set.kernels, set.weights);
  const options = { kernels: chosen.name, weights: chosen.weights, reuseStates: set.reuseStates };
  const shape = gpt2Config(config, kvCache);
  // GPT2LMHeadModel prefixes names with "transformer."; a bare GPT2Model does not.
  const root = weights.has('transformer.wte.weight') ? 'transformer.' : '';
  const layers: PreparedCausalLmLayer[] = [];
  // wte first, while memory is small; on wasm straight into core's weight arena (the head is tied).
  const embedName = `${root}wte.weight`;
  const embedTokens = tiedEmbeddingInArena(shape, options)
    ? await weights.arenaMatrix(embedName)
    : await weights.embeddingOrBlocks(embedName);
  try {
    const embedPositions = (await weights.tensor(`${root}wpe.weight`)) as tf.Tensor2D;
    for (let i = 0; i < shape.layers; i++) {
      const p = `${root}h.${i}`;
      const attn = await weights.conv1dOrBlocks(`${p}.attn.c_attn`);
      const read = {
        attnNorm: await weights.norm(`${p}.ln_1`),
        o: await weights.conv1dOrBlocks(`${p}.attn.c_proj`),
        mlpNorm: await weights.norm(`${p}.ln_2`),
        up: await weights.conv1dOrBlocks(`${p}.mlp.c_fc`),
        down: await weights.conv1dOrBlocks(`${p}.mlp.c_proj`),
      };
      // Split last: its parts are not the weight source's to free if a read above fails.
      const [q, k, v] = splitQkv(attn);
      // Prepared (fused and, on wasm, packed into core's arena) as soon as it is read.
      layers.push(prepareCausalLmLayer(shape, { ...read, q, k, v }, options));
    }
    return createCausalLm(
      shape,
      {
        embedTokens,
        embedPositions,
        layers,
        finalNorm: await weights.norm(`${root}ln_f`),
      },
      options,
    );
  } catch (error) {
    for (const layer of layers) disposePreparedCausalLmLayer(layer);
    if (isArenaMatrix(embedTokens)) disposeArenaMatrix(embedTokens);
    throw error;
  }
}
