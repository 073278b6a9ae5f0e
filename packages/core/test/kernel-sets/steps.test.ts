/**
 * Each kernel set's steps against the reference set's on the same inputs:
 * the products with every epilogue (norm, activation, gated, residual), the
 * embedding, and the final norm + head for every logits selection, tied and
 * untied. Runs for every set each backend here has (webgpu where an adapter
 * exists: this file is one of the webgpu suites), so a new set inherits it.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, test } from 'vitest';
import { type KernelSetCase, kernelSetCases } from '../../../../test-support/kernel-sets.js';
import { maxAbsDiff } from '../../../../test-support/max-abs-diff.js';
import { initBackend } from '../../src/backend.js';
import type { CausalLmConfig } from '../../src/causal-lm.js';
import { kernelSet } from '../../src/kernel-sets/index.js';
import type { ModelKernels, OutputWeights, Pass } from '../../src/kernel-sets/kernel-set.js';
import { createKvCache } from '../../src/kv-cache/index.js';
import { disposeLinear, type Linear } from '../../src/transformer/linear.js';
import { TINY_CONFIGS } from '../models.js';

const CASES: KernelSetCase[] = (await kernelSetCases(['cpu', 'wasm', 'webgpu'])).filter(
  (c) => c.kernels !== 'reference',
);

/** Seeded normal values: every case sees the same inputs. */
const normal = (shape: number[], seed: number, std = 1) => tf.randomNormal(shape, 0, std, 'float32', seed);

function clone(l: Linear): Linear {
  return l.bias ? { weight: l.weight.clone(), bias: l.bias.clone() } : { weight: l.weight.clone() };
}

/** A pass over a fresh cache: the steps that read `pass()` need one. */
function passOf(config: CausalLmConfig, lengths: number[], steps: number): { pass: Pass; dispose(): void } {
  const batch = lengths.length;
  const cache = createKvCache({
    batch,
    layers: 1,
    kvHeads: config.kvHeads,
    headDim: config.headDim,
    capacity: Math.max(...lengths) + steps,
  });
  const positions = new Int32Array(batch * steps);
  for (let r = 0; r < batch; r++) for (let s = 0; s < steps; s++) positions[r * steps + s] = lengths[r] + s;
  return {
    pass: { batch, steps, lengths: Int32Array.from(lengths), positions, cache },
    dispose: () => cache.dispose(),
  };
}

function outputWeights(config: CausalLmConfig, tied: boolean, seed: number): OutputWeights {
  const { vocabSize: V, hiddenSize: d } = config;
  return {
    embedTokens: normal([V, d], seed) as tf.Tensor2D,
    embedPositions:
      config.positions.kind === 'learned'
        ? (normal([config.positions.maxPositions, d], seed + 1) as tf.Tensor2D)
        : undefined,
    finalNorm: {
      weight: tf.tidy(() => tf.add(1, normal([d], seed + 2, 0.1))) as tf.Tensor1D,
      bias: config.norm === 'layer' ? (normal([d], seed + 3, 0.1) as tf.Tensor1D) : undefined,
    },
    lmHead: tied ? undefined : (normal([d, V], seed + 4, 0.2) as tf.Tensor2D),
  };
}

const cloneOutput = (o: OutputWeights): OutputWeights => ({
  embedTokens: (o.embedTokens as tf.Tensor2D).clone(),
  embedPositions: o.embedPositions?.clone(),
  finalNorm: { weight: o.finalNorm.weight.clone(), bias: o.finalNorm.bias?.clone() },
  lmHead: o.lmHead?.clone(),
});

describe.skipIf(CASES.length === 0).each(CASES)(
  '$label against the reference set',
  ({ backend, kernels }) => {
    test.each([
      [1, undefined, undefined, false, false],
      [3, 'rms', undefined, false, true],
      [5, 'layer', 'gelu_tanh', false, true],
      [2, 'rms', 'silu', true, false],
      [4, undefined, 'relu', false, true],
    ] as const)(
      'linear of %i rows (norm %s, activation %s, gated %s, residual %s) equals the reference',
      async (rows, norm, activation, gated, residual) => {
        await initBackend({ backend });
        const [inDim, outDim] = [32, gated ? 2 * 24 : 24];
        const layer: Linear = {
          weight: normal([inDim, outDim], 11, 0.2) as tf.Tensor2D,
          bias: normal([outDim], 12) as tf.Tensor1D,
        };
        const x = tf.tidy(() => tf.add(normal([rows, inDim], 13), 0.5)) as tf.Tensor2D;
        const res = normal([rows, gated ? outDim / 2 : outDim], 14) as tf.Tensor2D;
        const options = {
          norm: norm && { kind: norm, eps: 1e-5 },
          activation,
          gated,
          residual: residual ? res : undefined,
        };
        const config = TINY_CONFIGS.llama;
        const out = async (name: 'reference' | typeof kernels) => {
          const set = kernelSet(name);
          const prepared = set.prepareLinear(clone(layer));
          const k = set.forModel(config, outputWeights(config, true, 1));
          // Steps run inside the caller's scope (the model's tf.tidy): intermediates are its to free.
          const y = tf.tidy(() => k.linear(x, prepared, options));
          const values = await y.data();
          tf.dispose(y);
          k.dispose();
          disposeLinear(prepared);
          return values;
        };
        const before = tf.memory().numTensors;
        const want = await out('reference');
        const have = await out(kernels);
        expect(tf.memory().numTensors).toBe(before);
        expect(maxAbsDiff(have, want)).toBeLessThan(1e-4 * Math.max(1, ...Array.from(want, Math.abs)));
        tf.dispose([layer.weight, layer.bias!, x, res]);
      },
    );

    test.each(
      Object.entries(TINY_CONFIGS).flatMap(([name, config]) =>
        [true, false].map((tied) => ({ name, config, tied })),
      ),
    )(
      'embedding and head of $name (tied $tied) equal the reference for every selection',
      async ({ config, tied }) => {
        await initBackend({ backend });
        const given = outputWeights(config, tied, 21);
        const lengths = [3, 0];
        const steps = 3;
        const ids = Int32Array.from(
          { length: lengths.length * steps },
          (_, i) => (i * 7 + 2) % config.vocabSize,
        );
        const x = normal([lengths.length * steps, config.hiddenSize], 22) as tf.Tensor2D;
        const before = tf.memory().numTensors;
        // Both sets take ownership of their copy of the weights and free it on dispose.
        const owned = countTensors(given);
        /** The embedding and each selection's logits, computed in one pass, then read. */
        const run = async (k: ModelKernels) => {
          const { pass, dispose } = passOf(config, lengths, steps);
          k.beginPass(pass);
          const outputs: Record<string, tf.Tensor> = {};
          try {
            outputs.embedded = tf.tidy(() => k.embed(ids));
            for (const selection of ['all', 'last', [2, 0]] as const) {
              outputs[JSON.stringify(selection)] = tf.tidy(() => k.logits(x, selection as 'all'));
            }
          } finally {
            k.endPass();
            dispose();
          }
          const values: Record<string, Float32Array> = {};
          for (const [key, t] of Object.entries(outputs)) values[key] = (await t.data()) as Float32Array;
          tf.dispose(Object.values(outputs));
          return values;
        };
        const reference = kernelSet('reference').forModel(config, cloneOutput(given));
        const want = await run(reference);
        reference.dispose();
        const own = kernelSet(kernels).forModel(config, given);
        const have = await run(own);
        own.dispose();
        for (const key of Object.keys(want)) {
          expect(maxAbsDiff(have[key], want[key]), key).toBeLessThan(
            1e-4 * Math.max(1, ...Array.from(want[key], Math.abs)),
          );
        }
        x.dispose();
        expect(tf.memory().numTensors).toBe(before - owned - 1);
      },
    );
  },
);

/** Tensors an OutputWeights holds (the set takes ownership of them). */
function countTensors(o: OutputWeights): number {
  return [o.embedTokens, o.embedPositions, o.finalNorm.weight, o.finalNorm.bias, o.lmHead].filter(Boolean)
    .length;
}
