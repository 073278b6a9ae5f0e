import type { KvCacheKind } from '@specstream/core';
import { type Progress, weightSource } from '../architectures/weights.js';
import { openCheckpoint } from '../safetensors/checkpoint.js';
import { createGriffinLimVocoder, type GriffinLimVocoder } from '../synthesizer/griffin-lim.js';
import { createReferenceSynthesizer, type ReferenceSynthesizer } from '../synthesizer/reference.js';
import { normalizeSpeechText } from './normalize-text.js';
import { readSpeechSynthesizerConfig, type SpeechSynthesizerConfig } from './synthesizer-config.js';
import { checkSynthesizerTensors, readSynthesizerWeights } from './synthesizer-weights.js';

/** A trained speech synthesizer folder, loaded: the model, its vocoder and its text front end. */
export interface SpeechSynthesizer {
  readonly config: SpeechSynthesizerConfig;
  readonly synthesizer: ReferenceSynthesizer;
  readonly vocoder: GriffinLimVocoder;
  /** Raw text → text ids: normalizeSpeechText (tools/speech/text.py's normalize), then `symbolIds`. */
  textToIds(text: string): number[];
  /** Already normalised (spoken) text → ids, one per character; characters without a symbol are dropped. */
  symbolIds(spoken: string): number[];
  /** Frees the weights. States must be disposed by their owners. */
  dispose(): void;
}

export interface LoadSpeechSynthesizerOptions {
  onProgress?: Progress;
  /** KV cache strategy; default: the fastest the backend supports. */
  kvCache?: KvCacheKind;
}

/**
 * Loads a speech synthesizer folder (config.json + model.safetensors, F16 or F32, as
 * tools/train/train_speech.py writes it). The config is checked before any weight is read, the
 * checkpoint's tensor names against the config before any tensor is read, and every tensor's
 * shape as it is read; a load that fails part-way frees every tensor it had read.
 */
export async function loadSpeechSynthesizer(
  dir: string,
  options: LoadSpeechSynthesizerOptions = {},
): Promise<SpeechSynthesizer> {
  const config = await readSpeechSynthesizerConfig(dir, options.kvCache);
  // Plain JavaScript (no tensors): built first, so a bad vocoder setting fails before any I/O.
  const vocoder = createGriffinLimVocoder(config.vocoder);
  let synthesizer: ReferenceSynthesizer;
  try {
    synthesizer = await readSynthesizer(dir, config, options.onProgress);
  } catch (error) {
    vocoder.dispose();
    throw error;
  }
  const ids = symbolTable(config.symbols);
  const symbolIds = (spoken: string): number[] => {
    const out: number[] = [];
    for (const c of spoken) {
      const id = ids.get(c);
      if (id !== undefined) out.push(id);
    }
    return out;
  };
  return {
    config,
    synthesizer,
    vocoder,
    symbolIds,
    textToIds: (text) => symbolIds(normalizeSpeechText(text)),
    dispose() {
      synthesizer.dispose();
      vocoder.dispose();
    },
  };
}

async function readSynthesizer(
  dir: string,
  config: SpeechSynthesizerConfig,
  onProgress: Progress | undefined,
): Promise<ReferenceSynthesizer> {
  const checkpoint = await openCheckpoint(dir);
  try {
    checkSynthesizerTensors(checkpoint, config.model, dir);
    const source = weightSource(checkpoint, dir, 'specstream-synthesizer', onProgress);
    try {
      const weights = await readSynthesizerWeights(source, config.model, dir);
      return createReferenceSynthesizer(config.model, weights);
    } catch (error) {
      source.disposeAll();
      throw error;
    }
  } finally {
    await checkpoint.close();
  }
}

/** Character → id; id 0 (padding) is never produced from text. */
function symbolTable(symbols: readonly string[]): Map<string, number> {
  const table = new Map<string, number>();
  symbols.forEach((symbol, id) => {
    if (id > 0) table.set(symbol, id);
  });
  return table;
}
