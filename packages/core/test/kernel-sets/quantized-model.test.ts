/**
 * Whole decoders with q8 and q4 weights (the wasm set's quantized linear
 * kernels) against their f32 selves. Each quantized product computes
 * x̂·Ŵ: Ŵ the dequantized weight, x̂ the activations rounded to int8 per
 * block of 32. So the same model run by the reference set on the
 * dequantized weights differs only by x's rounding, at most half an int8
 * step (2⁻⁸ of a block's largest |x|) per input of each product on the path.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, test } from 'vitest';
import { initBackend } from '../../src/backend.js';
import {
  type CausalLm,
  type CausalLmConfig,
  type CausalLmLayerWeights,
  createCausalLm,
  type PreparedCausalLmLayer,
  prepareCausalLmLayer,
} from '../../src/causal-lm.js';
import { kernelSet } from '../../src/kernel-sets/index.js';
import {
  dequantizeColumns,
  dequantizeMatrix,
  isQuantMatrix,
  type QuantMatrix,
} from '../../src/kernel-sets/wasm/quant-matrix.js';
import { weightArena } from '../../src/kernel-sets/wasm/weight-arena.js';
import { randomCausalLmWeights, TINY_LLAMA_SHAPE } from '../../src/random-model.js';
import { type DenseLayer, disposeLinear, type Linear } from '../../src/transformer/linear.js';
import { cloneWeights, disposeWeights } from '../reference-forward.js';

/** Decoders whose every product takes a multiple of 32 inputs, so all of them quantize. */
const CONFIGS: Record<string, CausalLmConfig> = {
  llama: { ...TINY_LLAMA_SHAPE, vocabSize: 96, hiddenSize: 64, heads: 4, kvHeads: 2, headDim: 16 },
  gpt2: {
    vocabSize: 80,
    hiddenSize: 64,
    layers: 2,
    heads: 4,
    kvHeads: 4,
    headDim: 16,
    norm: 'layer',
    normEps: 1e-5,
    activation: 'gelu_tanh',
    gatedMlp: false,
    positions: { kind: 'learned', maxPositions: 64 },
  },
};

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

/** A quantized product as the f32 layer it stands for: the dequantized weight and the bias. */
function dequantized(layer: DenseLayer): Linear {
  if (!isQuantMatrix(layer)) throw new Error('expected every product of the model quantized');
  const m = layer as QuantMatrix;
  const weight = tf.tensor2d(dequantizeMatrix(m), [m.inDim, m.outDim]);
  if (m.bias === 0) return { weight };
  const floats = weightArena()!.floats();
  return { weight, bias: tf.tensor1d(floats.slice(m.bias >> 2, (m.bias >> 2) + m.outDim)) };
}

function logitsOf(model: CausalLm, rows: number[][]): Float32Array {
  const state = model.createState({ batch: rows.length, maxLength: rows[0].length });
  const { logits } = model.extendStep(state, rows);
  const values = logits.dataSync() as Float32Array;
  logits.dispose();
  model.disposeState(state);
  return values;
}

describe.each(
  Object.entries(CONFIGS).flatMap(([name, config]) =>
    (['q8', 'q4'] as const).flatMap((weights) =>
      [true, false].map((tied) => ({ name, config, weights, tied })),
    ),
  ),
)('$name with $weights weights (tied head $tied)', ({ name, config, weights, tied }) => {
  test('equals the reference set on its dequantized weights within the activations’ int8 rounding', () => {
    const tensorsBefore = tf.memory().numTensors;
    const arenaBefore = weightArena()!.bytesInUse();
    const given = randomCausalLmWeights(config, { seed: 17, std: 0.2, biases: name === 'gpt2' });
    if (tied) given.lmHead?.dispose();
    const raw = tied ? { ...given, lmHead: undefined } : given;
    const model = createCausalLm(config, cloneWeights(raw), { kernels: 'wasm', weights });
    // The same products, quantized the same way, then handed to the reference set dequantized.
    const set = kernelSet('wasm', weights);
    const copy = cloneWeights(raw);
    const quantLayers = copy.layers.map((layer) =>
      prepareCausalLmLayer(config, layer as CausalLmLayerWeights, { kernels: 'wasm', weights }),
    );
    tf.dispose(
      [
        copy.embedTokens as tf.Tensor,
        copy.embedPositions,
        copy.finalNorm.weight,
        copy.finalNorm.bias,
        copy.lmHead,
      ].filter((t): t is tf.Tensor => t !== undefined),
    );
    const referenceLayers: PreparedCausalLmLayer[] = quantLayers.map((l) => ({
      kernels: 'reference',
      weights: 'f32',
      qkv: dequantized(l.qkv),
      o: dequantized(l.o),
      mlp: { up: dequantized(l.mlp.up), down: dequantized(l.mlp.down) },
    }));
    // The head as the set quantizes it: a tied one from the embedding, whose lookups then read it back.
    const head = set.prepareLinear({
      weight: tied ? (tf.transpose(raw.embedTokens as tf.Tensor2D) as tf.Tensor2D) : raw.lmHead!.clone(),
    }) as QuantMatrix;
    const embedTokens = tied
      ? tf.tensor2d(
          dequantizeColumns(
            head,
            Int32Array.from({ length: config.vocabSize }, (_, v) => v),
          ),
          [config.vocabSize, config.hiddenSize],
        )
      : (raw.embedTokens as tf.Tensor2D).clone();
    const reference = createCausalLm(
      config,
      {
        embedTokens,
        embedPositions: raw.embedPositions?.clone(),
        layers: referenceLayers,
        finalNorm: { weight: raw.finalNorm.weight.clone(), bias: raw.finalNorm.bias?.clone() },
        lmHead: tied ? undefined : dequantized(head).weight,
      },
      { kernels: 'reference' },
    );
    const f32 = createCausalLm(config, cloneWeights(raw), { kernels: 'reference' });

    const rows = [0, 1].map((r) =>
      Array.from({ length: 12 }, (_, i) => (i * 13 + r * 7 + 3) % config.vocabSize),
    );
    const quantized = logitsOf(model, rows);
    const want = logitsOf(reference, rows);
    const exact = logitsOf(f32, rows);
    const err = rmsDiff(quantized, want);
    // Rounding a product's inputs to int8 per block of 32 (step d = amax/127) moves each by at most
    // d/2, by d/√12 in RMS: relative to the block's RMS at most √32/(127·√12) (one value holding
    // it all), about 0.55% for Gaussian blocks. Each of the 2 products per layer and the head adds
    // that much relative error to what the residual stream carries on to the logits.
    const perProduct = Math.sqrt(32) / (127 * Math.sqrt(12));
    expect(err).toBeLessThan((2 * config.layers + 1) * perProduct * rmsDiff(want));
    // And the weights really were quantized: the f32 model is further away than the rounding.
    expect(rmsDiff(quantized, exact)).toBeGreaterThan(err);

    for (const m of [model, reference, f32]) m.dispose();
    for (const l of quantLayers) for (const p of [l.qkv, l.o, l.mlp.up, l.mlp.down]) disposeLinear(p);
    disposeLinear(head);
    disposeWeights(raw);
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(weightArena()!.bytesInUse()).toBe(arenaBefore);
  });
});

/** The root mean square of a − b (of a alone without b). */
function rmsDiff(a: Float32Array, b?: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] - (b ? b[i] : 0)) ** 2;
  return Math.sqrt(sum / a.length);
}

describe('weight format choice', () => {
  test('q8 and q4 need the wasm or webgpu set; unknown formats and mixed layers are named', () => {
    expect(kernelSet('wasm', 'q8').weights).toBe('q8');
    expect(() => kernelSet('reference', 'q8')).toThrow(
      /q8 weights are not supported by the reference kernel set \(q8 and q4: the wasm and webgpu sets/,
    );
    expect(() => kernelSet('wasm', 'f16')).toThrow(
      /f16 weights are not supported by the wasm kernel set \(q8 and q4: the wasm and webgpu sets; f16: the webgpu set\)/,
    );
    expect(() => kernelSet('wasm', 'q3' as 'q4')).toThrow(
      /unknown weight format "q3"; known: f32, f16, q8, q4/,
    );
    const config = CONFIGS.llama;
    const raw = randomCausalLmWeights(config, { seed: 3 });
    const prepared = prepareCausalLmLayer(config, raw.layers[0] as CausalLmLayerWeights, {
      kernels: 'wasm',
      weights: 'q4',
    });
    expect(() =>
      createCausalLm(config, { ...raw, layers: [prepared, ...raw.layers.slice(1)] }, { kernels: 'wasm' }),
    ).toThrow(/prepared for the wasm kernel set with q4 weights, the model is built with wasm and f32/);
    createCausalLm(
      config,
      { ...raw, layers: [prepared, ...raw.layers.slice(1)] },
      { kernels: 'wasm', weights: 'q4' },
    ).dispose();
  });
});
