// GGUF matrices loaded as they are: where the kernel set keeps a format that the file stores
// (the wasm set's q8 keeps Q8_0 blocks, q4 keeps Q4_0), a product's, the embedding's and the
// head's blocks are read as bytes and handed to core (QuantBlocks), which moves them into its
// weight arena unchanged. They never become float32: no 4-byte-per-weight copy on the way, and
// no second rounding (the products compute with exactly the values GGUF's dequantization gives).
// Every other tensor (norms, biases, F16/F32 matrices, K-quants, a format the set does not keep)
// goes through the float path as before.
import type { LayerLinear, QuantBlocks, QuantFormat } from '@specstream/core';
import type * as tf from '@tensorflow/tfjs-core';
import type { HfConfig } from '../architectures/hf-config.js';
import { type Progress, type WeightSource, weightSource } from '../architectures/weights.js';
import type { TensorReader } from '../safetensors/file.js';
import { GGML_TYPE_NAMES, GgmlType } from './constants.js';
import { GgufError } from './errors.js';
import { type GgufArchitecture, type TensorPlan, tensorPlans } from './names.js';
import type { GgufFile } from './reader.js';

/** The GGUF type whose blocks each quantized weight format keeps as they are. */
export const GGUF_TYPE_OF_FORMAT: Readonly<Record<QuantFormat, number>> = {
  q8: GgmlType.Q8_0,
  q4: GgmlType.Q4_0,
};

/** Types that are not blocks: read as float32 without any rounding on the way. */
const FLOAT_TYPES: readonly number[] = [GgmlType.F32, GgmlType.F16];

/** How a GGUF file's quantized matrices reached the kernels (LoadedModel.gguf). */
export interface GgufWeightsReport {
  /** The format whose GGUF type went in as stored; undefined where the kernel set takes no blocks. */
  readonly blockFormat?: QuantFormat;
  /** GGUF names of the matrices whose blocks went into the kernels as the file stores them. */
  readonly asStored: readonly string[];
  /** Quantized matrices dequantized to float32 instead, GGUF name → ggml type name. */
  readonly dequantized: Readonly<Record<string, string>>;
  /** Why those were dequantized; undefined where none were. */
  readonly note?: string;
}

/**
 * `weightSource` over a GGUF file's reader, with `linearOrBlocks` / `conv1dOrBlocks` /
 * `embeddingOrBlocks` giving the file's blocks (QuantBlocks) for every matrix stored in
 * `format`'s GGUF type. Only the other tensors count towards the float memory reserved up
 * front; progress still counts every tensor's bytes once.
 */
export function ggufWeightSource(
  file: GgufFile,
  config: HfConfig,
  reader: TensorReader,
  format: QuantFormat | undefined,
  onProgress?: Progress,
): { weights: WeightSource; report: GgufWeightsReport } {
  const arch = config.model_type as GgufArchitecture;
  const layers = (arch === 'gpt2' ? config.n_layer : config.num_hidden_layers) as number;
  const plans = new Map<string, TensorPlan>();
  for (const plan of tensorPlans(arch, layers)) if (file.tensors.has(plan.gguf)) plans.set(plan.hf, plan);
  const blockType = format === undefined ? undefined : GGUF_TYPE_OF_FORMAT[format];
  const moved = new Set<string>();
  const dequantized: Record<string, string> = {};
  for (const [hf, plan] of plans) {
    const t = file.info(plan.gguf);
    if (t.dims.length !== 2 || FLOAT_TYPES.includes(t.type)) continue;
    // Products, the embedding and the head; learned positions are looked up as floats.
    if (t.type === blockType && plan.gguf !== 'position_embd.weight') moved.add(hf);
    else dequantized[plan.gguf] = GGML_TYPE_NAMES[t.type] ?? String(t.type);
  }
  const total = reader.names.reduce((n, name) => n + reader.info(name).byteLength, 0);
  let floatLoaded = 0;
  let blocksLoaded = 0;
  const inner = weightSource(
    { ...reader, names: reader.names.filter((name) => !moved.has(name)) },
    file.path,
    arch,
    (loaded, _floatTotal, name) => {
      floatLoaded = loaded;
      onProgress?.(floatLoaded + blocksLoaded, total, name);
    },
  );

  async function readBlocks(name: string): Promise<QuantBlocks> {
    const plan = plans.get(name)!;
    const t = file.info(plan.gguf);
    const [inDim, outDim] = t.dims;
    let data = await file.readRows(plan.gguf, 0, outDim);
    if (plan.layout === 'rope') {
      // llama's q/k rows (outputs) were reordered per head on export: whole rows move back.
      const heads = (plan.heads === 'kv' ? config.num_key_value_heads : config.num_attention_heads) as number;
      data = permuteByteRows(data, heads, outDim, file.path);
    }
    blocksLoaded += t.byteLength;
    onProgress?.(floatLoaded + blocksLoaded, total, name);
    return { format: format!, inDim, outDim, data };
  }
  async function blocksLinear(prefix: string): Promise<LayerLinear> {
    const weight = await readBlocks(`${prefix}.weight`);
    const bias = inner.has(`${prefix}.bias`)
      ? ((await inner.tensor(`${prefix}.bias`)) as tf.Tensor1D)
      : undefined;
    return bias ? { weight, bias } : { weight };
  }

  const weights: WeightSource = {
    ...inner,
    linearOrBlocks: (prefix) =>
      moved.has(`${prefix}.weight`) ? blocksLinear(prefix) : inner.linearOrBlocks(prefix),
    conv1dOrBlocks: (prefix) =>
      moved.has(`${prefix}.weight`) ? blocksLinear(prefix) : inner.conv1dOrBlocks(prefix),
    embeddingOrBlocks: (name) => (moved.has(name) ? readBlocks(name) : inner.embeddingOrBlocks(name)),
  };
  // Why the rest were dequantized: the format, or (gpt2's positions) a table that is looked up.
  const reasons: string[] = [];
  const products = Object.entries(dequantized).filter(([n]) => n !== 'position_embd.weight');
  if (products.length > 0) {
    const types = [...new Set(products.map(([, t]) => t))].join(', ');
    reasons.push(
      format === undefined
        ? `${products.length} dequantized to f32 (${types}): the kernel set takes no quantized blocks as stored (the wasm set does, with weights q8 for Q8_0 and q4 for Q4_0)`
        : `${products.length} dequantized to f32 (${types}) and quantized again to ${format} where their input width is a multiple of 32: only ${GGML_TYPE_NAMES[blockType!]} goes into ${format} kernels as stored`,
    );
  }
  if (dequantized['position_embd.weight'] !== undefined) {
    reasons.push('position_embd dequantized to f32: learned positions are looked up, not multiplied');
  }
  const note = reasons.length > 0 ? reasons.join('; ') : undefined;
  const asStored = [...moved].map((hf) => plans.get(hf)!.gguf);
  return { weights, report: { blockFormat: format, asStored, dequantized, note } };
}

/**
 * Rows of bytes from GGUF's rotary order back to transformers' (permuteRows for floats): per
 * head, GGUF row h·d + 2j + s is HF row h·d + s·d/2 + j.
 */
function permuteByteRows(data: Uint8Array, heads: number, rows: number, path: string): Uint8Array {
  const headDim = rows / heads;
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) {
    throw new GgufError(path, `${rows} rotary rows do not split into ${heads} heads of an even size`);
  }
  const rowBytes = data.length / rows;
  const half = headDim / 2;
  const out = new Uint8Array(data.length);
  for (let h = 0; h < heads; h++) {
    for (let s = 0; s < 2; s++) {
      for (let j = 0; j < half; j++) {
        const from = h * headDim + 2 * j + s;
        const to = h * headDim + s * half + j;
        out.set(data.subarray(from * rowBytes, (from + 1) * rowBytes), to * rowBytes);
      }
    }
  }
  return out;
}
