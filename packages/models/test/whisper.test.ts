import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CacheOverflowError, DisposedError, InvalidArgumentError, initBackend } from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kernelSetCases } from '../../../test-support/kernel-sets.js';
import { maxAbsDiff } from '../../../test-support/max-abs-diff.js';
import { openSafetensors } from '../src/safetensors/file.js';
import { loadWhisper, type Whisper, type WhisperDecoderState, whisperGreedy } from '../src/whisper/index.js';
import { fixturePath, whisperFixture } from './fixtures.js';

const modelDir = fixturePath('whisper');
const TOLERANCE = 1e-4;
/** The fixture's sizes (config.json, preprocessor_config.json, reference shapes): no test hard-codes one. */
const W = whisperFixture();
const VOCAB = W.vocabSize;
/** Input frames of a full window: conv2's stride 2 halves them to maxSourcePositions. */
const FRAMES = 2 * W.maxSourcePositions;
/** decoder_input_ids' length. */
const STEPS = W.decoderSteps;

/**
 * What transformers' `generate` returned as greedy_output: true when it begins with the
 * decoder start id and so holds greedy_output.length - 1 new ids, false when every id is new.
 * transformers 5.17 returns the new ids alone: tools/fixtures/make_fixtures.py, run on the GPU
 * machine (torch 2.11, transformers 5.17.0), printed for max_new_tokens = 12 a 12-id output
 * whose first id was not the start id on one set ([208 × 12], where our greedy from [start]
 * gives [1, 208 × 12]), and on another, where a probe forbade the start id as a generated
 * token, output equal to the 12 new ids alone.
 */
const GREEDY_OUTPUT_INCLUDES_START = false;

interface Reference {
  features: tf.Tensor3D;
  encoderOutput: tf.Tensor3D;
  ids: number[];
  logits: Float32Array;
  greedy: number[];
}

async function readReference(): Promise<Reference> {
  const file = await openSafetensors(join(modelDir, 'reference.safetensors'));
  try {
    const values = async (name: string) => (await file.readValues(name)).values;
    return {
      features: (await file.readTensor('input_features')) as tf.Tensor3D,
      encoderOutput: (await file.readTensor('encoder_output')) as tf.Tensor3D,
      ids: Array.from(await values('decoder_input_ids')),
      logits: (await values('logits')) as Float32Array,
      greedy: Array.from(await values('greedy_output')),
    };
  } finally {
    await file.close();
  }
}

/** Small seeded LCG (Numerical Recipes constants), so a failing split reproduces. */
function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Cuts n into random positive chunk lengths. */
function randomSplit(n: number, random: () => number): number[] {
  const chunks: number[] = [];
  for (let left = n; left > 0; ) {
    const size = 1 + Math.floor(random() * left);
    chunks.push(size);
    left -= size;
  }
  return chunks;
}

/** Takes logits and returns their values, freeing the tensor. */
function take(logits: tf.Tensor): Float32Array {
  const values = logits.dataSync() as Float32Array;
  logits.dispose();
  return values;
}

let whisper: Whisper;
let ref: Reference;
let encoded: tf.Tensor3D;

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  ref = await readReference();
  whisper = await loadWhisper(modelDir);
  encoded = whisper.encoder.encode(ref.features);
});

afterAll(() => {
  encoded?.dispose();
  whisper?.dispose();
  tf.dispose([ref?.features, ref?.encoderOutput].filter((t) => t !== undefined));
});

/** A decoder state of `batch` rows holding our encoder output, tiled when batch > 1. */
function stateFor(batch: number, maxLength: number): WhisperDecoderState {
  const state = whisper.decoder.createState({ batch, maxLength });
  const audio = batch === 1 ? encoded : tf.tile(encoded, [batch, 1, 1]);
  whisper.decoder.setEncoderOutput(state, audio as tf.Tensor3D);
  if (audio !== encoded) audio.dispose();
  return state;
}

describe('Whisper encoder', () => {
  it('matches transformers on the reference features', () => {
    expect(encoded.shape).toEqual([1, W.maxSourcePositions, W.dModel]);
    expect(encoded.shape).toEqual(ref.encoderOutput.shape);
    const error = maxAbsDiff(encoded.dataSync(), ref.encoderOutput.dataSync());
    console.info(`whisper encoder max abs error: ${error.toExponential(2)}`);
    expect(error).toBeLessThanOrEqual(TOLERANCE);
  });

  it('extendStep encodes frames [batch, frames, nMels] as one window and counts them', () => {
    const state = whisper.encoder.createState({ batch: 1, maxLength: 2 * FRAMES });
    const frames = tf.transpose(ref.features, [0, 2, 1]) as tf.Tensor3D;
    const { outputs } = whisper.encoder.extendStep(state, frames);
    frames.dispose();
    expect(maxAbsDiff(take(outputs), encoded.dataSync())).toBe(0);
    expect(Array.from(state.lengths)).toEqual([W.featureFrames]);
    whisper.encoder.disposeState(state);
  });

  it('rejects features of the wrong shape, a finite leftContext and a disposed state', () => {
    const mels = W.numMelBins;
    const wrongMels = tf.zeros([1, mels / 2, FRAMES]) as tf.Tensor3D;
    const tooLong = tf.zeros([1, mels, FRAMES + 2]) as tf.Tensor3D;
    expect(() => whisper.encoder.encode(wrongMels)).toThrow(
      `Whisper's encoder takes float32 [batch, nMels, frames] with ${mels} mel bins and 1..${FRAMES} frames; got float32 [1,${mels / 2},${FRAMES}]`,
    );
    expect(() => whisper.encoder.encode(tooLong)).toThrow(InvalidArgumentError);
    tf.dispose([wrongMels, tooLong]);
    expect(() => whisper.encoder.createState({ batch: 1, maxLength: 10, leftContext: 4 })).toThrow(
      'leftContext 4 cannot be honoured',
    );
    const state = whisper.encoder.createState({ batch: 2, maxLength: 10 });
    const oneRow = tf.zeros([1, 8, mels]) as tf.Tensor3D;
    expect(() => whisper.encoder.extendStep(state, oneRow)).toThrow(`with 2 rows, ${mels} mel bins`);
    whisper.encoder.disposeState(state);
    expect(() => whisper.encoder.extendStep(state, oneRow)).toThrow(DisposedError);
    oneRow.dispose();
  });
});

describe('Whisper decoder', () => {
  it('matches transformers logits for decoder_input_ids (our encoder output and the reference one)', () => {
    const ours = stateFor(1, STEPS);
    const theirs = whisper.decoder.createState({ batch: 1, maxLength: STEPS });
    whisper.decoder.setEncoderOutput(theirs, ref.encoderOutput);
    const endToEnd = maxAbsDiff(take(whisper.decoder.extendStep(ours, [ref.ids]).logits), ref.logits);
    const decoderOnly = maxAbsDiff(take(whisper.decoder.extendStep(theirs, [ref.ids]).logits), ref.logits);
    console.info(
      `whisper logits max abs error: ${endToEnd.toExponential(2)} end to end, ${decoderOnly.toExponential(2)} from the reference encoder output`,
    );
    expect(endToEnd).toBeLessThanOrEqual(TOLERANCE);
    expect(decoderOnly).toBeLessThanOrEqual(TOLERANCE);
    expect(Array.from(ours.lengths)).toEqual([STEPS]);
    whisper.decoder.disposeState(ours);
    whisper.decoder.disposeState(theirs);
  });

  it('gives the same logits when the ids arrive in random splits', () => {
    const random = seeded(7);
    let worst = 0;
    for (let trial = 0; trial < 6; trial++) {
      const state = stateFor(1, STEPS);
      const chunks = randomSplit(STEPS, random);
      const pieces: number[] = [];
      let at = 0;
      for (const size of chunks) {
        pieces.push(...take(whisper.decoder.extendStep(state, [ref.ids.slice(at, at + size)]).logits));
        at += size;
      }
      worst = Math.max(worst, maxAbsDiff(pieces, ref.logits));
      whisper.decoder.disposeState(state);
    }
    console.info(`whisper split-feed logits max abs error: ${worst.toExponential(2)}`);
    expect(worst).toBeLessThanOrEqual(TOLERANCE);
  });

  it('keeps batch rows apart when they sit at different positions', () => {
    // Rows hold the same audio and ids; rollback puts them at different split points.
    // With d = ⌊STEPS/3⌋ (2 of 6 ids): row 0 keeps STEPS - d ids of the first pass, row 1 STEPS - 2d.
    const d = Math.floor(STEPS / 3);
    const [early, late] = [STEPS - 2 * d, STEPS - d];
    const { decoder } = whisper;
    const state = stateFor(2, STEPS + d);
    const rows: number[][] = [[], []];
    const keep = (logits: tf.Tensor3D, owned: Array<[row: number, steps: number]>) => {
      const [, steps] = logits.shape;
      const values = take(logits);
      for (const [row, count] of owned)
        rows[row].push(...values.subarray(row * steps * VOCAB, (row * steps + count) * VOCAB));
    };
    const ids = ref.ids;
    keep(decoder.extendStep(state, [ids.slice(0, late), ids.slice(0, late)]).logits, [
      [0, late],
      [1, early],
    ]);
    decoder.rollback(state, [late, early]);
    keep(decoder.extendStep(state, [ids.slice(late, STEPS), ids.slice(early, late)]).logits, [
      [0, d],
      [1, d],
    ]);
    // Row 0 is done; it takes d throwaway ids that rollback forgets.
    keep(decoder.extendStep(state, [new Array<number>(d).fill(0), ids.slice(late, STEPS)]).logits, [[1, d]]);
    decoder.rollback(state, [STEPS, STEPS]);
    expect(maxAbsDiff(rows[0], ref.logits)).toBeLessThanOrEqual(TOLERANCE);
    expect(maxAbsDiff(rows[1], ref.logits)).toBeLessThanOrEqual(TOLERANCE);
    decoder.disposeState(state);
  });

  it("selects logits rows with 'last' and per-row indices", () => {
    // First half of the ids, then the rest, picking its first and last positions.
    const half = Math.floor(STEPS / 2);
    const state = stateFor(2, STEPS);
    const last = whisper.decoder.extendStep(state, [ref.ids.slice(0, half), ref.ids.slice(0, half)], {
      logits: 'last',
    });
    expect(last.logits.shape).toEqual([2, 1, VOCAB]);
    expect(
      maxAbsDiff(take(last.logits).subarray(0, VOCAB), ref.logits.subarray((half - 1) * VOCAB, half * VOCAB)),
    ).toBeLessThanOrEqual(TOLERANCE);
    const picked = whisper.decoder.extendStep(state, [ref.ids.slice(half), ref.ids.slice(half)], {
      logits: [0, STEPS - half - 1],
    });
    const values = take(picked.logits);
    expect(
      maxAbsDiff(values.subarray(0, VOCAB), ref.logits.subarray(half * VOCAB, (half + 1) * VOCAB)),
    ).toBeLessThanOrEqual(TOLERANCE);
    expect(maxAbsDiff(values.subarray(VOCAB), ref.logits.subarray((STEPS - 1) * VOCAB))).toBeLessThanOrEqual(
      TOLERANCE,
    );
    whisper.decoder.disposeState(state);
  });

  it('greedy picks the reference argmax after every prefix of decoder_input_ids', async () => {
    for (let k = 1; k <= ref.ids.length; k++) {
      const row = ref.logits.subarray((k - 1) * VOCAB, k * VOCAB);
      const expected = row.indexOf(Math.max(...row));
      const ids = await whisperGreedy(whisper, ref.features, {
        prompt: ref.ids.slice(0, k),
        maxNewTokens: 1,
        eosTokenId: W.eosTokenId,
      });
      expect(ids).toEqual([...ref.ids.slice(0, k), expected]);
    }
  });

  it('suppressed ids are never picked: the first step falls to the reference runner-up', async () => {
    const first = ref.logits.subarray(0, VOCAB);
    const best = first.indexOf(Math.max(...first));
    const runnerUp = first.indexOf(Math.max(...first.filter((_, i) => i !== best)));
    const start = ref.ids[0];
    const options = { prompt: [start], maxNewTokens: 1, eosTokenId: W.eosTokenId };
    expect(await whisperGreedy(whisper, ref.features, { ...options, suppressTokens: [best] })).toEqual([
      start,
      runnerUp,
    ]);
    expect(await whisperGreedy(whisper, ref.features, { ...options, beginSuppressTokens: [best] })).toEqual([
      start,
      runnerUp,
    ]);
  });

  it('reproduces greedy_output', async () => {
    const prompt = [W.decoderStartTokenId];
    // whisperGreedy returns the prompt and then the new ids.
    const ids = await whisperGreedy(whisper, ref.features, {
      prompt,
      maxNewTokens: GREEDY_OUTPUT_INCLUDES_START ? ref.greedy.length - prompt.length : ref.greedy.length,
      eosTokenId: W.eosTokenId,
    });
    expect(GREEDY_OUTPUT_INCLUDES_START ? ids : ids.slice(prompt.length)).toEqual(ref.greedy);
  });
});

/** The decoder on every kernel set the wasm backend has (the suites above use the default one). */
describe.each(await kernelSetCases(['wasm']))('Whisper decoder, $label', ({ backend, kernels }) => {
  it('matches transformers logits whole and in splits, and reproduces greedy_output; frees what it made', async () => {
    await initBackend({ backend });
    const before = tf.memory().numTensors;
    const model = await loadWhisper(modelDir, { kernels });
    const state = model.decoder.createState({ batch: 1, maxLength: STEPS });
    model.decoder.setEncoderOutput(state, ref.encoderOutput);
    expect(
      maxAbsDiff(take(model.decoder.extendStep(state, [ref.ids]).logits), ref.logits),
    ).toBeLessThanOrEqual(TOLERANCE);
    model.decoder.rollback(state, [0]);
    const pieces: number[] = [];
    let at = 0;
    for (const size of randomSplit(STEPS, seeded(3))) {
      pieces.push(...take(model.decoder.extendStep(state, [ref.ids.slice(at, at + size)]).logits));
      at += size;
    }
    expect(maxAbsDiff(pieces, ref.logits)).toBeLessThanOrEqual(TOLERANCE);
    model.decoder.disposeState(state);
    const prompt = [W.decoderStartTokenId];
    const ids = await whisperGreedy(model, ref.features, {
      prompt,
      maxNewTokens: GREEDY_OUTPUT_INCLUDES_START ? ref.greedy.length - prompt.length : ref.greedy.length,
      eosTokenId: W.eosTokenId,
    });
    expect(GREEDY_OUTPUT_INCLUDES_START ? ids : ids.slice(prompt.length)).toEqual(ref.greedy);
    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('Whisper decoder input checks', () => {
  it('throws core’s errors and leaves the state as it was', () => {
    const { decoder } = whisper;
    const positions = W.maxTargetPositions;
    expect(() => decoder.createState({ batch: 1, maxLength: positions + 1 })).toThrow(
      `maxLength ${positions + 1} exceeds the model's ${positions} positions`,
    );
    expect(() => decoder.createState({ batch: 0, maxLength: 4 })).toThrow(
      'batch must be a positive integer, got 0',
    );
    const state = decoder.createState({ batch: 1, maxLength: 4 });
    expect(() => decoder.extendStep(state, [[1]])).toThrow(
      'the state has no audio: call setEncoderOutput(state, encoderOutput) before extendStep',
    );
    const twoRows = tf.tile(encoded, [2, 1, 1]) as tf.Tensor3D;
    expect(() => decoder.setEncoderOutput(state, twoRows)).toThrow(
      `encoderOutput must be float32 [1, sourceSteps, ${W.dModel}] (one row per state row); got float32 [2,${W.maxSourcePositions},${W.dModel}]`,
    );
    twoRows.dispose();
    decoder.setEncoderOutput(state, encoded);
    // The first two reference ids now, the next two at the end.
    take(decoder.extendStep(state, [ref.ids.slice(0, 2)]).logits);
    expect(() => decoder.extendStep(state, [[VOCAB]])).toThrow(
      `token id ${VOCAB} at row 0, step 0 is outside the vocabulary [0, ${VOCAB})`,
    );
    expect(() => decoder.extendStep(state, [[1.5]])).toThrow(InvalidArgumentError);
    expect(() => decoder.extendStep(state, [[1], [1]])).toThrow(
      'tokens must have one row per batch row: expected 1 rows, got 2',
    );
    expect(() => decoder.extendStep(state, [[1, 2, 3]])).toThrow(CacheOverflowError);
    expect(() => decoder.extendStep(state, [[1, 2, 3]])).toThrow(
      "row 0 would reach length 5, past the state's maxLength 4 (it holds 2, adding 3)",
    );
    expect(() => decoder.extendStep(state, [[9, 17]], { logits: [2] })).toThrow(
      'logits index 2 for row 0 is outside the window [0, 2)',
    );
    expect(() => decoder.rollback(state, [3])).toThrow('rollback length 3 for row 0 is outside [0, 2]');
    expect(Array.from(state.lengths)).toEqual([2]);
    // After all those refusals the state still continues the sequence correctly.
    const rest = take(decoder.extendStep(state, [ref.ids.slice(2, 4)]).logits);
    expect(maxAbsDiff(rest, ref.logits.subarray(2 * VOCAB, 4 * VOCAB))).toBeLessThanOrEqual(TOLERANCE);
    decoder.disposeState(state);
    decoder.disposeState(state);
    expect(() => decoder.extendStep(state, [[1]])).toThrow(DisposedError);
    expect(() => decoder.setEncoderOutput(state, encoded)).toThrow(DisposedError);
    expect(() => decoder.rollback(state, [0])).toThrow(DisposedError);
  });
});

describe('Whisper memory', () => {
  it('frees every tensor after load, run and dispose', async () => {
    const before = tf.memory().numTensors;
    // A non-default cache strategy, to check it gives the same logits as well.
    const model = await loadWhisper(modelDir, { kvCache: 'blocks' });
    const ids = await whisperGreedy(model, ref.features, {
      prompt: ref.ids.slice(0, 2),
      maxNewTokens: 3,
      eosTokenId: W.eosTokenId,
    });
    expect(ids).toHaveLength(5);
    const state = model.decoder.createState({ batch: 1, maxLength: STEPS });
    model.decoder.setEncoderOutput(state, ref.encoderOutput);
    // A second audio replaces the first's cross-attention keys and values.
    model.decoder.setEncoderOutput(state, ref.encoderOutput);
    const logits = take(model.decoder.extendStep(state, [ref.ids]).logits);
    expect(maxAbsDiff(logits, ref.logits)).toBeLessThanOrEqual(TOLERANCE);
    model.decoder.disposeState(state);
    model.dispose();
    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
    expect(() => model.decoder.createState({ batch: 1, maxLength: 4 })).toThrow('the model was disposed');
  });

  it('frees everything when greedy decoding fails after encoding', async () => {
    const before = tf.memory().numTensors;
    const [start, eosTokenId, positions] = [W.decoderStartTokenId, W.eosTokenId, W.maxTargetPositions];
    const outside = VOCAB + 88;
    await expect(
      whisperGreedy(whisper, ref.features, { prompt: [start, outside], maxNewTokens: 2, eosTokenId }),
    ).rejects.toThrow(`token id ${outside} at row 0, step 1 is outside the vocabulary [0, ${VOCAB})`);
    await expect(
      whisperGreedy(whisper, ref.features, { prompt: [start], maxNewTokens: positions, eosTokenId }),
    ).rejects.toThrow(`maxLength ${positions + 1} exceeds the model's ${positions} positions`);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('frees everything when a load fails part-way', async () => {
    // A config asking for one more decoder layer than the checkpoint has: the load
    // fails after reading the encoder and every decoder layer it holds.
    const dir = await mkdtemp(join(tmpdir(), 'whisper-'));
    try {
      const config = JSON.parse(await readFile(join(modelDir, 'config.json'), 'utf8'));
      const layers = W.decoderLayers;
      await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, decoder_layers: layers + 1 }));
      await copyFile(join(modelDir, 'model.safetensors'), join(dir, 'model.safetensors'));
      const before = tf.memory().numTensors;
      await expect(loadWhisper(dir)).rejects.toThrow(
        `model.decoder.layers.${layers}.self_attn_layer_norm.weight`,
      );
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
