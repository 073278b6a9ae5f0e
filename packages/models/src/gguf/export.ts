import { basename, join, resolve } from 'node:path';
import { InvalidArgumentError } from '@specstream/core';
import { gpt2Config } from '../architectures/gpt2.js';
import { field, type HfConfig, ropeSettings } from '../architectures/hf-config.js';
import { llamaConfig } from '../architectures/llama.js';
import { readHfConfig } from '../load-model.js';
import { readJsonIfExists } from '../read-json.js';
import { openCheckpoint } from '../safetensors/checkpoint.js';
import { float32ToHalfBits } from '../safetensors/half.js';
import { GGUF_DEFAULT_ALIGNMENT, GGUF_FILE_TYPE, GgmlType } from './constants.js';
import { GgufError } from './errors.js';
import { entry, type GgufMetadata } from './metadata.js';
import { GGUF_ARCHITECTURES, permuteRows, tensorPlans, transpose } from './names.js';
import { QK, quantizeQ4_0, quantizeQ8_0 } from './quant.js';
import { tokenizerMetadata } from './tokenizer.js';
import { type GgufTensorToWrite, writeGguf } from './writer.js';

export const GGUF_EXPORT_TYPES = ['f32', 'f16', 'q8_0', 'q4_0'] as const;
export type GgufExportType = (typeof GGUF_EXPORT_TYPES)[number];

export interface ExportGgufOptions {
  /** Type of the 2-D weights; norms and biases stay F32. Default f16. */
  type?: GgufExportType;
  /** A tokenizer.json to embed instead of the folder's own (for folders that ship none). */
  tokenizer?: string;
  /** Called after each tensor is written. */
  onProgress?: (done: number, total: number, name: string) => void;
}

export interface ExportGgufResult {
  architecture: string;
  tensors: number;
  /** GGUF tensor names written in a type other than the one asked for (rows not a multiple of 32). */
  fallbacks: string[];
}

const WEIGHT_TYPES: Record<GgufExportType, number> = {
  f32: GgmlType.F32,
  f16: GgmlType.F16,
  q8_0: GgmlType.Q8_0,
  q4_0: GgmlType.Q4_0,
};

/**
 * Writes a Hugging Face Llama / Mistral / Qwen2 / GPT-2 folder as a GGUF v3 file that llama.cpp loads:
 * llama.cpp's metadata keys and tensor names, q/k rows permuted for its llama graph, GPT-2's
 * Conv1D matrices transposed, the
 * tokenizer as tokenizer.ggml.*. Tensors are read, converted and written one at a time.
 * Quantized types need rows (ne[0]) that are a multiple of 32; other matrices fall back to
 * F16, as llama.cpp's own converter does, and are listed in the result.
 */
export async function exportGguf(
  hfFolder: string,
  outPath: string,
  options: ExportGgufOptions = {},
): Promise<ExportGgufResult> {
  const type = options.type ?? 'f16';
  if (!GGUF_EXPORT_TYPES.includes(type)) {
    throw new InvalidArgumentError(
      `GGUF type "${type}" is not supported; supported: ${GGUF_EXPORT_TYPES.join(', ')}`,
    );
  }
  const config = await readHfConfig(hfFolder);
  const modelType = config.model_type ?? '(missing)';
  const architecture = GGUF_ARCHITECTURES[modelType as keyof typeof GGUF_ARCHITECTURES];
  if (!architecture) {
    throw new InvalidArgumentError(
      `model_type "${modelType}" cannot be exported to GGUF; supported: ${Object.keys(GGUF_ARCHITECTURES).join(', ')}`,
    );
  }
  const shape = architecture === 'gpt2' ? gpt2Config(config) : llamaConfig(config);
  const metadata =
    architecture === 'gpt2'
      ? gpt2Metadata(config, hfFolder, type)
      : modelMetadata(config, architecture, hfFolder, type);
  for (const [key, value] of await readTokenizer(hfFolder, config, options.tokenizer))
    metadata.set(key, value);

  const checkpoint = await openCheckpoint(hfFolder);
  try {
    const root = checkpoint.has('transformer.wte.weight') ? 'transformer.' : '';
    const plans = tensorPlans(architecture, shape.layers, root);
    const tiedByDefault = architecture === 'gpt2';
    const tied =
      field<boolean>(config, 'tie_word_embeddings', tiedByDefault) || !checkpoint.has('lm_head.weight');
    const missing = plans.filter(
      (p) => p.hf.endsWith('.weight') && p.hf !== 'lm_head.weight' && !checkpoint.has(p.hf),
    );
    if (missing.length > 0) {
      throw new GgufError(
        hfFolder,
        `the checkpoint lacks ${missing.length} tensors a ${modelType} model needs, e.g. '${missing[0].hf}'`,
      );
    }
    if (architecture === 'gpt2' && !tied) {
      throw new InvalidArgumentError('a GPT-2 with an lm_head of its own (untied) is not supported');
    }
    const fallbacks: string[] = [];
    const tensors: GgufTensorToWrite[] = [];
    for (const plan of plans) {
      if (!checkpoint.has(plan.hf) || (tied && plan.hf === 'lm_head.weight')) continue;
      const hfShape = checkpoint.info(plan.hf).shape;
      // ggml lists dims innermost first: a row-major [out, in] matrix is ne = [in, out]; a
      // Conv1D [in, out] is written transposed, as [out, in] rows, so its ne is its own shape.
      const dims = plan.layout === 'transpose' ? [...hfShape] : [...hfShape].reverse();
      let tensorType = dims.length === 1 ? GgmlType.F32 : WEIGHT_TYPES[type];
      if ((tensorType === GgmlType.Q8_0 || tensorType === GgmlType.Q4_0) && dims[0] % QK !== 0) {
        tensorType = GgmlType.F16;
        fallbacks.push(plan.gguf);
      }
      const heads = plan.heads === 'kv' ? shape.kvHeads : shape.heads;
      tensors.push({
        name: plan.gguf,
        dims,
        type: tensorType,
        bytes: async () => {
          let values = (await checkpoint.readValues(plan.hf)).values as Float32Array;
          if (plan.layout === 'rope') {
            values = permuteRows(values, heads, hfShape.length === 2 ? hfShape[1] : 1, 'to-gguf');
          } else if (plan.layout === 'transpose') {
            values = transpose(values, hfShape[0], hfShape[1]);
          }
          return encode(values, tensorType);
        },
      });
    }
    let done = 0;
    await writeGguf(
      outPath,
      metadata,
      tensors.map((t) => ({
        ...t,
        bytes: async () => {
          const bytes = await t.bytes();
          options.onProgress?.(++done, tensors.length, t.name);
          return bytes;
        },
      })),
    );
    return { architecture, tensors: tensors.length, fallbacks };
  } finally {
    await checkpoint.close();
  }
}

function encode(values: Float32Array, type: number): Uint8Array {
  switch (type) {
    case GgmlType.F32:
      return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    case GgmlType.F16: {
      const half = float32ToHalfBits(values);
      return new Uint8Array(half.buffer);
    }
    case GgmlType.Q8_0:
      return quantizeQ8_0(values);
    case GgmlType.Q4_0:
      return quantizeQ4_0(values);
    default:
      throw new Error(`cannot encode ggml type ${type}`);
  }
}

function modelMetadata(config: HfConfig, arch: string, hfFolder: string, type: GgufExportType): GgufMetadata {
  const shape = llamaConfig(config);
  const { theta, scaling } = ropeSettings(config);
  const metadata: GgufMetadata = new Map([
    ...commonMetadata(hfFolder, arch, type),
    [`${arch}.vocab_size`, entry.uint32(shape.vocabSize)],
    [`${arch}.context_length`, entry.uint32(field<number>(config, 'max_position_embeddings'))],
    [`${arch}.embedding_length`, entry.uint32(shape.hiddenSize)],
    [`${arch}.block_count`, entry.uint32(shape.layers)],
    [`${arch}.feed_forward_length`, entry.uint32(field<number>(config, 'intermediate_size'))],
    [`${arch}.attention.head_count`, entry.uint32(shape.heads)],
    [`${arch}.attention.head_count_kv`, entry.uint32(shape.kvHeads)],
    [`${arch}.attention.key_length`, entry.uint32(shape.headDim)],
    [`${arch}.attention.value_length`, entry.uint32(shape.headDim)],
    [`${arch}.rope.dimension_count`, entry.uint32(shape.headDim)],
    [`${arch}.rope.freq_base`, entry.float32(theta)],
    [`${arch}.attention.layer_norm_rms_epsilon`, entry.float32(shape.normEps)],
  ]);
  if (shape.activation !== 'silu') {
    throw new InvalidArgumentError(
      `hidden_act "${config.hidden_act}" has no GGUF llama/qwen2 equivalent (llama.cpp uses SiLU)`,
    );
  }
  if (scaling.type === 'linear') {
    metadata.set(`${arch}.rope.scaling.type`, entry.string('linear'));
    metadata.set(`${arch}.rope.scaling.factor`, entry.float32(scaling.factor));
  } else if (scaling.type !== 'default') {
    throw new InvalidArgumentError(
      `rope scaling "${scaling.type}" is not exported to GGUF yet; supported: default, linear`,
    );
  }
  return metadata;
}

function commonMetadata(hfFolder: string, arch: string, type: GgufExportType): GgufMetadata {
  return new Map([
    ['general.architecture', entry.string(arch)],
    ['general.name', entry.string(basename(resolve(hfFolder)))],
    ['general.file_type', entry.uint32(GGUF_FILE_TYPE[type])],
    ['general.quantization_version', entry.uint32(2)],
    ['general.alignment', entry.uint32(GGUF_DEFAULT_ALIGNMENT)],
  ]);
}

/** llama.cpp's gpt2 graph: LayerNorm, learned positions, fused qkv, GELU (tanh form) MLP. */
function gpt2Metadata(config: HfConfig, hfFolder: string, type: GgufExportType): GgufMetadata {
  const shape = gpt2Config(config);
  if (shape.activation !== 'gelu_tanh') {
    throw new InvalidArgumentError(
      `GPT-2 activation "${config.activation_function}" has no GGUF equivalent (llama.cpp's gpt2 uses the tanh GELU, gelu_new)`,
    );
  }
  if (shape.attentionScale !== undefined) {
    throw new InvalidArgumentError('GPT-2 without scale_attn_weights has no GGUF equivalent');
  }
  const inner = typeof config.n_inner === 'number' ? config.n_inner : 4 * shape.hiddenSize;
  const metadata = commonMetadata(hfFolder, 'gpt2', type);
  metadata.set('gpt2.vocab_size', entry.uint32(shape.vocabSize));
  metadata.set('gpt2.context_length', entry.uint32(field<number>(config, 'n_positions')));
  metadata.set('gpt2.embedding_length', entry.uint32(shape.hiddenSize));
  metadata.set('gpt2.feed_forward_length', entry.uint32(inner));
  metadata.set('gpt2.block_count', entry.uint32(shape.layers));
  metadata.set('gpt2.attention.head_count', entry.uint32(shape.heads));
  metadata.set('gpt2.attention.layer_norm_epsilon', entry.float32(shape.normEps));
  return metadata;
}

const readJsonFile = async (path: string) =>
  (await readJsonIfExists(
    path,
    (message) => new InvalidArgumentError(`${path} is not valid JSON: ${message}`),
  )) as Record<string, unknown> | undefined;

async function readTokenizer(hfFolder: string, config: HfConfig, override?: string): Promise<GgufMetadata> {
  const path = override ?? join(hfFolder, 'tokenizer.json');
  const tokenizerJson = await readJsonFile(path);
  if (!tokenizerJson) {
    throw new InvalidArgumentError(
      `${path} does not exist: a GGUF file carries its tokenizer, so export needs the model's tokenizer.json`,
    );
  }
  const tokenizerConfig = (await readJsonFile(join(hfFolder, 'tokenizer_config.json'))) ?? {};
  return tokenizerMetadata({ tokenizerJson, tokenizerConfig, modelConfig: config, source: path });
}
