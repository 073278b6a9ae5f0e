import { type CausalLm, initBackend } from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { type Drafter, speculativeGenerate } from '../src/index.js';
import { causalFixture, collect, FIXTURE_VOCAB, loadFixture, plainGreedy, prompts } from './helpers.js';

/** The gpt2 fixture's learned position table (n_positions), the draft's limit; the llama target reaches as far. */
const TABLE = causalFixture('gpt2').maxPositions;
const TARGET_POSITIONS = causalFixture('llama').maxPositions;
/** A prompt that leaves room for exactly 20 new tokens in the table. */
const LONG = TABLE - 20;

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

test(`a draft with a learned position table (${TABLE}) stops k from drafting past it; output stays exact`, async () => {
  expect(TARGET_POSITIONS).toBeGreaterThanOrEqual(TABLE);
  const [prompt] = prompts(1, FIXTURE_VOCAB, 4, LONG, LONG);
  const want = await plainGreedy(llama, prompt, 20);
  const before = tf.memory().numTensors;
  const run = speculativeGenerate({ target: llama, draft: gpt2, k: 8, prompt, maxNewTokens: 20 });
  expect((await collect(run))[0]).toEqual(want);
  expect(tf.memory().numTensors).toBe(before);
  // Past the draft's table nothing can be drafted at all: a clear error, not garbage.
  expect(() => speculativeGenerate({ target: llama, draft: gpt2, prompt, maxNewTokens: 21 })).toThrow(
    `exceeds the ${TABLE} positions`,
  );
});

test('a finished row at the position cap does not overflow while a shorter row goes on', async () => {
  const [long] = prompts(1, FIXTURE_VOCAB, 4, LONG, LONG);
  const [short] = prompts(1, FIXTURE_VOCAB, 8, 10, 10);
  const want = [await plainGreedy(llama, long, 20), await plainGreedy(llama, short, 20)];
  // An oracle for the long row: it finishes in a few passes while the short row crawls.
  const oracle: Drafter = {
    name: 'oracle',
    maxPositions: TABLE,
    start: () => ({
      propose: async ({ histories, k }) =>
        histories.map((h, r) => {
          // The short row gets k wrong guesses: every pass then spans k+1 positions.
          if (r !== 0) return { tokens: new Array<number>(k).fill((h[h.length - 1] + 1) % FIXTURE_VOCAB) };
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
