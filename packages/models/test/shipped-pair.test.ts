// The trained pair shipped in models/ (tools/train/train_pair.py): transformers loaded each
// exported folder in fp32 and wrote models/reference/<name>.safetensors (held-out windows and
// their logits, a greedy continuation) and models/reference/tokenizer.json (text → ids →
// decoded). Sizes come from the folders' configs and the references' shapes.
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type CausalLm, initBackend } from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { maxAbsDiff } from '../../../test-support/max-abs-diff.js';
import { SHIPPED_MODELS } from '../../../test-support/shipped-models.js';
import { loadCausalLm, readHfConfig } from '../src/load-model.js';
import { openSafetensors } from '../src/safetensors/file.js';
import { loadTokenizer } from '../src/tokenizer/index.js';
import { type CausalReference, greedyContinuation, readCausalReference } from './causal-reference.js';

const MODELS = SHIPPED_MODELS;
const PAIR = ['target', 'draft'] as const;
const folder = (name: string) => join(MODELS, `specstream-docs-${name}`);

const readReference = (name: string) => readCausalReference(join(MODELS, 'reference', `${name}.safetensors`));

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

describe.each(PAIR)('shipped %s', (name) => {
  let ref: CausalReference;
  let model: CausalLm;
  let tensorsBefore: number;

  beforeAll(async () => {
    ref = await readReference(name);
    tensorsBefore = tf.memory().numTensors;
    model = await loadCausalLm(folder(name));
  });
  afterAll(() => {
    model?.dispose();
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  });

  test('the folder is a Llama with f16 weights, as the training script wrote it', async () => {
    const config = await readHfConfig(folder(name));
    expect(config.model_type).toBe('llama');
    expect(model.vocabSize).toBe(config.vocab_size);
    const weights = await openSafetensors(join(folder(name), 'model.safetensors'));
    const dtypes = new Set(weights.names.map((n) => weights.info(n).dtype));
    await weights.close();
    expect([...dtypes]).toEqual(['F16']);
  });

  test('logits of held-out text match transformers in fp32 (≤ 1e-4)', () => {
    const rows = ref.inputIds;
    const state = model.createState({ batch: rows.length, maxLength: rows[0].length });
    const { logits } = model.extendStep(state, rows);
    const values = logits.dataSync() as Float32Array;
    logits.dispose();
    model.disposeState(state);
    expect(values.length).toBe(ref.logits.length);
    expect(maxAbsDiff(values, ref.logits)).toBeLessThan(1e-4);
  });

  test('greedy generation reproduces transformers’ greedy continuation', async () => {
    expect(await greedyContinuation(model, ref)).toEqual(ref.greedyOutput);
  });
});

describe('shipped tokenizer', () => {
  const reference: { text: string; ids: number[]; decoded: string }[] = JSON.parse(
    readFileSync(join(MODELS, 'reference', 'tokenizer.json'), 'utf8'),
  );

  test('target and draft ship the same tokenizer', async () => {
    const [a, b] = await Promise.all(PAIR.map((n) => readFile(join(folder(n), 'tokenizer.json'), 'utf8')));
    expect(a).toBe(b);
  });

  test('our loadTokenizer gives the ids and text that Hugging Face tokenizers gave', async () => {
    const tokenizer = await loadTokenizer(folder('target'));
    const config = await readHfConfig(folder('target'));
    expect(tokenizer.vocabSize).toBe(config.vocab_size);
    expect(reference.length).toBeGreaterThan(0);
    for (const entry of reference) {
      expect(tokenizer.encode(entry.text)).toEqual(entry.ids);
      expect(tokenizer.decode(entry.ids)).toBe(entry.decoded);
    }
  });
});
