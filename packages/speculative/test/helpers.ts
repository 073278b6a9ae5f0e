import { join } from 'node:path';
import {
  type CausalLm,
  type CausalLmConfig,
  createCausalLm,
  type Decoder,
  generate,
  mapWeightTensors,
  randomCausalLmWeights,
  TINY_LLAMA_SHAPE,
} from '@specstream/core';
import { loadModel, openSafetensors } from '@specstream/models';
import * as tf from '@tensorflow/tfjs-core';
import { causalFixture, FIXTURES_DIR, sharedCausalVocab } from '../../../test-support/fixtures.js';
import type { SpeculativeRun } from '../src/index.js';

/** The HF reference fixtures (SPECSTREAM_FIXTURES names another set; see test-support/fixtures.ts). */
export const FIXTURES = FIXTURES_DIR;
export { causalFixture };

/** The vocabulary the fixture models share: random prompts for them draw ids below it. */
export const FIXTURE_VOCAB = sharedCausalVocab();

export async function loadFixture(name: 'llama' | 'qwen2' | 'gpt2'): Promise<CausalLm> {
  const loaded = await loadModel(join(FIXTURES, name));
  if (loaded.kind !== 'causal-lm') throw new Error(`${name} is not a causal LM`);
  return loaded.model;
}

/** HF transformers' greedy continuation of the fixture's greedy_prompt (prompt included). */
export async function fixtureGreedy(name: string): Promise<{ prompt: number[]; output: number[] }> {
  const file = await openSafetensors(join(FIXTURES, name, 'reference.safetensors'));
  const prompt = Array.from((await file.readValues('greedy_prompt')).values);
  const output = Array.from((await file.readValues('greedy_output')).values);
  await file.close();
  return { prompt, output };
}

/** Tokens per row, in order, from a speculative run. */
export async function collect(run: SpeculativeRun, rows = 1): Promise<number[][]> {
  const out: number[][] = Array.from({ length: rows }, () => []);
  for await (const event of run) out[event.row].push(event.token);
  return out;
}

/** Target-only greedy decoding through core's generate (one row at a time). */
export async function plainGreedy(model: Decoder, prompt: number[], maxNewTokens: number): Promise<number[]> {
  const out: number[] = [];
  for await (const event of generate({ model, prompt, maxNewTokens })) out.push(event.token);
  return out;
}

/**
 * A target and a draft that agrees with it often but not always: the draft's
 * weights are the target's plus Gaussian noise of the given size.
 */
export function noisyPair(
  config: CausalLmConfig,
  noise: number,
  seed = 5,
): { target: CausalLm; draft: CausalLm } {
  const weights = randomCausalLmWeights(config, { seed, std: 0.3 });
  let s = 1000;
  const noisy = mapWeightTensors(weights, (t) =>
    tf.tidy(() => tf.add(t, tf.randomNormal(t.shape, 0, noise, 'float32', s++))),
  );
  return { target: createCausalLm(config, weights), draft: createCausalLm(config, noisy) };
}

export const SMALL_LLAMA: CausalLmConfig = TINY_LLAMA_SHAPE;

/** Deterministic pseudo-random prompts. */
export function prompts(
  count: number,
  vocab: number,
  seed: number,
  minLength = 1,
  maxLength = 12,
): number[][] {
  let x = seed;
  const next = () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x / 2147483648;
  };
  return Array.from({ length: count }, () => {
    const length = minLength + Math.floor(next() * (maxLength - minLength + 1));
    return Array.from({ length }, () => Math.floor(next() * vocab));
  });
}
