import {
  type CausalLm,
  type CausalLmConfig,
  type CausalLmOptions,
  createCausalLm,
  disposeArenaMatrix,
  disposePreparedCausalLmLayer,
  InvalidArgumentError,
  isArenaMatrix,
  type KvCacheKind,
  kernelSet,
  type PreparedCausalLmLayer,
  prepareCausalLmLayer,
  tiedEmbeddingInArena,
} from '@specstream/core';
import { field, type HfConfig, ropeSettings } from './hf-config.js';
import type { WeightSource } from './weights.js';

const LLAMA_ACTIVATIONS = { silu: 'silu', gelu_pytorch_tanh: 'gelu_tanh', gelu: 'gelu' } as const;

/** Llama, Mistral and Qwen2 share one layout: RMSNorm, rotary, GQA, gated SiLU MLP. */
export function llamaConfig(config: HfConfig, kvCache?: KvCacheKind): CausalLmConfig {
  const hiddenSize = field<number>(config, 'hidden_size');
  const heads = field<number>(config, 'num_attention_heads');
  const act = field<string>(config, 'hidden_act', 'silu');
  const activation = LLAMA_ACTIVATIONS[act as keyof typeof LLAMA_ACTIVATIONS];
  if (!activation)
    throw new InvalidArgumentError(
      `hidden_act "${act}" is not supported; supported: ${Object.keys(LLAMA_ACTIVATIONS).join(', ')}`,
    );
  const { theta, scaling } = ropeSettings(config);
  return {
    vocabSize: field(config, 'vocab_size'),
    hiddenSize,
    layers: field(config, 'num_hidden_layers'),
    heads,
    kvHeads: field(config, 'num_key_value_heads', heads),
    headDim: field(config, 'head_dim', hiddenSize / heads),
    norm: 'rms',
    normEps: field(config, 'rms_norm_eps', 1e-6),
    activation,
    gatedMlp: true,
    positions: { kind: 'rotary', rotary: { theta, scaling } },
    kvCache,
  };
}

export async function loadLlama(
  config: HfConfig,
  weights: WeightSource,
  kvCache?: KvCacheKind,
  set: CausalLmOptions = {},
): Promise<CausalLm> {
  // One kernel set for the whole model: its layers are prepared in that set's layouts and weight format.
  const chosen = kernelSet(set.kernels, set.weights);
  const options = { kernels: chosen.name, weights: chosen.weights, reuseStates: set.reuseStates };
  const shape = llamaConfig(config, kvCache);
  // Tied checkpoints usually omit lm_head; some store a copy anyway, which is then the same matrix.
  const tied = field<boolean>(config, 'tie_word_embeddings', false) || !weights.has('lm_head.weight');
  // The embedding is usually the largest tensor: reading it while memory is still
  // small keeps its read buffer from adding to the final peak (load bench). Tied on
  // wasm, it goes straight into core's weight arena, never through tfjs's heap.
  const embedName = 'model.embed_tokens.weight';
  const embedTokens =
    tied && tiedEmbeddingInArena(shape, options)
      ? await weights.arenaMatrix(embedName)
      : await weights.embeddingOrBlocks(embedName);
  const layers: PreparedCausalLmLayer[] = [];
  try {
    for (let i = 0; i < shape.layers; i++) {
      const p = `model.layers.${i}`;
      // Prepared (fused and, on wasm, packed into core's arena) as soon as it is read.
      layers.push(
        prepareCausalLmLayer(
          shape,
          {
            attnNorm: await weights.norm(`${p}.input_layernorm`),
            q: await weights.linearOrBlocks(`${p}.self_attn.q_proj`),
            k: await weights.linearOrBlocks(`${p}.self_attn.k_proj`),
            v: await weights.linearOrBlocks(`${p}.self_attn.v_proj`),
            o: await weights.linearOrBlocks(`${p}.self_attn.o_proj`),
            mlpNorm: await weights.norm(`${p}.post_attention_layernorm`),
            gate: await weights.linearOrBlocks(`${p}.mlp.gate_proj`),
            up: await weights.linearOrBlocks(`${p}.mlp.up_proj`),
            down: await weights.linearOrBlocks(`${p}.mlp.down_proj`),
          },
          options,
        ),
      );
    }
    return createCausalLm(
      shape,
      {
        embedTokens,
        layers,
        finalNorm: await weights.norm('model.norm'),
        lmHead: tied ? undefined : (await weights.linearOrBlocks('lm_head')).weight,
      },
      options,
    );
  } catch (error) {
    for (const layer of layers) disposePreparedCausalLmLayer(layer);
    if (isArenaMatrix(embedTokens)) disposeArenaMatrix(embedTokens);
    throw error;
  }
}
