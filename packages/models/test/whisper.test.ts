import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CacheOverflowError, DisposedError, InvalidArgumentError, initBackend } from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maxAbsDiff } from '../../../test-support/max-abs-diff.js';
import { openSafetensors } from '../src/safetensors/file.js';
import { loadWhisper, type Whisper, type WhisperDecoderState, whisperGreedy } from '../src/whisper/index.js';

const fixtures = fileURLToPath(new URL('../../../../shared/fixtures/hf/', import.meta.url));
const modelDir = join(fixtures, 'whisper');
const TOLERANCE = 1e-4;

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
const VOCAB = 512;

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
    expect(encoded.shape).toEqual([1, 1500, 64]);
    const error = maxAbsDiff(encoded.dataSync(), ref.encoderOutput.dataSync());
    console.info(`whisper encoder max abs error: ${error.toExponential(2)}`);
    expect(error).toBeLessThanOrEqual(TOLERANCE);
  });

  it('extendStep encodes frames [batch, frames, nMels] as one window and counts them', () => {
    const state = whisper.encoder.createState({ batch: 1, maxLength: 6000 });
    const frames = tf.transpose(ref.features, [0, 2, 1]) as tf.Tensor3D;
    const { outputs } = whisper.encoder.extendStep(state, frames);
    frames.dispose();
    expect(maxAbsDiff(take(outputs), encoded.dataSync())).toBe(0);
    expect(Array.from(state.lengths)).toEqual([3000]);
    whisper.encoder.disposeState(state);
  });

  it('rejects features of the wrong shape, a finite leftContext and a disposed state', () => {
    const wrongMels = tf.zeros([1, 40, 3000]) as tf.Tensor3D;
    const tooLong = tf.zeros([1, 80, 3002]) as tf.Tensor3D;
    expect(() => whisper.encoder.encode(wrongMels)).toThrow(
      "Whisper's encoder takes float32 [batch, nMels, frames] with 80 mel bins and 1..3000 frames; got float32 [1,40,3000]",
    );
    expect(() => whisper.encoder.encode(tooLong)).toThrow(InvalidArgumentError);
    tf.dispose([wrongMels, tooLong]);
    expect(() => whisper.encoder.createState({ batch: 1, maxLength: 10, leftContext: 4 })).toThrow(
      'leftContext 4 cannot be honoured',
    );
    const state = whisper.encoder.createState({ batch: 2, maxLength: 10 });
    const oneRow = tf.zeros([1, 8, 80]) as tf.Tensor3D;
    expect(() => whisper.encoder.extendStep(state, oneRow)).toThrow('with 2 rows, 80 mel bins');
    whisper.encoder.disposeState(state);
    expect(() => whisper.encoder.extendStep(state, oneRow)).toThrow(DisposedError);
    oneRow.dispose();
  });
});

describe('Whisper decoder', () => {
  it('matches transformers logits for decoder_input_ids (our encoder output and the reference one)', () => {
    const ours = stateFor(1, 6);
    const theirs = whisper.decoder.createState({ batch: 1, maxLength: 6 });
    whisper.decoder.setEncoderOutput(theirs, ref.encoderOutput);
    const endToEnd = maxAbsDiff(take(whisper.decoder.extendStep(ours, [ref.ids]).logits), ref.logits);
    const decoderOnly = maxAbsDiff(take(whisper.decoder.extendStep(theirs, [ref.ids]).logits), ref.logits);
    console.info(
      `whisper logits max abs error: ${endToEnd.toExponential(2)} end to end, ${decoderOnly.toExponential(2)} from the reference encoder output`,
    );
    expect(endToEnd).toBeLessThanOrEqual(TOLERANCE);
    expect(decoderOnly).toBeLessThanOrEqual(TOLERANCE);
    expect(Array.from(ours.lengths)).toEqual([6]);
    whisper.decoder.disposeState(ours);
    whisper.decoder.disposeState(theirs);
  });

  it('gives the same logits when the ids arrive in random splits', () => {
    const random = seeded(7);
    let worst = 0;
    for (let trial = 0; trial < 6; trial++) {
      const state = stateFor(1, 6);
      const chunks = randomSplit(6, random);
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
    const { decoder } = whisper;
    const state = stateFor(2, 8);
    const rows: number[][] = [[], []];
    const keep = (logits: tf.Tensor3D, owned: Array<[row: number, steps: number]>) => {
      const [, steps] = logits.shape;
      const values = take(logits);
      for (const [row, count] of owned)
        rows[row].push(...values.subarray(row * steps * VOCAB, (row * steps + count) * VOCAB));
    };
    const ids = ref.ids;
    keep(decoder.extendStep(state, [ids.slice(0, 4), ids.slice(0, 4)]).logits, [
      [0, 4],
      [1, 2],
    ]);
    decoder.rollback(state, [4, 2]);
    keep(decoder.extendStep(state, [ids.slice(4, 6), ids.slice(2, 4)]).logits, [
      [0, 2],
      [1, 2],
    ]);
    // Row 0 is done; it takes two throwaway ids that rollback forgets.
    keep(decoder.extendStep(state, [[0, 0], ids.slice(4, 6)]).logits, [[1, 2]]);
    decoder.rollback(state, [6, 6]);
    expect(maxAbsDiff(rows[0], ref.logits)).toBeLessThanOrEqual(TOLERANCE);
    expect(maxAbsDiff(rows[1], ref.logits)).toBeLessThanOrEqual(TOLERANCE);
    decoder.disposeState(state);
  });

  it("selects logits rows with 'last' and per-row indices", () => {
    const state = stateFor(2, 6);
    const last = whisper.decoder.extendStep(state, [ref.ids.slice(0, 3), ref.ids.slice(0, 3)], {
      logits: 'last',
    });
    expect(last.logits.shape).toEqual([2, 1, VOCAB]);
    expect(
      maxAbsDiff(take(last.logits).subarray(0, VOCAB), ref.logits.subarray(2 * VOCAB, 3 * VOCAB)),
    ).toBeLessThanOrEqual(TOLERANCE);
    const picked = whisper.decoder.extendStep(state, [ref.ids.slice(3, 6), ref.ids.slice(3, 6)], {
      logits: [0, 2],
    });
    const values = take(picked.logits);
    expect(
      maxAbsDiff(values.subarray(0, VOCAB), ref.logits.subarray(3 * VOCAB, 4 * VOCAB)),
    ).toBeLessThanOrEqual(TOLERANCE);
    expect(maxAbsDiff(values.subarray(VOCAB), ref.logits.subarray(5 * VOCAB))).toBeLessThanOrEqual(TOLERANCE);
    whisper.decoder.disposeState(state);
  });

  it('greedy picks the reference argmax after every prefix of decoder_input_ids', async () => {
    for (let k = 1; k <= ref.ids.length; k++) {
      const row = ref.logits.subarray((k - 1) * VOCAB, k * VOCAB);
      const expected = row.indexOf(Math.max(...row));
      const ids = await whisperGreedy(whisper, ref.features, {
        prompt: ref.ids.slice(0, k),
        maxNewTokens: 1,
        eosTokenId: 2,
      });
      expect(ids).toEqual([...ref.ids.slice(0, k), expected]);
    }
  });

  it('suppressed ids are never picked: the first step falls to the reference runner-up', async () => {
    const first = ref.logits.subarray(0, VOCAB);
    const best = first.indexOf(Math.max(...first));
    const runnerUp = first.indexOf(Math.max(...first.filter((_, i) => i !== best)));
    const options = { prompt: [1], maxNewTokens: 1, eosTokenId: 2 };
    expect(await whisperGreedy(whisper, ref.features, { ...options, suppressTokens: [best] })).toEqual([
      1,
      runnerUp,
    ]);
    expect(await whisperGreedy(whisper, ref.features, { ...options, beginSuppressTokens: [best] })).toEqual([
      1,
      runnerUp,
    ]);
  });

  it('reproduces greedy_output', async () => {
    const ids = await whisperGreedy(whisper, ref.features, {
      prompt: [whisper.config.decoderStartTokenId],
      maxNewTokens: ref.greedy.length - 1,
      eosTokenId: whisper.config.eosTokenId,
    });
    expect(ids).toEqual(ref.greedy);
  });
});

describe('Whisper decoder input checks', () => {
  it('throws core’s errors and leaves the state as it was', () => {
    const { decoder } = whisper;
    expect(() => decoder.createState({ batch: 1, maxLength: 65 })).toThrow(
      "maxLength 65 exceeds the model's 64 positions",
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
      'encoderOutput must be float32 [1, sourceSteps, 64] (one row per state row); got float32 [2,1500,64]',
    );
    twoRows.dispose();
    decoder.setEncoderOutput(state, encoded);
    take(decoder.extendStep(state, [[1, 5]]).logits);
    expect(() => decoder.extendStep(state, [[512]])).toThrow(
      'token id 512 at row 0, step 0 is outside the vocabulary [0, 512)',
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
    const rest = take(decoder.extendStep(state, [[9, 17]]).logits);
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
    const ids = await whisperGreedy(model, ref.features, { prompt: [1, 5], maxNewTokens: 3, eosTokenId: 2 });
    expect(ids).toHaveLength(5);
    const state = model.decoder.createState({ batch: 1, maxLength: 6 });
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
    await expect(
      whisperGreedy(whisper, ref.features, { prompt: [1, 600], maxNewTokens: 2, eosTokenId: 2 }),
    ).rejects.toThrow('token id 600 at row 0, step 1 is outside the vocabulary [0, 512)');
    await expect(
      whisperGreedy(whisper, ref.features, { prompt: [1], maxNewTokens: 64, eosTokenId: 2 }),
    ).rejects.toThrow("maxLength 65 exceeds the model's 64 positions");
    expect(tf.memory().numTensors).toBe(before);
  });

  it('frees everything when a load fails part-way', async () => {
    // A config asking for a third decoder layer the checkpoint lacks: the load
    // fails after reading the encoder and two decoder layers.
    const dir = await mkdtemp(join(tmpdir(), 'whisper-'));
    try {
      const config = JSON.parse(await readFile(join(modelDir, 'config.json'), 'utf8'));
      await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, decoder_layers: 3 }));
      await copyFile(join(modelDir, 'model.safetensors'), join(dir, 'model.safetensors'));
      const before = tf.memory().numTensors;
      await expect(loadWhisper(dir)).rejects.toThrow('model.decoder.layers.2.self_attn_layer_norm.weight');
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
