import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CausalLm, InvalidArgumentError, initBackend, weightArena } from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { kernelSetCases } from '../../../test-support/kernel-sets.js';
import { maxAbsDiff } from '../../../test-support/max-abs-diff.js';
import { loadCausalLm, loadModel } from '../src/load-model.js';
import { SafetensorsError } from '../src/safetensors/errors.js';
import { openSafetensors } from '../src/safetensors/file.js';
import { writeSafetensors } from '../src/safetensors/write.js';
import { type CausalReference, greedyContinuation, readCausalReference } from './causal-reference.js';
import { causalFixture, FIXTURES_DIR as FIXTURES } from './fixtures.js';

/** Split points for extendStep, kept inside a reference row of `steps` ids. */
function splitsWithin(steps: number): number[][] {
  return [[1, 2, 3], [5, 13], [7, 8, 20, 23], [11]].map((points) => points.filter((p) => p < steps));
}

const readReference = (model: string) => readCausalReference(join(FIXTURES, model, 'reference.safetensors'));

/** Logits of every position of every row via one extendStep per split point list. */
function logitsBySplits(model: CausalLm, ids: number[][], splits: number[]): Float32Array {
  const T = ids[0].length;
  const V = model.vocabSize;
  const out = new Float32Array(ids.length * T * V);
  const state = model.createState({ batch: ids.length, maxLength: T });
  let at = 0;
  for (const end of [...splits, T]) {
    const { logits } = model.extendStep(
      state,
      ids.map((row) => row.slice(at, end)),
    );
    const values = logits.dataSync();
    const steps = end - at;
    for (let r = 0; r < ids.length; r++)
      out.set(values.subarray(r * steps * V, (r + 1) * steps * V), (r * T + at) * V);
    logits.dispose();
    at = end;
  }
  model.disposeState(state);
  return out;
}

/** Every kernel set the wasm backend has, each over every fixture. */
const CASES = (await kernelSetCases(['wasm'])).flatMap((c) =>
  ['llama', 'qwen2', 'gpt2'].map((name) => ({ ...c, name })),
);

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

describe.each(CASES)('$name checkpoint, $label', ({ backend, kernels, name }) => {
  let ref: CausalReference;
  let model: CausalLm;
  let tensorsBefore: number;
  let arenaBefore: number;

  beforeAll(async () => {
    await initBackend({ backend });
    ref = await readReference(name);
    tensorsBefore = tf.memory().numTensors;
    arenaBefore = weightArena()!.bytesInUse();
    // reuseStates: every state after the first runs on a cache an earlier one filled (the checks
    // below then also say a kept cache's old keys never leak into a new state's logits).
    const loaded = await loadModel(join(FIXTURES, name), { kernels, reuseStates: 2 });
    // The wasm set packs the layers' products into core's weight arena as they are read; others leave it.
    if (kernels === 'wasm') expect(weightArena()!.bytesInUse()).toBeGreaterThan(arenaBefore);
    else expect(weightArena()!.bytesInUse()).toBe(arenaBefore);
    if (loaded.kind !== 'causal-lm') throw new Error('expected a causal LM');
    model = loaded.model;
  });
  afterAll(() => {
    model.dispose();
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(weightArena()!.bytesInUse()).toBe(arenaBefore);
  });

  test('full forward matches transformers logits (≤ 1e-4)', () => {
    const err = maxAbsDiff(logitsBySplits(model, ref.inputIds, []), ref.logits);
    expect(err).toBeLessThan(1e-4);
  });

  test('extendStep over random splits matches too', () => {
    for (const splits of splitsWithin(ref.inputIds[0].length)) {
      expect(maxAbsDiff(logitsBySplits(model, ref.inputIds, splits), ref.logits)).toBeLessThan(1e-4);
    }
  });

  test('greedy generation reproduces greedy_output token for token', async () => {
    expect(await greedyContinuation(model, ref)).toEqual(ref.greedyOutput);
  });
});

describe('16-bit checkpoints', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'specstream-half-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  // Logits are sums over hidden-size dot products of ~O(1) values: relative weight
  // error ε (2^-11 for F16, 2^-8 for BF16) moves them by a few ε × |logit|.
  test.each([
    ['F16', 2 ** -11],
    ['BF16', 2 ** -8],
  ] as const)('%s copy of llama gives the fp32 logits within the format precision', async (dtype, eps) => {
    const source = await openSafetensors(join(FIXTURES, 'llama', 'model.safetensors'));
    const tensors: Record<string, { dtype: typeof dtype; shape: readonly number[]; data: Float32Array }> = {};
    for (const n of source.names) {
      tensors[n] = {
        dtype,
        shape: source.info(n).shape,
        data: (await source.readValues(n)).values as Float32Array,
      };
    }
    await source.close();
    const target = join(dir, dtype);
    await rm(target, { recursive: true, force: true });
    await import('node:fs/promises').then((fs) => fs.mkdir(target));
    await writeSafetensors(join(target, 'model.safetensors'), tensors);
    await copyFile(join(FIXTURES, 'llama', 'config.json'), join(target, 'config.json'));
    const ref = await readReference('llama');
    const loaded = await loadModel(target);
    if (loaded.kind !== 'causal-lm') throw new Error('expected a causal LM');
    const logits = logitsBySplits(loaded.model, ref.inputIds, []);
    loaded.model.dispose();
    const scale = Math.max(...Array.from(ref.logits, Math.abs));
    const err = maxAbsDiff(logits, ref.logits);
    expect(err).toBeLessThan(8 * eps * scale);
    // And the rounding really happened: the copy is not bit-identical.
    expect(err).toBeGreaterThan(0);
  });
});

describe('bad model folders', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'specstream-bad-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  test('loadCausalLm refuses a whisper folder before reading weights, and loads a decoder', async () => {
    await expect(loadCausalLm(join(FIXTURES, 'whisper'))).rejects.toThrow(
      /holds a whisper model, not a causal language model/,
    );
    const model = await loadCausalLm(join(FIXTURES, 'gpt2'));
    expect(model.vocabSize).toBe(causalFixture('gpt2').vocabSize);
    model.dispose();
  });

  test('an unsupported model_type names the supported ones', async () => {
    await writeFile(join(dir, 'config.json'), JSON.stringify({ model_type: 'bert' }));
    await expect(loadModel(dir)).rejects.toThrow(InvalidArgumentError);
    await expect(loadModel(dir)).rejects.toThrow(/"bert".*supported: llama, mistral, qwen2, gpt2, whisper/);
  });

  test('a tensor the architecture needs but the checkpoint lacks is named; nothing leaks', async () => {
    // The last layer's: every layer before it is read (and packed) first.
    const missing = `model.layers.${causalFixture('llama').layers - 1}.mlp.up_proj.weight`;
    const source = await openSafetensors(join(FIXTURES, 'llama', 'model.safetensors'));
    const tensors: Record<string, { dtype: 'F32'; shape: readonly number[]; data: Float32Array }> = {};
    for (const n of source.names) {
      if (n === missing) continue;
      tensors[n] = {
        dtype: 'F32',
        shape: source.info(n).shape,
        data: (await source.readValues(n)).values as Float32Array,
      };
    }
    await source.close();
    await writeSafetensors(join(dir, 'model.safetensors'), tensors);
    await copyFile(join(FIXTURES, 'llama', 'config.json'), join(dir, 'config.json'));
    const before = tf.memory().numTensors;
    const arenaBefore = weightArena()!.bytesInUse();
    await expect(loadModel(dir)).rejects.toThrow(SafetensorsError);
    await expect(loadModel(dir)).rejects.toThrow(`needs tensor "${missing}"`);
    expect(tf.memory().numTensors).toBe(before);
    // The layers before the last were packed into the arena before it failed; they are freed too.
    expect(weightArena()!.bytesInUse()).toBe(arenaBefore);
  });

  test('a config with an unsupported rope type is rejected before reading weights', async () => {
    await writeFile(
      join(dir, 'config.json'),
      JSON.stringify({
        model_type: 'llama',
        hidden_size: 8,
        num_attention_heads: 2,
        num_hidden_layers: 1,
        vocab_size: 4,
        rope_scaling: { rope_type: 'yarn', factor: 2 },
      }),
    );
    await expect(loadModel(dir)).rejects.toThrow(/rope type "yarn" is not supported/);
  });
});
