import { type CausalLm, getLogger, InvalidArgumentError, kernelSet } from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { loadGpt2 } from '../architectures/gpt2.js';
import type { HfConfig } from '../architectures/hf-config.js';
import { loadLlama } from '../architectures/llama.js';
import type { LoadedModel, LoadModelOptions } from '../load-model.js';
import type { TensorValues } from '../safetensors/decode.js';
import type { TensorReader } from '../safetensors/file.js';
import type { TensorInfo } from '../safetensors/header.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { type GgufWeightsReport, ggufWeightSource } from './block-weights.js';
import { GgufValueType } from './constants.js';
import { GgufError } from './errors.js';
import { isNumberType } from './metadata.js';
import {
  GGUF_ARCHITECTURES,
  type GgufArchitecture,
  permuteRows,
  type TensorPlan,
  tensorPlans,
  transpose,
} from './names.js';
import { dequantize } from './quant.js';
import { type GgufFile, openGguf } from './reader.js';
import { tokenizerFromGguf } from './tokenizer.js';

const READABLE_ARCHITECTURES: readonly string[] = [...new Set(Object.values(GGUF_ARCHITECTURES))];

function numberKey(file: GgufFile, key: string, fallback?: number): number {
  const value = file.metadata.get(key);
  if (value === undefined) {
    if (fallback !== undefined) return fallback;
    throw new GgufError(file.path, `metadata '${key}' is missing`);
  }
  if (!isNumberType(value.type) || typeof value.value !== 'number' || !Number.isFinite(value.value)) {
    const what =
      value.type === GgufValueType.ARRAY
        ? 'an array (per-layer values are not supported)'
        : `${String(value.value)}`;
    throw new GgufError(file.path, `metadata '${key}' is ${what}, not a number`);
  }
  return value.value;
}

function countKey(file: GgufFile, key: string, fallback?: number): number {
  const value = numberKey(file, key, fallback);
  if (!Number.isSafeInteger(value) || value <= 0)
    throw new GgufError(file.path, `metadata '${key}' is ${value}, not a positive integer`);
  return value;
}

/** The config.json that the file's metadata stands for, in the fields the HF loaders read. */
export function ggufHfConfig(file: GgufFile): HfConfig {
  const arch = file.metadata.get('general.architecture')?.value;
  if (typeof arch !== 'string' || !READABLE_ARCHITECTURES.includes(arch)) {
    throw new InvalidArgumentError(
      `${file.path}: general.architecture ${JSON.stringify(arch)} is not supported; supported: ${READABLE_ARCHITECTURES.join(', ')}`,
    );
  }
  if (arch === 'gpt2') return gpt2HfConfig(file);
  const hidden = countKey(file, `${arch}.embedding_length`);
  const heads = countKey(file, `${arch}.attention.head_count`);
  const headDim = countKey(file, `${arch}.attention.key_length`, hidden / heads);
  const valueLength = countKey(file, `${arch}.attention.value_length`, headDim);
  if (valueLength !== headDim) {
    throw new GgufError(
      file.path,
      `key_length ${headDim} and value_length ${valueLength} differ; this loader needs them equal`,
    );
  }
  const ropeDims = countKey(file, `${arch}.rope.dimension_count`, headDim);
  if (ropeDims !== headDim) {
    throw new GgufError(
      file.path,
      `rope.dimension_count ${ropeDims} is not the head size ${headDim}: partial rotary is not supported`,
    );
  }
  if (file.tensors.has('rope_freqs.weight')) {
    throw new GgufError(
      file.path,
      'rope_freqs (per-frequency rope factors, e.g. llama3 scaling) are not supported',
    );
  }
  const scalingType = file.metadata.get(`${arch}.rope.scaling.type`)?.value ?? 'none';
  const factor = numberKey(file, `${arch}.rope.scaling.factor`, 0);
  let ropeScaling: Record<string, unknown> | undefined;
  if (scalingType === 'linear' && factor !== 0 && factor !== 1) ropeScaling = { rope_type: 'linear', factor };
  else if (scalingType !== 'none' && scalingType !== 'linear') {
    throw new GgufError(
      file.path,
      `rope scaling ${JSON.stringify(scalingType)} is not supported; supported: none, linear`,
    );
  }
  return {
    model_type: arch,
    vocab_size: embeddingRows(file),
    hidden_size: hidden,
    num_hidden_layers: countKey(file, `${arch}.block_count`),
    num_attention_heads: heads,
    num_key_value_heads: countKey(file, `${arch}.attention.head_count_kv`, heads),
    head_dim: headDim,
    intermediate_size: countKey(file, `${arch}.feed_forward_length`),
    rms_norm_eps: numberKey(file, `${arch}.attention.layer_norm_rms_epsilon`),
    rope_theta: numberKey(file, `${arch}.rope.freq_base`, 10000),
    ...(ropeScaling ? { rope_scaling: ropeScaling } : {}),
    max_position_embeddings: countKey(file, `${arch}.context_length`),
    hidden_act: 'silu',
    tie_word_embeddings: !file.tensors.has('output.weight'),
  };
}

function embeddingRows(file: GgufFile): number {
  const embedding = file.tensors.get('token_embd.weight');
  if (embedding?.dims.length !== 2)
    throw new GgufError(file.path, 'token_embd.weight is missing or not a matrix');
  return embedding.dims[1];
}

function gpt2HfConfig(file: GgufFile): HfConfig {
  if (file.tensors.has('output.weight')) {
    throw new GgufError(file.path, 'a GPT-2 with an output matrix of its own (untied) is not supported');
  }
  const hidden = countKey(file, 'gpt2.embedding_length');
  return {
    model_type: 'gpt2',
    vocab_size: embeddingRows(file),
    n_embd: hidden,
    n_head: countKey(file, 'gpt2.attention.head_count'),
    n_layer: countKey(file, 'gpt2.block_count'),
    n_positions: countKey(file, 'gpt2.context_length'),
    n_inner: countKey(file, 'gpt2.feed_forward_length', 4 * hidden),
    layer_norm_epsilon: numberKey(file, 'gpt2.attention.layer_norm_epsilon'),
    // llama.cpp's gpt2 graph uses ggml_gelu, the tanh form.
    activation_function: 'gelu_new',
    tie_word_embeddings: true,
  };
}

/**
 * The file's tensors under their Hugging Face names and shapes, as float32: what the HF
 * loaders read, so a GGUF model goes through the same weightSource / loadLlama path. Each
 * read dequantizes one tensor (or a range of rows) from its offset, and undoes llama's q/k
 * row permutation.
 */
export function ggufTensorReader(file: GgufFile, config: HfConfig): TensorReader {
  const arch = config.model_type as GgufArchitecture;
  const layers = (arch === 'gpt2' ? config.n_layer : config.num_hidden_layers) as number;
  const plans = new Map(
    tensorPlans(arch, layers)
      .filter((plan) => file.tensors.has(plan.gguf))
      .map((plan) => [plan.hf, plan]),
  );
  const names = [...plans.keys()];
  const planOf = (name: string): TensorPlan => {
    const plan = plans.get(name);
    if (!plan) throw new GgufError(file.path, `no tensor for '${name}' in this file`);
    return plan;
  };
  const info = (name: string): TensorInfo => {
    const plan = planOf(name);
    const t = file.info(plan.gguf);
    return {
      dtype: 'F32',
      // A Conv1D is stored as [out, in] rows (ne = [in, out]) and read back as [in, out].
      shape: plan.layout === 'transpose' ? [...t.dims] : [...t.dims].reverse(),
      dataOffsets: [t.fileOffset - file.dataOffset, t.fileOffset - file.dataOffset + t.byteLength],
      fileOffset: t.fileOffset,
      byteLength: t.byteLength,
      file: file.path,
    };
  };
  const readValues = async (name: string): Promise<TensorValues> => {
    const plan = planOf(name);
    let values = await file.readFloat32(plan.gguf);
    const dims = file.info(plan.gguf).dims;
    if (plan.layout === 'rope') {
      const heads = (plan.heads === 'kv' ? config.num_key_value_heads : config.num_attention_heads) as number;
      values = permuteRows(values, heads, dims.length === 2 ? dims[0] : 1, 'from-gguf');
    } else if (plan.layout === 'transpose') {
      values = transpose(values, dims[1], dims[0]);
    }
    return { values, dtype: 'float32' };
  };
  return {
    names,
    has: (name) => plans.has(name),
    info,
    readValues,
    async *readChunks(name, chunkElements = 1 << 20) {
      const plan = planOf(name);
      if (plan.layout !== 'same') {
        yield (await readValues(name)).values as Float32Array;
        return;
      }
      const t = file.info(plan.gguf);
      const rowLength = t.dims[0];
      const rows = rowLength === 0 ? 0 : t.elements / rowLength;
      const step = Math.max(1, Math.floor(chunkElements / Math.max(1, rowLength)));
      for (let row = 0; row < rows; row += step) {
        const count = Math.min(step, rows - row);
        yield dequantize(t.type, await file.readRows(t.name, row, count), count * rowLength);
      }
    },
    async readTensor(name) {
      const { values } = await readValues(name);
      return tf.tensor(values, [...info(name).shape], 'float32');
    },
    close: () => file.close(),
  };
}

/**
 * loadModel for a .gguf file: llama / qwen2 / gpt2 graphs (Mistral exports as llama). With
 * the wasm kernel set at q8 (q4), the file's Q8_0 (Q4_0) matrices go into the kernels as they
 * are stored, never through f32 (block-weights.ts); every other quantized matrix is
 * dequantized, and a log line and LoadedModel.gguf say which. `weights` defaults to f32 as for
 * a folder, even for a file of Q8_0 or Q4_0 matrices: the quantized kernels also round the
 * activations, so a format is the caller's choice (the log line names the one that fits).
 */
export async function loadGgufModel(path: string, options: LoadModelOptions = {}): Promise<LoadedModel> {
  const file = await openGgufOrExplain(path);
  try {
    const config = ggufHfConfig(file);
    const reader = ggufTensorReader(file, config);
    // The model's kernel set, chosen before any read: its format decides which blocks go in as stored.
    const set = kernelSet(options.kernels, options.weights);
    const { weights, report } = ggufWeightSource(
      file,
      config,
      reader,
      set.blocks?.format,
      options.onProgress,
    );
    logWeights(path, set.name, set.weights, report, options.weights === undefined);
    const chosen = { kernels: set.name, weights: set.weights, reuseStates: options.reuseStates };
    try {
      const model: CausalLm =
        config.model_type === 'gpt2'
          ? await loadGpt2(config, weights, options.kvCache, chosen)
          : await loadLlama(config, weights, options.kvCache, chosen);
      return { kind: 'causal-lm', modelType: config.model_type as string, config, model, gguf: report };
    } catch (error) {
      weights.disposeAll();
      throw error;
    }
  } finally {
    await file.close();
  }
}

/** One line on how the file's quantized matrices reach the kernels, where it has any. */
function logWeights(
  path: string,
  kernels: string,
  weights: string,
  report: GgufWeightsReport,
  defaultWeights: boolean,
): void {
  const dequantized = Object.keys(report.dequantized);
  if (report.asStored.length === 0 && dequantized.length === 0) return;
  const types = [...new Set(Object.values(report.dequantized))];
  // A file whose quantized matrices are all Q8_0 (Q4_0) fits q8 (q4) kernels exactly.
  const fits =
    report.asStored.length === 0 && types.length === 1 ? { Q8_0: 'q8', Q4_0: 'q4' }[types[0]] : undefined;
  const parts = [
    ...(report.asStored.length > 0 ? [`${report.asStored.length} kept as stored (${weights} kernels)`] : []),
    ...(report.note ? [report.note] : []),
    ...(defaultWeights && fits
      ? [`weights: '${fits}' on the wasm kernel set would keep them as stored`]
      : []),
  ];
  getLogger('models').info(
    { path, kernels, weights, asStored: report.asStored.length, dequantized: dequantized.length, types },
    `GGUF quantized matrices: ${parts.join('; ')}`,
  );
}

/** The tokenizer stored in a GGUF file's metadata, as the project's Tokenizer. */
export async function loadGgufTokenizer(path: string): Promise<Tokenizer> {
  const file = await openGgufOrExplain(path);
  try {
    return tokenizerFromGguf(file.metadata, path);
  } finally {
    await file.close();
  }
}

async function openGgufOrExplain(path: string): Promise<GgufFile> {
  try {
    return await openGguf(path);
  } catch (error) {
    if (error instanceof GgufError) throw error;
    throw new InvalidArgumentError(`cannot read ${path}: ${(error as Error).message}`);
  }
}
