import { type CausalLm, initBackend, randomCausalLm } from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { modelDrafter, speculativeGenerate } from '../src/index.js';
import { collect, plainGreedy, SMALL_LLAMA } from './helpers.js';

/**
 * A draft whose vocabulary is a prefix of the target's (a target padded past
 * it, 32064 vs 32000): the target can emit, and a prompt can hold, ids the
 * draft has no embedding for. The draft reads a stand-in for those, and the
 * output stays the target's.
 */
const DRAFT_VOCAB = 60;
let target: CausalLm;
let draft: CausalLm;

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  target = randomCausalLm(SMALL_LLAMA, { seed: 3, std: 0.3 });
  draft = randomCausalLm({ ...SMALL_LLAMA, vocabSize: DRAFT_VOCAB }, { seed: 4, std: 0.3 });
});
afterAll(() => {
  target.dispose();
  draft.dispose();
});

test('greedy output equals plain decoding when the target emits ids past the draft vocabulary', async () => {
  const rows = [[1, 2, 3], [5, 40, 59, 7], [10], [8, 90, 4]];
  const want = await Promise.all(rows.map((p) => plainGreedy(target, p, 30)));
  // The case needs target-only ids in the text, or it tests nothing.
  expect(want.flat().some((id) => id >= DRAFT_VOCAB)).toBe(true);
  const before = tf.memory().numTensors;
  for (const k of [1, 3, 5]) {
    expect(
      await collect(speculativeGenerate({ target, draft, k, prompt: rows, maxNewTokens: 30 }), rows.length),
    ).toEqual(want);
  }
  const withStandIn = modelDrafter(draft, { unknownId: 59 });
  expect(
    await collect(
      speculativeGenerate({ target, draft: withStandIn, k: 2, prompt: rows, maxNewTokens: 30 }),
      rows.length,
    ),
  ).toEqual(want);
  expect(tf.memory().numTensors).toBe(before);
});

test('sampling with a shorter draft vocabulary draws only valid ids and leaves no tensors', async () => {
  const before = tf.memory().numTensors;
  const run = speculativeGenerate({
    target,
    draft,
    k: 3,
    prompt: [[8, 90, 4], [1]],
    maxNewTokens: 40,
    sampling: { temperature: 1, seed: 1 },
  });
  const out = await collect(run, 2);
  expect(out.map((r) => r.length)).toEqual([40, 40]);
  expect(out.flat().every((id) => Number.isInteger(id) && id >= 0 && id < SMALL_LLAMA.vocabSize)).toBe(true);
  expect(tf.memory().numTensors).toBe(before);
});

test('a stand-in id outside the draft vocabulary is refused by name', () => {
  expect(() => modelDrafter(draft, { unknownId: DRAFT_VOCAB })).toThrow(
    /unknownId must be an id of the draft, in \[0, 60\), got 60/,
  );
});
