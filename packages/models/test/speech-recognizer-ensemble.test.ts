import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  concatFloat32,
  DisposedError,
  InvalidArgumentError,
  initBackend,
  readAndDispose,
} from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maxAbsDiff } from '../../../test-support/max-abs-diff.js';
import {
  openSafetensors,
  SafetensorsError,
  type TensorToWrite,
  writeSafetensors,
} from '../src/safetensors/index.js';
import { ctcText } from '../src/speech/ctc.js';
import { loadSpeechRecognizer, recognizerLogits, type SpeechRecognizer } from '../src/speech/recognizer.js';
import { ensembleStreamingEncoder } from '../src/streaming-encoder/ensemble.js';
import { expectLoadFailure } from './recognizer-load-failure.js';

/** tools/speech/fixture_recognizer.py's tiny random recognizer and its PyTorch twin's outputs. */
const FIXTURE = fileURLToPath(new URL('./fixtures/speech-recognizer-tiny/', import.meta.url));
const reference = JSON.parse(readFileSync(join(FIXTURE, 'reference.json'), 'utf8')) as {
  mel: { frames: number; values: number[] };
  logits: { frames: number; values: number[] };
};
const fixtureConfig = JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8')) as Record<
  string,
  unknown
>;
const mel = Float32Array.from(reference.mel.values);
const vocabSize = fixtureConfig.vocab_size as number;
const nMels = fixtureConfig.n_mels as number;

/** Row-wise log-softmax of [frames × vocab] logits, in float64. */
function logSoftmax(logits: Float32Array): Float64Array {
  const out = new Float64Array(logits.length);
  for (let f = 0; f < logits.length / vocabSize; f++) {
    const row = logits.subarray(f * vocabSize, (f + 1) * vocabSize);
    const max = Math.max(...row);
    const logSum = max + Math.log(row.reduce((sum, x) => sum + Math.exp(x - max), 0));
    row.forEach((x, i) => {
      out[f * vocabSize + i] = x - logSum;
    });
  }
  return out;
}

const greedyText = (logits: Float32Array, vocabulary: readonly string[]) => {
  const labels: number[] = [];
  let previous = 0;
  for (let f = 0; f < logits.length / vocabSize; f++) {
    const row = logits.subarray(f * vocabSize, (f + 1) * vocabSize);
    const best = row.indexOf(Math.max(...row));
    if (best !== 0 && best !== previous) labels.push(best);
    previous = best;
  }
  return ctcText(labels, vocabulary);
};

const made: string[] = [];
let dir: string;

/** A folder whose config.json lists `ensemble` (fields replaced by `config`); a.safetensors is the fixture, b.safetensors the fixture's weights changed. */
async function ensembleFolder(config: Record<string, unknown> = {}): Promise<string> {
  const folder = mkdtempSync(join(tmpdir(), 'specstream-recognizer-ensemble-'));
  made.push(folder);
  writeFileSync(
    join(folder, 'config.json'),
    JSON.stringify({ ...fixtureConfig, ensemble: ['a.safetensors', 'b.safetensors'], ...config }),
  );
  symlinkSync(join(FIXTURE, 'model.safetensors'), join(folder, 'a.safetensors'));
  const file = await openSafetensors(join(FIXTURE, 'model.safetensors'));
  const tensors: Record<string, TensorToWrite> = {};
  let k = 0;
  for (const name of file.names) {
    const values = Float32Array.from((await file.readValues(name)).values as Float32Array);
    // Another recognizer of the same architecture: every weight moved by up to ±40%.
    for (let i = 0; i < values.length; i++) values[i] *= 1 + 0.4 * Math.sin(++k * 0.7);
    tensors[name] = { dtype: 'F32', shape: file.info(name).shape, data: values };
  }
  await file.close();
  await writeSafetensors(join(folder, 'b.safetensors'), tensors);
  return folder;
}

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  dir = await ensembleFolder();
});
afterAll(() => {
  for (const folder of made) rmSync(folder, { recursive: true, force: true });
});

describe('a recognizer folder whose config.json lists an ensemble', () => {
  let ensemble: SpeechRecognizer;
  let members: SpeechRecognizer[];
  beforeAll(async () => {
    ensemble = await loadSpeechRecognizer(dir);
    members = [
      await loadSpeechRecognizer(dir, { member: 'a.safetensors' }),
      await loadSpeechRecognizer(dir, { member: 'b.safetensors' }),
    ];
  });
  afterAll(() => {
    ensemble?.dispose();
    for (const member of members ?? []) member.dispose();
  });

  it("loads each member alone on request: the first is the fixture, with its twin's logits", async () => {
    expect(ensemble.config.ensemble).toEqual(['a.safetensors', 'b.safetensors']);
    const first = await recognizerLogits(members[0], mel);
    expect(maxAbsDiff(first, Float32Array.from(reference.logits.values))).toBeLessThan(1e-4);
    // The second is another model: it reads the same frames otherwise.
    const second = await recognizerLogits(members[1], mel);
    expect(maxAbsDiff(first, second)).toBeGreaterThan(0.1);
  });

  it("returns the mean of its members' log-softmaxed logits", async () => {
    const [a, b] = [
      logSoftmax(await recognizerLogits(members[0], mel)),
      logSoftmax(await recognizerLogits(members[1], mel)),
    ];
    const mean = Float32Array.from(a, (x, i) => (x + b[i]) / 2);
    const logits = await recognizerLogits(ensemble, mel);
    expect(logits.length).toBe(mean.length);
    expect(maxAbsDiff(logits, mean)).toBeLessThan(1e-5);
    // The mean is a third reading, not one of the members'.
    const texts = [a, b, mean].map((x) => greedyText(Float32Array.from(x), ensemble.vocabulary));
    expect(new Set(texts).size).toBeGreaterThan(1);
  });

  it.each([[[1]], [[7]], [[2, 9, 1, 30, 5]]])(
    'streamed in chunks of %j frames, gives the offline logits and frees every tensor',
    async (pattern) => {
      const offline = await recognizerLogits(ensemble, mel);
      const before = tf.memory().numTensors;
      const frames = mel.length / nMels;
      const chunks: number[] = [];
      for (let left = frames, i = 0; left > 0; i++) {
        chunks.push(Math.min(left, pattern[i % pattern.length]));
        left -= chunks.at(-1)!;
      }
      const { encoder, config } = ensemble;
      const state = encoder.createState({ batch: 1, maxLength: frames, leftContext: config.leftContext });
      const parts: Float32Array[] = [];
      let at = 0;
      for (const count of chunks) {
        const input = tf.tensor3d(mel.subarray(at * nMels, (at + count) * nMels), [1, count, nMels]);
        parts.push((await readAndDispose(encoder.extendStep(state, input).outputs)) as Float32Array);
        input.dispose();
        at += count;
      }
      expect(state.lengths[0]).toBe(frames);
      expect(state.outputLength).toBe(offline.length / vocabSize);
      encoder.disposeState(state);
      expect(state.disposed).toBe(true);
      expect(tf.memory().numTensors).toBe(before);
      expect(maxAbsDiff(concatFloat32(parts), offline)).toBeLessThan(1e-4);
    },
  );

  it('a bad call throws at the first member and leaves the state usable', async () => {
    const { encoder } = ensemble;
    const state = encoder.createState({ batch: 1, maxLength: 8, leftContext: 4 });
    const before = tf.memory().numTensors;
    const wrong = tf.zeros([1, 2, nMels + 1]) as tf.Tensor3D;
    expect(() => encoder.extendStep(state, wrong)).toThrow(InvalidArgumentError);
    wrong.dispose();
    const tooMany = tf.zeros([1, 9, nMels]) as tf.Tensor3D;
    expect(() => encoder.extendStep(state, tooMany)).toThrow(/8|capacity|maxLength/);
    tooMany.dispose();
    expect(tf.memory().numTensors).toBe(before);
    expect(state.lengths[0]).toBe(0);
    const input = tf.zeros([1, 8, nMels]) as tf.Tensor3D;
    const { outputs } = encoder.extendStep(state, input);
    expect(outputs.shape).toEqual([1, 2, vocabSize]);
    tf.dispose([input, outputs]);
    encoder.disposeState(state);
  });
});

describe('ensembles: what is wrong is named, and nothing is left behind', () => {
  it.each<[string, Record<string, unknown>, RegExp]>([
    ['one member', { ensemble: ['a.safetensors'] }, /ensemble must list two or more weight files/],
    ['a member twice', { ensemble: ['a.safetensors', 'a.safetensors'] }, /lists a weight file twice/],
    [
      'a path out of the folder',
      { ensemble: ['a.safetensors', '../b.safetensors'] },
      /weight files in the folder/,
    ],
    ['not a list', { ensemble: 'a.safetensors' }, /ensemble must list/],
    [
      'a missing member',
      { ensemble: ['a.safetensors', 'c.safetensors'] },
      /ensemble member .*c\.safetensors is not a file/,
    ],
  ])('%s', async (_, config, message) => {
    await expectLoadFailure(await ensembleFolder(config), InvalidArgumentError, message);
  });

  it('a member of another shape is named, before any tensor is read', async () => {
    const folder = await ensembleFolder();
    await writeSafetensors(join(folder, 'b.safetensors'), {
      'conv1.weight': { dtype: 'F32', shape: [1], data: [0] },
    });
    await expectLoadFailure(folder, SafetensorsError, /b\.safetensors/);
  });

  it('a member that is not in the ensemble', async () => {
    await expectLoadFailure(dir, InvalidArgumentError, /has no ensemble member "c\.safetensors"/, {
      member: 'c.safetensors',
    });
    await expectLoadFailure(FIXTURE, InvalidArgumentError, /has no ensemble member/, {
      member: 'model.safetensors',
    });
  });

  it('ensembleStreamingEncoder: members of other configs, foreign states, use after dispose', async () => {
    const a = await loadSpeechRecognizer(dir, { member: 'a.safetensors' });
    const b = await loadSpeechRecognizer(dir, { member: 'b.safetensors' });
    const other = { ...b.encoder, config: { ...b.encoder.config, ffDim: b.encoder.config.ffDim + 1 } };
    expect(() => ensembleStreamingEncoder([a.encoder, other])).toThrow(/member 1 has another config/);
    expect(() => ensembleStreamingEncoder([])).toThrow(/at least one member/);
    const before = tf.memory().numTensors;
    const ensemble = ensembleStreamingEncoder([a.encoder, b.encoder]);
    const foreign = a.encoder.createState({ batch: 1, maxLength: 4 });
    const input = tf.zeros([1, 4, nMels]) as tf.Tensor3D;
    expect(() => ensemble.extendStep(foreign, input)).toThrow(/a state from this encoder ensemble/);
    a.encoder.disposeState(foreign);
    ensemble.dispose();
    expect(() => ensemble.createState({ batch: 1, maxLength: 4 })).toThrow(DisposedError);
    input.dispose();
    // The ensemble owned the members' weights and freed them.
    expect(tf.memory().numTensors).toBeLessThan(before);
  });
});
