// The shipped target (models/specstream-docs-target) loaded with q8 and q4 weights on the wasm
// set, against the same folder at f32, teacher-forced on held-out text: the reference windows
// of models/reference/target.safetensors (2 × 24 tokens transformers computed on) and the 48
// paragraphs of models/heldout-prompts.json (3886 tokens with the shipped tokenizer, each
// paragraph its own sequence). core's tests bound the quantized products against the
// dequantized weights; these measure what the rounding does to a trained model's predictions.
//
// The thresholds are statistical properties of this trained model and this held-out text, not
// bounds that hold for any model: they were measured (wasm, Node 20, 2 kernel threads) and set
// with a margin below, so a change that moves a handful of near-ties passes and one that moves
// the predictions more than the rounding does fails.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type CausalLm,
  initBackend,
  type SequenceScores,
  scoreSequences,
  weightArena,
} from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, test } from 'vitest';
import { SHIPPED_MODELS } from '../../../test-support/shipped-models.js';
import { loadCausalLm } from '../src/load-model.js';
import { loadTokenizer } from '../src/tokenizer/index.js';
import { readCausalReference } from './causal-reference.js';

const MODELS = SHIPPED_MODELS;
const TARGET = join(MODELS, 'specstream-docs-target');

/**
 * Measured top-1 agreement with f32 (the argmax of every position's logits):
 *   q8: reference windows 48/48 (100%), held-out paragraphs 98.64% of 3886;
 *   q4: reference windows 45/48 (93.75%), held-out paragraphs 90.04% of 3886.
 * Thresholds: the windows' are whole positions (q8 may lose 2 of 48, q4 6), the paragraphs'
 * ~1.5 (q8) and ~3 (q4) points under what was measured. q4 disagrees far more often than q8
 * because its rounding error is ~16× larger, and this model's top two logits are often close
 * (f32 on the paragraphs: median top-1 minus top-2 logit 0.94, under 0.1 at 7.6% of positions).
 */
const AGREEMENT = {
  q8: { windows: 46 / 48, paragraphs: 0.97 },
  q4: { windows: 42 / 48, paragraphs: 0.87 },
} as const;

/**
 * Weight arena bytes over f32's. Measured: f32 104.9 MB, q8 27.9 MB (0.266), q4 14.7 MB (0.141):
 * a block of 32 weights takes 34 bytes in q8 and 18 in q4 against f32's 128, and the tied head
 * is the embedding's only copy in every format.
 */
const ARENA_RATIO = { q8: 0.28, q4: 0.15 } as const;

/**
 * Mean next-token cross-entropy over f32's, the issue's quality goal (q8 within +1%, q4 within
 * +5%). Measured: q8 +0.069% (windows) and +0.005% (paragraphs); q4 +0.54% and +0.14%. Both
 * formats meet the goal with room; the goal itself is the threshold.
 */
const CROSS_ENTROPY_RATIO = { q8: 1.01, q4: 1.05 } as const;

type Predictions = SequenceScores;

/** Teacher-forced predictions of each sequence (core's scoreSequences: one extendStep each). */
const predict = (model: CausalLm, sequences: readonly number[][]): Promise<Predictions> =>
  scoreSequences(model, sequences);

const mean = (xs: Float64Array) => xs.reduce((a, b) => a + b, 0) / xs.length;

function agreement(a: Int32Array, b: Int32Array): number {
  expect(a.length).toBe(b.length);
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  return same / a.length;
}

type Texts = { windows: number[][]; paragraphs: number[][] };
const TEXTS = ['windows', 'paragraphs'] as const;
let texts: Texts;
let f32: Record<keyof Texts, Predictions>;
let f32ArenaBytes: number;

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  const reference = await readCausalReference(join(MODELS, 'reference', 'target.safetensors'));
  const tokenizer = await loadTokenizer(TARGET);
  const prompts = (
    JSON.parse(readFileSync(join(MODELS, 'heldout-prompts.json'), 'utf8')) as { prompts: string[] }
  ).prompts;
  texts = { windows: reference.inputIds, paragraphs: prompts.map((p) => tokenizer.encode(p)) };
  const arenaBefore = weightArena()!.bytesInUse();
  const model = await loadCausalLm(TARGET, { kernels: 'wasm' });
  f32ArenaBytes = weightArena()!.bytesInUse() - arenaBefore;
  try {
    f32 = {
      windows: await predict(model, texts.windows),
      paragraphs: await predict(model, texts.paragraphs),
    };
  } finally {
    model.dispose();
  }
});

describe.each(['q8', 'q4'] as const)('shipped target with %s weights (wasm)', (weights) => {
  let predictions: Record<keyof Texts, Predictions>;
  let tensorsBefore: number;
  let arenaBefore: number;

  test('loads, and leaves no tensor and no arena byte behind once disposed', async () => {
    tensorsBefore = tf.memory().numTensors;
    arenaBefore = weightArena()!.bytesInUse();
    const model = await loadCausalLm(TARGET, { kernels: 'wasm', weights });
    try {
      const bytes = weightArena()!.bytesInUse() - arenaBefore;
      expect(bytes).toBeGreaterThan(0);
      expect(bytes / f32ArenaBytes).toBeLessThan(ARENA_RATIO[weights]);
      predictions = {
        windows: await predict(model, texts.windows),
        paragraphs: await predict(model, texts.paragraphs),
      };
    } finally {
      model.dispose();
    }
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(weightArena()!.bytesInUse()).toBe(arenaBefore);
  });

  test.each(TEXTS)('top-1 token agrees with f32 on the held-out %s', (text) => {
    expect(predictions, 'the load test failed').toBeDefined();
    const measured = agreement(predictions[text].top1, f32[text].top1);
    expect(measured).toBeGreaterThanOrEqual(AGREEMENT[weights][text]);
  });

  test.each(TEXTS)('mean cross-entropy of the held-out %s within the goal over f32', (text) => {
    expect(predictions, 'the load test failed').toBeDefined();
    const ratio = mean(predictions[text].crossEntropy) / mean(f32[text].crossEntropy);
    expect(ratio).toBeLessThanOrEqual(CROSS_ENTROPY_RATIO[weights]);
    // Rounding the weights cannot make a trained model much better: a ratio well under 1 would
    // mean the comparison itself is off (different tokens, different positions).
    expect(ratio).toBeGreaterThan(0.99);
  });
});
