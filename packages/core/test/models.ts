import type { CausalLmConfig } from '../src/causal-lm.js';
import { TINY_LLAMA_SHAPE } from '../src/random-model.js';

/** Small decoders covering each building block: GQA+rotary+RMS+gated (Llama), MQA+bias (Qwen-ish), learned+LayerNorm+gelu (GPT-2). */
export const TINY_CONFIGS: Record<string, CausalLmConfig> = {
  llama: TINY_LLAMA_SHAPE,
  mqa: {
    vocabSize: 61,
    hiddenSize: 24,
    layers: 2,
    heads: 3,
    kvHeads: 1,
    headDim: 8,
    norm: 'rms',
    normEps: 1e-5,
    activation: 'silu',
    gatedMlp: true,
    positions: { kind: 'rotary', rotary: { theta: 1e6 } },
  },
  gpt2: {
    vocabSize: 83,
    hiddenSize: 32,
    layers: 2,
    heads: 4,
    kvHeads: 4,
    headDim: 8,
    norm: 'layer',
    normEps: 1e-5,
    activation: 'gelu_tanh',
    gatedMlp: false,
    positions: { kind: 'learned', maxPositions: 128 },
  },
};
