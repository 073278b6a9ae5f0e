import { type CausalLm, initBackend } from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { type Drafter, speculativeGenerate } from '../src/index.js';
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

test('a finished row at the position cap does not overflow while a shorter row goes on', async () => {
  const [long] = prompts(1, 512, 4, 236, 236);
  const [short] = prompts(1, 512, 8, 10, 10);
  const want = [await plainGreedy(llama, long, 20), await plainGreedy(llama, short, 20)];
  // An oracle for the long row: it finishes in a few passes while the short row crawls.
  const oracle: Drafter = {
    name: 'oracle',
    maxPositions: 256,
    start: () => ({
      propose: async ({ histories, k }) =>
        histories.map((h, r) => {
          // The short row gets k wrong guesses: every pass then spans k+1 positions.
          if (r !== 0) return { tokens: new Array<number>(k).fill((h[h.length - 1] + 1) % 512) };
          const done = h.length - long.length;
          return { tokens: want[0].slice(done, done + k) };
        }),
      dispose() {},
    }),
  };
  const run = speculativeGenerate({
    target: llama,
    draft: oracle,
    k: 8,
    prompt: [long, short],
    maxNewTokens: 20,
  });
  expect(await collect(run, 2)).toEqual(want);
});
