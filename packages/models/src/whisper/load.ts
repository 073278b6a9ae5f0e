import { InvalidArgumentError, type KernelSetName, type KvCacheKind } from '@specstream/core';
import { type Progress, weightSource } from '../architectures/weights.js';
import { readHfConfig } from '../load-model.js';
import { openCheckpoint } from '../safetensors/checkpoint.js';
import { type WhisperConfig, whisperConfig } from './config.js';
import { createWhisperDecoder, type WhisperDecoder } from './decoder.js';
import { createWhisperEncoder, type WhisperEncoder } from './encoder.js';
import { readWhisperWeights } from './weights.js';

/** WhisperForConditionalGeneration: an audio encoder and a text decoder that attends to its output. */
export interface Whisper {
  readonly config: WhisperConfig;
  readonly encoder: WhisperEncoder;
  readonly decoder: WhisperDecoder;
  /** Frees the weights of both halves. States must be disposed by their owners. */
  dispose(): void;
}

export interface LoadWhisperOptions {
  onProgress?: Progress;
  /** Decoder self-attention cache strategy; default: the fastest the backend supports. */
  kvCache?: KvCacheKind;
  /** The decoder's kernel set (core's kernelSet); default: SPECSTREAM_KERNELS, else the fastest here. */
  kernels?: KernelSetName;
}

/**
 * Loads a Hugging Face Whisper folder (config.json + safetensors) in fp32.
 * A load that fails part-way frees every tensor it had read.
 */
export async function loadWhisper(dir: string, options: LoadWhisperOptions = {}): Promise<Whisper> {
  const hf = await readHfConfig(dir);
  if (hf.model_type !== 'whisper') {
    throw new InvalidArgumentError(`${dir} holds a "${hf.model_type}" model, not whisper`);
  }
  // Validated before any I/O on the weights, so a bad config costs nothing.
  const config = whisperConfig(hf, options.kvCache);
  const checkpoint = await openCheckpoint(dir);
  const source = weightSource(checkpoint, dir, 'whisper', options.onProgress);
  let encoder: WhisperEncoder | undefined;
  try {
    const weights = await readWhisperWeights(source, config, dir);
    encoder = createWhisperEncoder(config, weights.encoder);
    const decoder = createWhisperDecoder(config, weights.decoder, { kernels: options.kernels });
    const built = encoder;
    return {
      config,
      encoder: built,
      decoder,
      dispose() {
        built.dispose();
        decoder.dispose();
      },
    };
  } catch (error) {
    encoder?.dispose();
    source.disposeAll();
    throw error;
  } finally {
    await checkpoint.close();
  }
}
