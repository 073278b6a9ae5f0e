import { type CausalLm, initBackend } from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { speculativeGenerate } from '../src/index.js';
import { collect, loadFixture, plainGreedy, prompts } from './helpers.js';

let llama: CausalLm;
let gpt2: CausalLm;
beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  llama = await loadFixture('llama');
  gpt2 = await loadFixture('gpt2');
});
afterAll(() => {
  llama.dispose();
  gpt2.dispose();
});

test('a draft with a learned position table (256) stops k from drafting past it; output stays exact', async () => {
  const [prompt] = prompts(1, 512, 4, 236, 236);
  const want = await plainGreedy(llama, prompt, 20);
  const before = tf.memory().numTensors;
  const run = speculativeGenerate({ target: llama, draft: gpt2, k: 8, prompt, maxNewTokens: 20 });
  expect((await collect(run))[0]).toEqual(want);
  expect(tf.memory().numTensors).toBe(before);
  // Past the draft's table nothing can be drafted at all: a clear error, not garbage.
  expect(() => speculativeGenerate({ target: llama, draft: gpt2, prompt, maxNewTokens: 21 })).toThrow(
    /exceeds the 256 positions/,
  );
});
