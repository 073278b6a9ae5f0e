// Where each Hugging Face tensor of a Llama-family checkpoint goes in a GGUF file, under the
// names llama.cpp's llama and qwen2 graphs look up, and the one layout change between them.

/** Architectures this package writes and reads, by HF model_type → GGUF general.architecture. */
export const GGUF_ARCHITECTURES = { llama: 'llama', mistral: 'llama', qwen2: 'qwen2' } as const;
export type GgufArchitecture = (typeof GGUF_ARCHITECTURES)[keyof typeof GGUF_ARCHITECTURES];

const LAYER_PARTS: readonly (readonly [string, string])[] = [
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

/** HF name → GGUF name for every tensor a model of `layers` layers may have (weights and biases). */
export function tensorNameMap(layers: number): Map<string, string> {
  const map = new Map<string, string>([
    ['model.embed_tokens.weight', 'token_embd.weight'],
    ['model.norm.weight', 'output_norm.weight'],
    ['lm_head.weight', 'output.weight'],
  ]);
  for (let i = 0; i < layers; i++) {
    for (const [hf, gguf] of LAYER_PARTS) {
      for (const kind of ['weight', 'bias'])
        map.set(`model.layers.${i}.${hf}.${kind}`, `blk.${i}.${gguf}.${kind}`);
    }
  }
  return map;
}

/**
 * Rotary embedding pairs: transformers rotates element j of a head with element j + d/2
 * ("rotate half"), llama.cpp's llama graph rotates elements 2j and 2j + 1. So the rows of
 * q and k (and their biases) are reordered per head on export, HF row h·d + s·d/2 + j going
 * to row h·d + 2j + s, and back on import. qwen2's graph rotates halves as transformers does,
 * so its tensors keep their order.
 */
export function needsRopePermutation(architecture: string, hfName: string): boolean {
  return architecture === 'llama' && /\.self_attn\.[qk]_proj\.(weight|bias)$/.test(hfName);
}

/** Reorders the rows of a [heads·headDim, cols] row-major matrix (cols = 1 for a bias). */
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
