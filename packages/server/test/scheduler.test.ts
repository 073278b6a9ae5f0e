import { type CausalLm, generate } from '@specstream/core';
import type { Tokenizer } from '@specstream/models';
import type { IterationReport, KPolicy } from '@specstream/speculative';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Scheduler } from '../src/index.js';
import { loadShippedPair, TEXTS } from './helpers.js';

let target: CausalLm;
let draft: CausalLm;
let tokenizer: Tokenizer;

beforeAll(async () => {
  ({ target, draft, tokenizer } = await loadShippedPair());
});
afterAll(() => {
  target?.dispose();
  draft?.dispose();
});

async function alone(prompt: number[], maxNewTokens: number): Promise<number[]> {
  const out: number[] = [];
  for await (const event of generate({ model: target, prompt, maxNewTokens, stopTokens: [0] }))
    out.push(event.token);
  return out;
}

describe('scheduler', () => {
  test.each([
    ['adaptive k', undefined],
    ['k 3', 3],
  ])('staggered greedy requests in one batch each equal the target alone (%s)', async (_, k) => {
    const before = tf.memory().numTensors;
    let drafted = 0;
    let widest = 0;
    const scheduler = new Scheduler({
      target,
      draft,
      maxBatch: 4,
      prefillRows: 2,
      k,
      onStep: (step) => {
        drafted += step.drafted ?? 0;
        widest = Math.max(widest, scheduler.activeRows);
      },
    });
    const prompts = TEXTS.map((t) => tokenizer.encode(t));
    const lengths = [24, 40, 17, 33, 29, 12];
    const runs = prompts.map(async (prompt, i) => {
      await new Promise((resolve) => setTimeout(resolve, i * 30));
      const tokens: number[] = [];
      const result = await scheduler.submit({
        prompt,
        maxTokens: lengths[i],
        stopTokens: [0],
        onTokens: (ts) => {
          tokens.push(...ts);
          return undefined;
        },
      });
      return { tokens, result };
    });
    const results = await Promise.all(runs);
    for (const [i, { tokens, result }] of results.entries()) {
      expect(tokens, `request ${i}`).toEqual(await alone(prompts[i], lengths[i]));
      expect(result.completionTokens).toBe(tokens.length);
    }
    // The batch grew to several rows, and the draft proposed.
    expect(widest).toBeGreaterThanOrEqual(3);
    expect(drafted).toBeGreaterThan(0);
    expect(scheduler.activeRows).toBe(0);
    expect(scheduler.heldRows).toBe(0);
    await scheduler.close();
    expect(tf.memory().numTensors).toBe(before);
  });

  test('the k policy observes every step, plain ones (k = 0) included, with its whole verify time', async () => {
    const reports: IterationReport[] = [];
    let turn = 0;
    // Alternates plain and drafted steps, the choice adaptiveK weighs with these timings.
    const alternating = (): KPolicy => ({
      maxK: 1,
      next: () => turn++ % 2,
      observe: (report) => reports.push(report),
    });
    const before = tf.memory().numTensors;
    const scheduler = new Scheduler({ target, draft, maxBatch: 2, kPolicy: alternating });
    const prompts = TEXTS.slice(0, 2).map((t) => tokenizer.encode(t));
    const outputs = await Promise.all(
      prompts.map(async (prompt) => {
        const tokens: number[] = [];
        await scheduler.submit({
          prompt,
          maxTokens: 20,
          stopTokens: [0],
          onTokens: (ts) => {
            tokens.push(...ts);
            return undefined;
          },
        });
        return tokens;
      }),
    );
    for (const [i, tokens] of outputs.entries()) expect(tokens).toEqual(await alone(prompts[i], 20));
    const plain = reports.filter((r) => r.k === 0);
    const drafted = reports.filter((r) => r.k === 1);
    expect(plain.length).toBeGreaterThan(0);
    expect(drafted.length).toBeGreaterThan(0);
    for (const r of plain) {
      expect(r.draftMs).toBeLessThan(r.verifyMs);
      expect(r.proposed.every((m) => m === 0)).toBe(true);
    }
    expect(reports.every((r) => r.verifyMs > 0)).toBe(true);
    await scheduler.close();
    expect(tf.memory().numTensors).toBe(before);
  });
});
