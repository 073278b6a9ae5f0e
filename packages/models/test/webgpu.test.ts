/**
 * The fixture checkpoints on webgpu, where core's WGSL programs (norms,
 * attention, activations) replace most of tfjs's kernels: logits against
 * transformers' and greedy output token for token. Needs a WebGPU adapter
 * (a GPU, or lavapipe: scripts/lavapipe.sh); skipped, saying why, without.
 */
import { join } from 'node:path';
import { type CausalLm, generate, initBackend, webGpuErrors } from '@specstream/core';
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

    const uploads = (work: () => void) => uploadsDuring(tf.backend(), work);

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

    // What the webgpu set's programs promise; the reference set runs tfjs's kernels.
    test.runIf(kernels === 'webgpu')(
      "a step runs only core's programs: embedding, fused products, rotary (llama, qwen2), the cache write, attention",
      async () => {
        const state = model.createState({ batch: 1, maxLength: 8 });
        const keys = await programsUsed(tf.backend(), () =>
          model.extendStep(state, [[1, 2]]).logits.dispose(),
        );
        model.disposeState(state);
        expect([...keys].sort()).toEqual([
          'specstreamAttention',
          'specstreamEmbed',
          'specstreamKvWrite',
          'specstreamLinear',
          ...(name === 'gpt2' ? [] : ['specstreamRotary']),
        ]);
      },
    );

    test.runIf(kernels === 'webgpu')(
      'a decode step uploads nothing: ids ride in uniforms, no gather, rotary tables only for rotary models',
      async () => {
        const state = model.createState({ batch: 2, maxLength: 8 });
        model
          .extendStep(
            state,
            [
              [1, 2, 3],
              [4, 5, 6],
            ],
            { logits: 'last' },
          )
          .logits.dispose();
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
      // Each weight moves by ≤ 2⁻¹¹ of itself (f16), ≤ 2⁻⁸ of its block's largest (q8): the
      // logits by a few of those of their scale (the 16-bit checkpoint test's bound), and not by nothing.
      { weights: 'f16', step: 2 ** -11 },
      { weights: 'q8', step: 2 ** -8 },
    ].map((f) => ({ name, ...f }) as { name: string; weights: 'f16' | 'q8'; step: number }),
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
