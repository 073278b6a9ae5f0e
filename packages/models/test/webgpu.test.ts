/**
 * The fixture checkpoints on webgpu, where core's WGSL programs (norms,
 * attention, activations) replace most of tfjs's kernels: logits against
 * transformers' and greedy output token for token. Needs a WebGPU adapter
 * (a GPU, or lavapipe: scripts/lavapipe.sh); skipped, saying why, without.
 */
import { join } from 'node:path';
import {
  type CausalLm,
  createSampler,
  DEFAULT_PREFILL_BUCKETS,
  generate,
  initBackend,
  prefill,
  webGpuErrors,
} from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type KernelSetCase, kernelSetCases } from '../../../test-support/kernel-sets.js';
import { maxAbsDiff } from '../../../test-support/max-abs-diff.js';
import { programsUsed, uploadsDuring, webgpuUnavailable } from '../../../test-support/webgpu-programs.js';
import { loadModel } from '../src/load-model.js';
import { openSafetensors } from '../src/safetensors/file.js';
import { loadWhisper } from '../src/whisper/index.js';
import { FIXTURES_DIR } from './fixtures.js';

const unavailable = await webgpuUnavailable(initBackend, 'webgpu model tests');

/** Runs `work` on the webgpu set's per-op path (tfjs's program runner), recorded passes off. */
function perOp<T>(work: () => T): T {
  process.env.SPECSTREAM_WEBGPU_RECORD = 'off';
  try {
    return work();
  } finally {
    delete process.env.SPECSTREAM_WEBGPU_RECORD;
  }
}

interface BackendQueue {
  queue: { submit(buffers: unknown[]): void };
}

/** How many command buffers `work` submits to the webgpu backend's queue. */
async function submissionsDuring(work: () => void): Promise<number> {
  const { queue } = tf.backend() as unknown as BackendQueue;
  const submit = queue.submit;
  let count = 0;
  queue.submit = function (this: unknown, buffers) {
    count += buffers.length;
    return submit.call(this, buffers);
  };
  try {
    work();
  } finally {
    queue.submit = submit;
  }
  return count;
}

/** Every kernel set the webgpu backend has (the webgpu set, the reference set), each over every fixture. */
const SETS: KernelSetCase[] =
  unavailable === undefined
    ? await kernelSetCases(['webgpu'])
    : [{ backend: 'webgpu', kernels: 'webgpu', label: 'webgpu set on webgpu' }];

describe
  .skipIf(unavailable !== undefined)
  .each(SETS.flatMap((c) => ['llama', 'qwen2', 'gpt2'].map((name) => ({ ...c, name }))))(
  '$name checkpoint, $label',
  ({ kernels, name }) => {
    let model: CausalLm;
    let ref: { ids: number[][]; logits: Float32Array; prompt: number[]; output: number[] };
    let tensorsBefore: number;

    beforeAll(async () => {
      await initBackend({ backend: 'webgpu' });
      const file = await openSafetensors(join(FIXTURES_DIR, name, 'reference.safetensors'));
      const values = async (key: string) => (await file.readValues(key)).values;
      const ids = Array.from(await values('input_ids'));
      const width = file.info('input_ids').shape[1];
      ref = {
        ids: Array.from({ length: ids.length / width }, (_, r) => ids.slice(r * width, (r + 1) * width)),
        logits: (await values('logits')) as Float32Array,
        prompt: Array.from(await values('greedy_prompt')),
        output: Array.from(await values('greedy_output')),
      };
      await file.close();
      tensorsBefore = tf.memory().numTensors;
      const loaded = await loadModel(join(FIXTURES_DIR, name), { kernels });
      if (loaded.kind !== 'causal-lm') throw new Error('expected a causal LM');
      model = loaded.model;
    });
    afterAll(() => {
      model?.dispose();
      expect(tf.memory().numTensors).toBe(tensorsBefore);
    });

    const uploads = (work: () => void) => uploadsDuring(tf.backend(), () => perOp(work));

    /** Every position's logits, fed in chunks ending at `splits`. */
    async function logits(splits: number[]): Promise<Float32Array> {
      const T = ref.ids[0].length;
      const V = model.vocabSize;
      const out = new Float32Array(ref.ids.length * T * V);
      const state = model.createState({ batch: ref.ids.length, maxLength: T });
      let at = 0;
      for (const end of [...splits, T]) {
        const result = model.extendStep(
          state,
          ref.ids.map((row) => row.slice(at, end)),
        );
        const values = (await result.logits.data()) as Float32Array;
        result.logits.dispose();
        const steps = end - at;
        for (let r = 0; r < ref.ids.length; r++)
          out.set(values.subarray(r * steps * V, (r + 1) * steps * V), (r * T + at) * V);
        at = end;
      }
      model.disposeState(state);
      return out;
    }

    // What the webgpu set's programs promise; the reference set runs tfjs's kernels. These two
    // watch tfjs's program runner, which a recorded pass bypasses: they run the per-op path.
    test.runIf(kernels === 'webgpu')(
      "a step runs only core's programs: embedding, fused products, the cache write and attention (which rotate keys and queries as they read them)",
      async () => {
        const state = model.createState({ batch: 1, maxLength: 8 });
        const keys = await programsUsed(tf.backend(), () =>
          perOp(() => model.extendStep(state, [[1, 2]]).logits.dispose()),
        );
        model.disposeState(state);
        expect([...keys].sort()).toEqual([
          'specstreamAttention',
          'specstreamEmbed',
          'specstreamKvWrite',
          'specstreamLinear',
        ]);
      },
    );

    test.runIf(kernels === 'webgpu')(
      'a decode step uploads nothing: ids ride in uniforms, no gather, rotary tables only for rotary models',
      async () => {
        const state = model.createState({ batch: 2, maxLength: 8 });
        perOp(() =>
          model
            .extendStep(
              state,
              [
                [1, 2, 3],
                [4, 5, 6],
              ],
              { logits: 'last' },
            )
            .logits.dispose(),
        );
        const one = await uploads(() =>
          model.extendStep(state, [[7], [8]], { logits: 'last' }).logits.dispose(),
        );
        // Rotary models upload one cos|sin table per pass ([rows, headDim]), shared by every layer.
        expect(one).toEqual(name === 'gpt2' ? [] : [[2, model.config.headDim]]);
        // A catch-up of two tokens per row, logits of the last: the head picks the rows, no index upload.
        const two = await uploads(() =>
          model
            .extendStep(
              state,
              [
                [1, 2],
                [3, 4],
              ],
              { logits: 'last' },
            )
            .logits.dispose(),
        );
        expect(two).toEqual(name === 'gpt2' ? [] : [[4, model.config.headDim]]);
        model.disposeState(state);
      },
    );

    /**
     * A prompt of each reference row, then decode steps teacher-forced on the rest of it, with a
     * rollback of the first row (ragged lengths) and a step whose ids are on the device; every
     * step's logits. `watch` sees each step after the first of its shape.
     */
    async function decodeRun(watch?: (step: () => void) => Promise<void>): Promise<Float32Array[]> {
      const rows = ref.ids.length;
      const T = ref.ids[0].length;
      const prompt = Math.min(3, T - 6);
      const state = model.createState({ batch: rows, maxLength: T });
      const out: Float32Array[] = [];
      const step = async (ids: number[][] | tf.Tensor2D, watched: boolean) => {
        let logits: tf.Tensor | undefined;
        const run = () => {
          logits = (
            ids instanceof tf.Tensor ? model.extendStepOnDevice(state, ids) : model.extendStep(state, ids)
          ).logits;
        };
        if (watched && watch) await watch(run);
        else run();
        out.push((await logits!.data()) as Float32Array);
        logits!.dispose();
      };
      await step(
        ref.ids.map((row) => row.slice(0, prompt)),
        false,
      );
      for (let at = prompt; at < prompt + 3; at++)
        await step(
          ref.ids.map((row) => [row[at]]),
          at > prompt,
        );
      // Row 0 drops its last token and takes it again: the rows' lengths differ for one step.
      model.rollback(
        state,
        ref.ids.map((_, r) => (r === 0 ? prompt + 2 : prompt + 3)),
      );
      await step(
        ref.ids.map((row, r) => [row[r === 0 ? prompt + 2 : prompt + 3]]),
        true,
      );
      const ids = tf.tensor2d(
        ref.ids.map((row, r) => [row[r === 0 ? prompt + 3 : prompt + 4]]),
        [rows, 1],
        'int32',
      );
      await step(ids, false);
      await step(ids, true);
      ids.dispose();
      model.disposeState(state);
      return out;
    }

    test.runIf(kernels === 'webgpu')(
      'a decode step of a recorded shape is one submission running no program through tfjs, with the per-op logits',
      async () => {
        const expected = await perOp(() => decodeRun());
        const got = await decodeRun(async (step) => {
          let submissions = 0;
          const keys = await programsUsed(tf.backend(), async () => {
            submissions = await submissionsDuring(step);
          });
          expect([...keys]).toEqual([]);
          expect(submissions).toBe(1);
        });
        expect(got.length).toBe(expected.length);
        for (const [i, values] of got.entries())
          expect([i, maxAbsDiff(values, expected[i])]).toEqual([i, expect.closeTo(0, 5)]);
      },
    );

    test.runIf(kernels === 'webgpu')(
      "a recorded step's logits stay as they were through later steps; its tape's GPU memory goes with the state",
      async () => {
        // A read submits tfjs's queued work, which releases the buffers it held.
        const flush = async () => {
          const t = tf.tidy(() => tf.add(tf.scalar(1), tf.scalar(1)));
          await t.data();
          t.dispose();
        };
        await flush();
        const before = tf.memory() as tf.MemoryInfo & { numBytesInGPU: number };
        const state = model.createState({ batch: 1, maxLength: 6 });
        model.extendStep(state, [[1, 2]]).logits.dispose();
        const kept = model.extendStep(state, [[3]]).logits;
        const first = Array.from(await kept.data());
        for (const id of [4, 5]) model.extendStep(state, [[id]]).logits.dispose();
        expect(Array.from(await kept.data())).toEqual(first);
        kept.dispose();
        model.disposeState(state);
        await flush();
        const after = tf.memory() as tf.MemoryInfo & { numBytesInGPU: number };
        expect([after.numTensors, after.numBytesInGPU]).toEqual([before.numTensors, before.numBytesInGPU]);
      },
    );

    test('logits match transformers (≤ 1e-4), whole and in chunks', async () => {
      expect(maxAbsDiff(await logits([]), ref.logits)).toBeLessThan(1e-4);
      // Split points inside the reference rows, whatever their length.
      const steps = ref.ids[0].length;
      for (const splits of [
        [1, 2, 3],
        [7, 8, 20],
      ].map((s) => s.filter((p) => p < steps)))
        expect(maxAbsDiff(await logits(splits), ref.logits)).toBeLessThan(1e-4);
    });

    test.runIf(kernels === 'webgpu')(
      'top-k sampling reads back candidates only and draws what the sampler draws from whole rows',
      async () => {
        const sampling = { temperature: 0.9, topK: 8, seed: 11 };
        const maxNewTokens = 12;
        const tensors = tf.memory().numTensors;
        const got: number[] = [];
        const programs = await programsUsed(tf.backend(), async () => {
          for await (const e of generate({ model, prompt: ref.prompt, maxNewTokens, sampling }))
            got.push(e.token);
        });
        expect(programs).toContain('specstreamTopKRows');
        expect(tf.memory().numTensors).toBe(tensors);
        // By hand: every logit read, the same seeded sampler.
        const sampler = createSampler(sampling);
        const state = model.createState({ batch: 1, maxLength: ref.prompt.length + maxNewTokens });
        const history = [...ref.prompt];
        let logits = prefill(model, state, [ref.prompt], {
          buckets: model.prefillBuckets ?? DEFAULT_PREFILL_BUCKETS,
        });
        const want: number[] = [];
        for (;;) {
          const values = (await logits.data()) as Float32Array;
          logits.dispose();
          const token = sampler.sample(values, history);
          want.push(token);
          history.push(token);
          if (want.length === maxNewTokens) break;
          logits = model.extendStep(state, [[token]]).logits;
        }
        model.disposeState(state);
        expect(got).toEqual(want);
      },
    );

    test.runIf(kernels === 'webgpu')(
      'greedy generation chained on the device gives what a host loop gives, a row stopping early',
      async () => {
        const prompts = ref.ids.map((row) => row.slice(0, 4));
        const maxNewTokens = 8;
        // By hand, a row at a time: every logit read, the argmax taken here.
        const byHand = async (prompt: number[]) => {
          const state = model.createState({ batch: 1, maxLength: prompt.length + maxNewTokens });
          let logits = model.extendStep(state, [prompt], { logits: 'last' }).logits;
          const out: number[] = [];
          for (;;) {
            const values = (await logits.data()) as Float32Array;
            logits.dispose();
            out.push(values.indexOf(Math.max(...values)));
            if (out.length === maxNewTokens) break;
            logits = model.extendStep(state, [[out[out.length - 1]]]).logits;
          }
          model.disposeState(state);
          return out;
        };
        const full = await Promise.all(prompts.map(byHand));
        // Row 0 stops at its third token (and every row at that token's first appearance).
        const stop = full[0][2];
        const expected = full.map((seq) =>
          seq.slice(0, seq.indexOf(stop) < 0 ? seq.length : seq.indexOf(stop) + 1),
        );
        const tensors = tf.memory().numTensors;
        const got: number[][] = prompts.map(() => []);
        for await (const e of generate({ model, prompt: prompts, maxNewTokens, stopTokens: [stop] }))
          got[e.row].push(e.token);
        expect(got).toEqual(expected);
        expect(tf.memory().numTensors).toBe(tensors);
      },
    );

    test('greedy generation reproduces greedy_output token for token', async () => {
      const ids: number[] = [];
      const maxNewTokens = ref.output.length - ref.prompt.length;
      for await (const e of generate({ model, prompt: ref.prompt, maxNewTokens })) ids.push(e.token);
      expect([...ref.prompt, ...ids]).toEqual(ref.output);
    });
  },
);

describe.skipIf(unavailable !== undefined).each(
  ['llama', 'qwen2', 'gpt2'].flatMap((name) =>
    [
      // Each weight moves by ≤ 2⁻¹¹ of itself (f16), ≤ 2⁻⁸ (q8) or 1/15 (q4) of its block's
      // largest: the logits by a few of those of their scale (the 16-bit checkpoint test's
      // bound), and not by nothing.
      { weights: 'f16', step: 2 ** -11 },
      { weights: 'q8', step: 2 ** -8 },
      { weights: 'q4', step: 1 / 15 },
    ].map((f) => ({ name, ...f }) as { name: string; weights: 'f16' | 'q8' | 'q4'; step: number }),
  ),
)('$name with $weights weights on webgpu', ({ name, weights, step }) => {
  // Every product with wide enough inputs and the head hold the format, unpacked in the programs.
  test('logits match transformers within the format precision; nothing is left', async () => {
    await initBackend({ backend: 'webgpu' });
    const file = await openSafetensors(join(FIXTURES_DIR, name, 'reference.safetensors'));
    const ids = Array.from((await file.readValues('input_ids')).values);
    const width = file.info('input_ids').shape[1];
    const logits = (await file.readValues('logits')).values as Float32Array;
    await file.close();
    const rows = Array.from({ length: ids.length / width }, (_, r) => ids.slice(r * width, (r + 1) * width));
    const before = tf.memory().numTensors;
    const loaded = await loadModel(join(FIXTURES_DIR, name), { kernels: 'webgpu', weights });
    if (loaded.kind !== 'causal-lm') throw new Error('expected a causal LM');
    const model = loaded.model;
    const state = model.createState({ batch: rows.length, maxLength: width });
    const out = model.extendStep(state, rows).logits;
    const err = maxAbsDiff(await out.data(), logits);
    out.dispose();
    model.disposeState(state);
    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
    const scale = Math.max(...Array.from(logits, Math.abs));
    expect(err).toBeLessThan(8 * step * scale);
    expect(err).toBeGreaterThan(0);
    expect(webGpuErrors()).toEqual([]);
  });
});

describe.skipIf(unavailable !== undefined)('whisper checkpoint on webgpu', () => {
  test('encoder output and decoder logits match transformers (≤ 1e-4), no tensor left', async () => {
    await initBackend({ backend: 'webgpu' });
    const file = await openSafetensors(join(FIXTURES_DIR, 'whisper', 'reference.safetensors'));
    const features = (await file.readTensor('input_features')) as tf.Tensor3D;
    const encoderOutput = (await file.readValues('encoder_output')).values as Float32Array;
    const ids = Array.from((await file.readValues('decoder_input_ids')).values);
    const logits = (await file.readValues('logits')).values as Float32Array;
    await file.close();
    const before = tf.memory().numTensors;
    const whisper = await loadWhisper(join(FIXTURES_DIR, 'whisper'));
    const encoded = whisper.encoder.encode(features);
    expect(maxAbsDiff(await encoded.data(), encoderOutput)).toBeLessThan(1e-4);
    const state = whisper.decoder.createState({ batch: 1, maxLength: ids.length });
    whisper.decoder.setEncoderOutput(state, encoded);
    const step = whisper.decoder.extendStep(state, [ids]);
    expect(maxAbsDiff(await step.logits.data(), logits)).toBeLessThan(1e-4);
    step.logits.dispose();
    whisper.decoder.disposeState(state);
    encoded.dispose();
    whisper.dispose();
    expect(tf.memory().numTensors).toBe(before);
    features.dispose();
  });
});

// Dawn skips a command that fails validation and carries on: results would be silently wrong.
afterAll(() => {
  if (unavailable === undefined) expect(webGpuErrors()).toEqual([]);
});
