import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type CausalLm,
  getLogger,
  InvalidArgumentError,
  type KernelSetName,
  type KvCacheKind,
  type WeightFormat,
} from '@specstream/core';
import { gpt2Config, loadGpt2 } from './architectures/gpt2.js';
import type { HfConfig } from './architectures/hf-config.js';
import { llamaConfig, loadLlama } from './architectures/llama.js';
import { type Progress, weightSource } from './architectures/weights.js';
import type { GgufWeightsReport } from './gguf/block-weights.js';
import { isGgufPath } from './gguf/detect.js';
import { openCheckpoint } from './safetensors/checkpoint.js';
import type { Whisper } from './whisper/index.js';

export const SUPPORTED_MODEL_TYPES = ['llama', 'mistral', 'qwen2', 'gpt2', 'whisper'] as const;

export interface LoadModelOptions {
  onProgress?: Progress;
  kvCache?: KvCacheKind;
  /** The kernel set of a causal LM (default: SPECSTREAM_KERNELS, else the fastest here). */
  kernels?: KernelSetName;
  /**
   * How a causal LM's linear kernels keep the weights (default f32; q8, q4: the wasm set). A
   * .gguf file's Q8_0 matrices go into q8 kernels as stored (Q4_0 into q4), never through f32.
   */
  weights?: WeightFormat;
  /** A causal LM keeps this many disposed states' caches for reuse (core's CausalLmOptions.reuseStates; default 0). */
  reuseStates?: number;
}

export type LoadedModel =
  | {
      kind: 'causal-lm';
      modelType: string;
      config: HfConfig;
      model: CausalLm;
      /** .gguf files only: which quantized matrices went in as stored, which were dequantized. */
      gguf?: GgufWeightsReport;
    }
  | { kind: 'whisper'; modelType: 'whisper'; config: HfConfig; model: Whisper };

export async function readHfConfig(dir: string): Promise<HfConfig> {
  const path = join(dir, 'config.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new InvalidArgumentError(`cannot read ${path}: ${(error as Error).message}`);
  }
  try {
    return JSON.parse(text) as HfConfig;
  } catch (error) {
    throw new InvalidArgumentError(`${path} is not valid JSON: ${(error as Error).message}`);
  }
}

/**
 * Loads a Hugging Face model folder (config.json + safetensors), choosing the architecture from
 * model_type, or a .gguf file (llama, qwen2 and gpt2 architectures).
 */
export async function loadModel(dir: string, options: LoadModelOptions = {}): Promise<LoadedModel> {
  if (await isGgufPath(dir)) {
    const { loadGgufModel } = await import('./gguf/load.js');
    return loadGgufModel(dir, options);
  }
  const config = await readHfConfig(dir);
  const type = config.model_type ?? '(missing)';
  if (!(SUPPORTED_MODEL_TYPES as readonly string[]).includes(type)) {
    throw new InvalidArgumentError(
      `model_type "${type}" in ${join(dir, 'config.json')} is not supported; supported: ${SUPPORTED_MODEL_TYPES.join(', ')}`,
    );
  }
  if (type === 'whisper') {
    // Loaded on demand: text-only users never pay for the audio stack.
    const { loadWhisper } = await import('./whisper/index.js');
    return { kind: 'whisper', modelType: 'whisper', config, model: await loadWhisper(dir) };
  }
  // Validate the config before touching the weights, so a bad config costs no I/O.
  if (type === 'gpt2') gpt2Config(config);
  else llamaConfig(config);
  if (type === 'mistral' && typeof config.sliding_window === 'number') {
    getLogger('models').warn(
      { slidingWindow: config.sliding_window },
      'sliding-window attention is not applied: outputs match transformers only up to that context length',
    );
  }
  const checkpoint = await openCheckpoint(dir);
  const weights = weightSource(checkpoint, dir, type, options.onProgress);
  try {
    const model =
      type === 'gpt2'
        ? await loadGpt2(config, weights, options.kvCache, options)
        : await loadLlama(config, weights, options.kvCache, options);
    return { kind: 'causal-lm', modelType: type, config, model };
  } catch (error) {
    weights.disposeAll();
    throw error;
  } finally {
    await checkpoint.close();
  }
}

/** loadModel for text decoders: the model itself, or an error naming what the folder holds instead. */
export async function loadCausalLm(dir: string, options: LoadModelOptions = {}): Promise<CausalLm> {
  const type = (await isGgufPath(dir)) ? 'gguf' : (await readHfConfig(dir)).model_type;
  if (type === 'whisper') {
    throw new InvalidArgumentError(
      `${dir} holds a whisper model, not a causal language model: use loadWhisper`,
    );
  }
  const loaded = await loadModel(dir, options);
  if (loaded.kind !== 'causal-lm') throw new InvalidArgumentError(`${dir} is not a causal language model`);
  return loaded.model;
}
