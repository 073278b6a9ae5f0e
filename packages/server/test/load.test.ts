import type { CausalLm } from '@specstream/core';
import type { Tokenizer } from '@specstream/models';
import * as tf from '@tensorflow/tfjs-core';
import type OpenAI from 'openai';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { SpecstreamServer } from '../src/index.js';
import { eventually, greedyAlone, loadShippedPair, MODEL_ID, startServer, TEXTS } from './helpers.js';

let target: CausalLm;
let draft: CausalLm;
let tokenizer: Tokenizer;
let server: SpecstreamServer;
let client: OpenAI;
let baseline: number;

const MORE = [
  'To loop over a sequence in reverse, first specify the sequence in a forward direction',
  'The with statement allows objects like files to be used in a way that ensures',
  'Exceptions are identified by class instances. The except clause is selected',
  'A module is a file containing Python definitions and statements.',
  'The glob module provides a function for making file lists from directory wildcard searches:',
];
/** Distinct requests: every prompt at two lengths. */
const REQUESTS = [...TEXTS, ...MORE].flatMap((prompt, i) => [
  { prompt, maxTokens: 16 + (i % 4) * 6 },
  { prompt, maxTokens: 40 },
]);
const TOTAL = 128;
const CLIENTS = 64;

beforeAll(async () => {
  ({ target, draft, tokenizer } = await loadShippedPair());
  baseline = tf.memory().numTensors;
  ({ server, client } = await startServer({ target, draft, tokenizer, maxBatch: 16, maxQueue: 64 }));
});
afterAll(async () => {
  await server?.close();
  target?.dispose();
  draft?.dispose();
});

test(`${CLIENTS} concurrent streaming clients, ${TOTAL} greedy requests: each complete and equal to the request alone; nothing left after`, async () => {
  const alone = [];
  for (const r of REQUESTS)
    alone.push(await greedyAlone(target, tokenizer, tokenizer.encode(r.prompt), r.maxTokens));

  let next = 0;
  const results: { index: number; text: string; finish: string | null; usage?: OpenAI.CompletionUsage }[] =
    [];
  let widest = 0;
  const watch = setInterval(() => {
    widest = Math.max(widest, server.scheduler.activeRows);
  }, 5);
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (next < TOTAL) {
        const index = next++ % REQUESTS.length;
        const { prompt, maxTokens } = REQUESTS[index];
        const stream = await client.completions.create({
          model: MODEL_ID,
          prompt,
          max_tokens: maxTokens,
          temperature: 0,
          stream: true,
          stream_options: { include_usage: true },
        });
        let text = '';
        let finish: string | null = null;
        let usage: OpenAI.CompletionUsage | undefined;
        for await (const chunk of stream) {
          usage = chunk.usage ?? usage;
          for (const choice of chunk.choices) {
            text += choice.text;
            finish = choice.finish_reason ?? finish;
          }
        }
        results.push({ index, text, finish, usage });
      }
    }),
  );
  clearInterval(watch);
  const seconds = (performance.now() - started) / 1000;
  expect(results).toHaveLength(TOTAL);
  for (const { index, text, finish, usage } of results) {
    const want = alone[index];
    expect(text, `request ${index}`).toBe(want.text);
    expect(finish).toBe(
      want.tokens.length === REQUESTS[index].maxTokens && want.tokens.at(-1) !== 0 ? 'length' : 'stop',
    );
    expect(usage?.completion_tokens).toBe(want.tokens.length);
  }
  const tokens = results.reduce((a, r) => a + (r.usage?.completion_tokens ?? 0), 0);
  process.stderr.write(
    `load: ${TOTAL} requests, ${tokens} tokens in ${seconds.toFixed(1)} s (${(tokens / seconds).toFixed(0)} tokens/s), widest batch ${widest}\n`,
  );
  expect(widest).toBeGreaterThanOrEqual(8);
  expect(await eventually(() => server.scheduler.heldRows === 0)).toBe(true);
  expect(server.scheduler.activeRows + server.scheduler.queued + server.scheduler.prefilling).toBe(0);
  expect(tf.memory().numTensors).toBe(baseline);
});
