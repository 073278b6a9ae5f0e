import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { readJsonIfExists } from '../read-json.js';
import { tokenizerFromJson } from './hf.js';
import { type Tokenizer, TokenizerError } from './types.js';

/**
 * Loads the tokenizer of a model folder: `tokenizer.json` (+ `tokenizer_config.json`) through
 * @huggingface/tokenizers, or, for a GPT-2 folder without one (vocab.json + merges.txt, or
 * config.json with model_type "gpt2"), GPT-2's own r50k_base encoding.
 */
export async function loadTokenizer(dir: string): Promise<Tokenizer> {
  const tokenizerJson = await readJson(join(dir, 'tokenizer.json'));
  if (tokenizerJson !== undefined) {
    const config = (await readJson(join(dir, 'tokenizer_config.json'))) ?? {};
    return tokenizerFromJson(
      tokenizerJson as object,
      config as Record<string, unknown>,
      join(dir, 'tokenizer.json'),
    );
  }
  const modelConfig = (await readJson(join(dir, 'config.json'))) as Record<string, unknown> | undefined;
  const hasBpeFiles = (await exists(join(dir, 'vocab.json'))) && (await exists(join(dir, 'merges.txt')));
  if (!hasBpeFiles && modelConfig?.model_type !== 'gpt2') {
    throw new TokenizerError(
      `${dir}: no tokenizer.json, and not a GPT-2 folder (vocab.json + merges.txt or model_type gpt2)`,
    );
  }
  // Loaded on demand: the GPT-2 rank table is half a megabyte of JavaScript.
  const { createGpt2Tokenizer, GPT2_VOCAB_SIZE } = await import('./gpt2.js');
  await checkGpt2Compatible(dir, modelConfig, GPT2_VOCAB_SIZE);
  return createGpt2Tokenizer();
}

/**
 * The fallback only knows GPT-2's own vocabulary. A model with fewer embedding rows, or a
 * vocab.json of another size, would get ids it cannot embed or text it was not trained on.
 */
async function checkGpt2Compatible(
  dir: string,
  modelConfig: Record<string, unknown> | undefined,
  gpt2VocabSize: number,
): Promise<void> {
  const modelVocab = modelConfig?.vocab_size;
  if (typeof modelVocab === 'number' && modelVocab < gpt2VocabSize) {
    throw new TokenizerError(
      `${dir}: config.json has vocab_size ${modelVocab}, too small for GPT-2's ${gpt2VocabSize} tokens; add the model's tokenizer.json`,
    );
  }
  const vocab = await readJson(join(dir, 'vocab.json'));
  if (vocab !== undefined && Object.keys(vocab as object).length !== gpt2VocabSize) {
    throw new TokenizerError(
      `${dir}: vocab.json has ${Object.keys(vocab as object).length} tokens, not GPT-2's ${gpt2VocabSize}; add the model's tokenizer.json`,
    );
  }
}

const readJson = (path: string) =>
  readJsonIfExists(path, (message) => new TokenizerError(`${path}: not valid JSON (${message})`));

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
