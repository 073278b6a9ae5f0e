/**
 * Speculative decoding on webgpu, where core's programs run the models and
 * greedy verification takes each position's argmax on the device (reading
 * integers, not logits). Needs a WebGPU adapter (a GPU, or lavapipe:
 * scripts/lavapipe.sh); skipped, saying why, without one.
 */
import { AbortError, generate, initBackend, randomCausalLm, webGpuErrors } from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, test } from 'vitest';
import { programsUsed, webgpuUnavailable } from '../../../test-support/webgpu-programs.js';
import { speculativeGenerate } from '../src/index.js';
import {
  collect,
  fixtureGreedy,
  loadFixture,
  noisyPair,
  plainGreedy,
  prompts,
  SMALL_LLAMA,
} from './helpers.js';
import { chiSquare, SAMPLING_CONFIG, wrongRule } from './sampling-law.js';

const unavailable = await webgpuUnavailable(initBackend, 'webgpu speculative tests');

describe.skipIf(unavailable !== undefined)('speculative decoding on webgpu', () => {
  test('greedy output equals plain greedy decoding for k = 1…6 and batched rows; argmax taken on the device', async () => {
    const { target, draft } = noisyPair(SMALL_LLAMA, 0.02);
    const batch = prompts(3, SMALL_LLAMA.vocabSize, 11, 1, 15);
    const want = await Promise.all(batch.map((p) => plainGreedy(target, p, 24)));
    const before = tf.memory().numTensors;
    for (const verifyOnDevice of [false, true]) {
      for (const k of [1, 2, 4, 6]) {
        let got: number[][] = [];
        const keys = await programsUsed(tf.backend(), async () => {
          const run = speculativeGenerate({
            target,
            draft,
            k,
            prompt: batch,
            maxNewTokens: 24,
            verifyOnDevice,
          });
          got = await collect(run, 3);
        });
        expect(got).toEqual(want);
        expect(keys.has('specstreamGreedyRows')).toBe(true);
      }
    }
    expect(tf.memory().numTensors).toBe(before);
    target.dispose();
    draft.dispose();
  });

  test('greedy drafting chains its steps on the device (no read per step) and proposes what the host path does', async () => {
    const { target, draft } = noisyPair(SMALL_LLAMA, 0.05);
    // The same draft model without extendStepOnDevice takes the read-per-step path.
    const hostOnly = { ...draft, extendStepOnDevice: undefined };
    let deviceSteps = 0;
    const counted: typeof draft = {
      ...draft,
      extendStepOnDevice: (state, ids, options) => {
        deviceSteps++;
        return draft.extendStepOnDevice(state, ids, options);
      },
    };
    const batch = prompts(4, SMALL_LLAMA.vocabSize, 3, 2, 15);
    const want = await Promise.all(batch.map((p) => plainGreedy(target, p, 24)));
    const before = tf.memory().numTensors;
    for (const k of [1, 2, 5]) {
      const device = speculativeGenerate({ target, draft: counted, k, prompt: batch, maxNewTokens: 24 });
      const host = speculativeGenerate({ target, draft: hostOnly, k, prompt: batch, maxNewTokens: 24 });
      expect(await collect(device, batch.length)).toEqual(want);
      expect(await collect(host, batch.length)).toEqual(want);
      // Same proposals, hence the same acceptance counts.
      expect(device.metrics.acceptedTokens).toBe(host.metrics.acceptedTokens);
      expect(device.metrics.draftedTokens).toBe(host.metrics.draftedTokens);
      expect(device.metrics.acceptedTokens).toBeGreaterThan(0);
    }
    expect(deviceSteps).toBeGreaterThan(0); // k = 2 and 5 fed picks back on device
    expect(tf.memory().numTensors).toBe(before);
    target.dispose();
    draft.dispose();
  });

  test('with verifyOnDevice a greedy iteration reads the device once: the draft picks go into the verify pass there', async () => {
    const { target, draft } = noisyPair(SMALL_LLAMA, 0.05);
    const batch = prompts(3, SMALL_LLAMA.vocabSize, 5, 2, 15);
    const want = await Promise.all(batch.map((p) => plainGreedy(target, p, 30)));
    const backend = tf.backend() as { read(dataId: object): Promise<unknown> };
    const read = backend.read.bind(backend);
    let reads = 0;
    backend.read = (dataId) => {
      reads++;
      return read(dataId);
    };
    try {
      // Without it, or with a target that has no device entry point, the draft's picks are read,
      // then the verify pass's.
      const hostTarget = { ...target, extendStepOnDevice: undefined };
      for (const [model, verifyOnDevice, readsPerIteration] of [
        [target, true, 1],
        [target, false, 2],
        [hostTarget, true, 2],
      ] as const) {
        for (const k of [1, 3, 5]) {
          reads = 0;
          const options = { target: model, draft, k, prompt: batch, maxNewTokens: 30, verifyOnDevice };
          const run = speculativeGenerate(options);
          expect(await collect(run, batch.length)).toEqual(want);
          const { iterations, draftedTokens } = run.metrics;
          expect(draftedTokens).toBeGreaterThan(0);
          // The prefill's first tokens are one read; the last iterations may draft nothing (k shrinks
          // to what is still needed) and then read once, through the plain path.
          expect(reads).toBeGreaterThan(iterations);
          expect(reads).toBeLessThanOrEqual(1 + readsPerIteration * iterations);
          if (readsPerIteration === 1) expect(reads).toBe(1 + iterations);
          else expect(reads).toBeGreaterThan(1 + iterations);
        }
      }
    } finally {
      backend.read = read;
    }
    target.dispose();
    draft.dispose();
  });

  test('an abort in the middle of an on-device draft chain rejects, leaving no tensors and the models usable', async () => {
    const { target, draft } = noisyPair(SMALL_LLAMA, 0.02);
    const controller = new AbortController();
    let chained = 0;
    const aborting: typeof draft = {
      ...draft,
      extendStepOnDevice: (...args) => {
        // The fifth chained step (second iteration at k = 4) aborts; the chain checks before its next step.
        if (++chained === 5) controller.abort(new AbortError('stopped mid-chain'));
        return draft.extendStepOnDevice(...args);
      },
    };
    const before = tf.memory().numTensors;
    const run = speculativeGenerate({
      target,
      draft: aborting,
      k: 4,
      prompt: [1, 2, 3],
      maxNewTokens: 40,
      signal: controller.signal,
    });
    await expect(collect(run)).rejects.toThrow('stopped mid-chain');
    expect(chained).toBe(5);
    expect(tf.memory().numTensors).toBe(before);
    const [tokens] = await collect(
      speculativeGenerate({ target, draft, k: 4, prompt: [1, 2, 3], maxNewTokens: 6 }),
    );
    expect(tokens).toEqual(await plainGreedy(target, [1, 2, 3], 6));
    target.dispose();
    draft.dispose();
  });

  test("a draft whose logits turn NaN fails with the host path's error, leaving no tensors", async () => {
    const { target, draft: inner } = noisyPair(SMALL_LLAMA, 0.02);
    let calls = 0;
    // From the fourth draft pass on (prefill, catch-up or chained step), every logit is NaN.
    const poison = <R extends { logits: tf.Tensor3D }>(result: R): R => {
      if (++calls < 4) return result;
      const logits = tf.tidy(() => tf.mul(result.logits, Number.NaN)) as tf.Tensor3D;
      result.logits.dispose();
      return { ...result, logits };
    };
    const draft: typeof inner = {
      ...inner,
      extendStep: (...args) => poison(inner.extendStep(...args)),
      extendStepOnDevice: (...args) => poison(inner.extendStepOnDevice(...args)),
    };
    const hostOnly = { ...draft, extendStepOnDevice: undefined };
    const failure = async (d: typeof draft | typeof hostOnly, verifyOnDevice = false) => {
      calls = 0;
      const before = tf.memory().numTensors;
      const message = await collect(
        speculativeGenerate({ target, draft: d, k: 4, prompt: [1, 2, 3], maxNewTokens: 20, verifyOnDevice }),
      ).then(
        () => undefined,
        (e: Error) => e.message,
      );
      expect(tf.memory().numTensors).toBe(before);
      return message;
    };
    const hostError = await failure(hostOnly);
    expect(hostError).toMatch(/NaN/);
    expect(await failure(draft)).toBe(hostError);
    expect(await failure(draft, true)).toBe(hostError);
    target.dispose();
    inner.dispose();
  });

  test("the gpt2 fixture drafting for itself reproduces transformers' greedy output", async () => {
    const [target, draft] = [await loadFixture('gpt2'), await loadFixture('gpt2')];
    const { prompt, output } = await fixtureGreedy('gpt2');
    const run = speculativeGenerate({
      target,
      draft,
      k: 3,
      prompt,
      maxNewTokens: output.length - prompt.length,
    });
    const [tokens] = await collect(run);
    expect([...prompt, ...tokens]).toEqual(output);
    expect(run.rates().acceptanceRate).toBe(1);
    target.dispose();
    draft.dispose();
  });

  test('speculative sampling reproduces the target distribution (chi-square over 2,000 rows; a wrong rule fails)', async () => {
    const target = randomCausalLm(SAMPLING_CONFIG, { seed: 11, std: 0.08 });
    const draft = randomCausalLm(SAMPLING_CONFIG, { seed: 29, std: 0.08 });
    // 2,000 rows (the wasm suite takes 20,000): more than 16 rows, so starts go in a buffer, and the
    // attention program's workgroups stay under one dispatch axis's limit.
    const one = { target, draft, rows: 2000, temperature: 1, topK: 0, k: 2, seed: 7 };
    const good = await chiSquare(one);
    expect(good.minExpected).toBeGreaterThan(20);
    expect(good.rates.acceptanceRate).toBeGreaterThan(0.2);
    expect(good.rates.acceptanceRate).toBeLessThan(0.9);
    expect(good.chi2).toBeLessThan(good.critical);
    expect((await chiSquare({ ...one, rule: wrongRule })).chi2).toBeGreaterThan(good.critical * 3);
    target.dispose();
    draft.dispose();
  });

  test('a target whose logits turn NaN fails with the same error as plain decoding, leaving no tensors', async () => {
    const { target: inner, draft } = noisyPair(SMALL_LLAMA, 0.02);
    // Once the first token is out (after the prefill), every pass's logits are NaN, whether its
    // ids came from the host or were left on the device.
    let armed = false;
    let firstPoisoned: string | undefined;
    const poison = <R extends { logits: tf.Tensor3D }>(result: R, entry: string): R => {
      if (!armed) return result;
      firstPoisoned ??= entry;
      const logits = tf.tidy(() => tf.mul(result.logits, Number.NaN)) as tf.Tensor3D;
      result.logits.dispose();
      return { ...result, logits };
    };
    const target: typeof inner = {
      ...inner,
      extendStep: (...args) => poison(inner.extendStep(...args), 'host ids'),
      extendStepOnDevice: (...args) => poison(inner.extendStepOnDevice(...args), 'device ids'),
    };
    const failure = async (events: AsyncIterable<unknown>) => {
      armed = false;
      firstPoisoned = undefined;
      try {
        for await (const _ of events) armed = true;
      } catch (e) {
        return (e as Error).message;
      }
      return undefined;
    };
    const prompt = [1, 2, 3];
    const plainError = await failure(generate({ model: target, prompt, maxNewTokens: 10 }));
    expect(plainError).toMatch(/NaN/);
    const before = tf.memory().numTensors;
    for (const [verifyOnDevice, entry] of [
      [false, 'host ids'],
      [true, 'device ids'],
    ] as const) {
      const run = speculativeGenerate({ target, draft, k: 3, prompt, maxNewTokens: 10, verifyOnDevice });
      expect(await failure(run)).toBe(plainError);
      // The failing pass was the first verify pass (with verifyOnDevice, on the draft's picks left on the device).
      expect(firstPoisoned).toBe(entry);
      expect(run.metrics.iterations).toBe(0);
    }
    expect(tf.memory().numTensors).toBe(before);
    inner.dispose();
    draft.dispose();
  });
});

// Dawn skips a command that fails validation and carries on: results would be silently wrong.
afterAll(() => {
  if (unavailable === undefined) expect(webGpuErrors()).toEqual([]);
});
