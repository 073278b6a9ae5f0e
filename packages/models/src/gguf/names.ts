// Where each Hugging Face tensor goes in a GGUF file, under the names llama.cpp's llama, qwen2
// and gpt2 graphs look up, and how its layout changes on the way.

/** Architectures this package writes and reads, by HF model_type → GGUF general.architecture. */
export const GGUF_ARCHITECTURES = { llama: 'llama', mistral: 'llama', qwen2: 'qwen2', gpt2: 'gpt2' } as const;
export type GgufArchitecture = (typeof GGUF_ARCHITECTURES)[keyof typeof GGUF_ARCHITECTURES];

/**
 * How a tensor's values are laid out in GGUF relative to the checkpoint:
 * - 'same': as stored (an nn.Linear's [out, in] rows are ggml's ne = [in, out] already);
 * - 'transpose': a GPT-2 Conv1D stored [in, out], written as [out, in] rows;
 * - 'rope': q or k rows reordered per head for llama's rotary pairs (see permuteRows).
 */
export type TensorLayout = 'same' | 'transpose' | 'rope';

export interface TensorPlan {
  readonly hf: string;
  readonly gguf: string;
  readonly layout: TensorLayout;
  /** Heads whose rows 'rope' reorders: attention heads for q, key-value heads for k. */
  readonly heads?: 'q' | 'kv';
}

const LLAMA_LAYER: readonly (readonly [string, string])[] = [
  ['input_layernorm', 'attn_norm'],
  ['self_attn.q_proj', 'attn_q'],
  ['self_attn.k_proj', 'attn_k'],
  ['self_attn.v_proj', 'attn_v'],
  ['self_attn.o_proj', 'attn_output'],
  ['post_attention_layernorm', 'ffn_norm'],
  ['mlp.gate_proj', 'ffn_gate'],
  ['mlp.up_proj', 'ffn_up'],
  ['mlp.down_proj', 'ffn_down'],
];

const GPT2_LAYER: readonly (readonly [string, string, TensorLayout])[] = [
  ['ln_1', 'attn_norm', 'same'],
  ['attn.c_attn', 'attn_qkv', 'transpose'],
  ['attn.c_proj', 'attn_output', 'transpose'],
  ['ln_2', 'ffn_norm', 'same'],
  ['mlp.c_fc', 'ffn_up', 'transpose'],
  ['mlp.c_proj', 'ffn_down', 'transpose'],
];

/**
 * Every tensor a model of `layers` layers may have (weights and biases), HF name and GGUF name.
 * GPT-2 names carry GPT2LMHeadModel's "transformer." prefix; `gpt2Root` '' is a bare GPT2Model.
 */
export function tensorPlans(
  architecture: GgufArchitecture,
  layers: number,
  gpt2Root = 'transformer.',
): TensorPlan[] {
  const plans: TensorPlan[] = [];
  const both = (hf: string, gguf: string, layout: TensorLayout, heads?: 'q' | 'kv') => {
    // Only matrices change layout; biases are vectors (a q/k bias is reordered like its rows).
    plans.push({ hf: `${hf}.weight`, gguf: `${gguf}.weight`, layout, heads });
    plans.push({
      hf: `${hf}.bias`,
      gguf: `${gguf}.bias`,
      layout: layout === 'transpose' ? 'same' : layout,
      heads,
    });
  };
  if (architecture === 'gpt2') {
    const r = gpt2Root;
    plans.push({ hf: `${r}wte.weight`, gguf: 'token_embd.weight', layout: 'same' });
    plans.push({ hf: `${r}wpe.weight`, gguf: 'position_embd.weight', layout: 'same' });
    for (let i = 0; i < layers; i++) {
      for (const [hf, gguf, layout] of GPT2_LAYER) both(`${r}h.${i}.${hf}`, `blk.${i}.${gguf}`, layout);
    }
    both(`${r}ln_f`, 'output_norm', 'same');
    plans.push({ hf: 'lm_head.weight', gguf: 'output.weight', layout: 'same' });
    return plans;
  }
  plans.push({ hf: 'model.embed_tokens.weight', gguf: 'token_embd.weight', layout: 'same' });
  for (let i = 0; i < layers; i++) {
    for (const [hf, gguf] of LLAMA_LAYER) {
      const rope = architecture === 'llama' && (gguf === 'attn_q' || gguf === 'attn_k');
      both(
        `model.layers.${i}.${hf}`,
        `blk.${i}.${gguf}`,
        rope ? 'rope' : 'same',
        gguf === 'attn_k' ? 'kv' : 'q',
      );
    }
  }
  plans.push({ hf: 'model.norm.weight', gguf: 'output_norm.weight', layout: 'same' });
  plans.push({ hf: 'lm_head.weight', gguf: 'output.weight', layout: 'same' });
  return plans;
}

/**
 * Rotary embedding pairs: transformers rotates element j of a head with element j + d/2
 * ("rotate half"), llama.cpp's llama graph rotates elements 2j and 2j + 1. So the rows of
 * q and k (and their biases) are reordered per head on export, HF row h·d + s·d/2 + j going
 * to row h·d + 2j + s, and back on import. qwen2's graph rotates halves as transformers does,
 * so its tensors keep their order.
 */
export function permuteRows(
  values: Float32Array,
  heads: number,
  cols: number,
  direction: 'to-gguf' | 'from-gguf',
): Float32Array {
  const rows = values.length / cols;
  const headDim = rows / heads;
  const half = headDim / 2;
  const out = new Float32Array(values.length);
  for (let h = 0; h < heads; h++) {
    for (let s = 0; s < 2; s++) {
      for (let j = 0; j < half; j++) {
        const hfRow = h * headDim + s * half + j;
        const ggufRow = h * headDim + 2 * j + s;
        const [from, to] = direction === 'to-gguf' ? [hfRow, ggufRow] : [ggufRow, hfRow];
        out.set(values.subarray(from * cols, (from + 1) * cols), to * cols);
      }
    }
  }
  return out;
}

/** [rows, cols] row-major → [cols, rows]. */
export function transpose(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = values[r * cols + c];
  }
  return out;
}
