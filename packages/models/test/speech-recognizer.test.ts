import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { concatFloat32, InvalidArgumentError, initBackend, readAndDispose } from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maxAbsDiff } from '../../../test-support/max-abs-diff.js';
import { rawLogMelFrames } from '../src/audio/index.js';
import {
  openSafetensors,
  SafetensorsError,
  type TensorReader,
  type TensorToWrite,
  writeSafetensors,
} from '../src/safetensors/index.js';
import { CTC_GREEDY_START, type CtcEmissions, ctcGreedyChunk } from '../src/speech/ctc.js';
import {
  loadSpeechRecognizer,
  readSpeechRecognizerConfig,
  recognizeAudio,
  recognizeLogMel,
  recognizerLogits,
  type SpeechRecognizer,
} from '../src/speech/recognizer.js';
import { readRecognizerWeights, recognizerTensorShapes } from '../src/speech/recognizer-weights.js';
import { RECOGNIZER_TAIL_PADDING_SECONDS, tailPadding } from '../src/speech/tail-padding.js';
import { expectLoadFailure } from './recognizer-load-failure.js';

/** tools/speech/fixture_recognizer.py's tiny random recognizer and its PyTorch twin's outputs. */
const FIXTURE = fileURLToPath(new URL('./fixtures/speech-recognizer-tiny/', import.meta.url));
const FIXTURE_F16 = fileURLToPath(new URL('./fixtures/speech-recognizer-tiny-f16/', import.meta.url));

interface Logits {
  frames: number;
  values: number[];
}
const reference = JSON.parse(readFileSync(join(FIXTURE, 'reference.json'), 'utf8')) as {
  mel: { frames: number; values: number[] };
  logits: Logits;
  logits_folded: Logits;
  logits_f16_weights: Logits;
  audio: { pcm16: number[]; mel_frames: number; logits: Logits };
};
const fixtureConfig = JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8')) as Record<
  string,
  unknown
>;
const mel = Float32Array.from(reference.mel.values);

/** What the encoder returns for `frames` fed `chunks` frames at a time, with the model's left context. */
async function streamedLogits(recognizer: SpeechRecognizer, frames: Float32Array, chunks: number[]) {
  const { encoder, config } = recognizer;
  const nMels = config.encoder.nMels;
  const state = encoder.createState({
    batch: 1,
    maxLength: frames.length / nMels,
    leftContext: config.leftContext,
  });
  const parts: Float32Array[] = [];
  let at = 0;
  try {
    for (const count of chunks) {
      const input = tf.tensor3d(frames.subarray(at * nMels, (at + count) * nMels), [1, count, nMels]);
      parts.push((await readAndDispose(encoder.extendStep(state, input).outputs)) as Float32Array);
      input.dispose();
      at += count;
    }
  } finally {
    encoder.disposeState(state);
  }
  return concatFloat32(parts);
}

/** Splits n frames into chunks of `size` (the last shorter). */
function chunksOf(n: number, size: number): number[] {
  return Array.from({ length: Math.ceil(n / size) }, (_, i) => Math.min(size, n - i * size));
}

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

describe('loadSpeechRecognizer on the tiny fixture', () => {
  let recognizer: SpeechRecognizer;
  beforeAll(async () => {
    recognizer = await loadSpeechRecognizer(FIXTURE);
  });
  afterAll(() => recognizer?.dispose());

  it('reads config.json into the encoder config', () => {
    const { encoder, leftContext, chunkFrames, hop, sampleRate, nFft } = recognizer.config;
    expect(encoder).toMatchObject({
      nMels: fixtureConfig.n_mels,
      convChannels: fixtureConfig.conv_channels,
      dModel: fixtureConfig.d_model,
      layers: fixtureConfig.layers,
      heads: fixtureConfig.heads,
      ffDim: fixtureConfig.ff_dim,
      vocabSize: fixtureConfig.vocab_size,
      positions: { kind: 'rotary', theta: fixtureConfig.rotary_theta },
    });
    expect([leftContext, chunkFrames, hop, sampleRate, nFft]).toEqual(
      ['left_context', 'chunk_frames', 'hop', 'sample_rate', 'n_fft'].map((k) => fixtureConfig[k]),
    );
    expect(recognizer.vocabulary).toEqual(fixtureConfig.vocabulary);
    expect(recognizer.encoder.inputDim).toBe(fixtureConfig.n_mels);
    expect(recognizer.encoder.outputDim).toBe(fixtureConfig.vocab_size);
  });

  it("the twin's fold keeps its logits (the fixture's own check)", () => {
    expect(maxAbsDiff(reference.logits.values, reference.logits_folded.values)).toBeLessThan(1e-4);
  });

  it("one encoder pass gives the twin's logits within 1e-4", async () => {
    const logits = await recognizerLogits(recognizer, mel);
    expect(logits.length / recognizer.config.encoder.vocabSize).toBe(reference.logits.frames);
    expect(maxAbsDiff(logits, reference.logits.values)).toBeLessThan(1e-4);
    expect(maxAbsDiff(logits, reference.logits_folded.values)).toBeLessThan(1e-4);
  });

  it.each([[[1]], [[3]], [[4]], [[7]], [[16]], [[2, 9, 1, 30, 5]]])(
    'chunks of %j frames give the offline logits',
    async (sizes) => {
      const frames = reference.mel.frames;
      const chunks =
        sizes.length === 1 ? chunksOf(frames, sizes[0]) : [...sizes, frames - sizes.reduce((a, b) => a + b)];
      const offline = await recognizerLogits(recognizer, mel);
      const streamed = await streamedLogits(recognizer, mel, chunks);
      expect(maxAbsDiff(streamed, offline)).toBeLessThan(1e-5);
      expect(maxAbsDiff(streamed, reference.logits.values)).toBeLessThan(1e-4);
    },
  );

  it('greedy decoding of chunked logits gives the offline transcript', async () => {
    const offline = await recognizeLogMel(recognizer, mel);
    // The fixture's seed was chosen for a path with blanks, spaces and repeats.
    expect(offline.text).toMatch(/\S \S/);
    const vocab = recognizer.config.encoder.vocabSize;
    const logits = await streamedLogits(recognizer, mel, chunksOf(reference.mel.frames, 5));
    let state = CTC_GREEDY_START;
    const streamed: CtcEmissions = { labels: [], frames: [] };
    for (let at = 0; at < logits.length; at += 2 * vocab) {
      const step = ctcGreedyChunk(state, logits.subarray(at, at + 2 * vocab), vocab);
      state = step.state;
      streamed.labels.push(...step.emitted.labels);
      streamed.frames.push(...step.emitted.frames);
    }
    expect(streamed).toEqual(offline.emissions);
    expect(offline.words.map((w) => w.word).join(' ')).toBe(offline.text.trim().split(/ +/).join(' '));
  });

  it("audio through the TypeScript log-mel gives the twin's logits (front end and framing agree)", async () => {
    const samples = Float32Array.from(reference.audio.pcm16, (v) => v / 32768);
    const { encoder, nFft, hop } = recognizer.config;
    const frames = rawLogMelFrames(samples, { padTo: false, nMels: encoder.nMels, nFft, hop });
    expect(frames.length / encoder.nMels).toBe(reference.audio.mel_frames);
    const logits = await recognizerLogits(recognizer, frames);
    // Twice the bound of the mel input: the two float32 STFTs differ by about 1e-5 in log-mel.
    expect(maxAbsDiff(logits, reference.audio.logits.values)).toBeLessThan(2e-4);
    const unpadded = await recognizeAudio(recognizer, samples, { tailPaddingSeconds: 0 });
    expect(unpadded).toEqual(await recognizeLogMel(recognizer, frames));
  });

  it('recognizeAudio appends the tail padding before the log-mel, and only that', async () => {
    const samples = Float32Array.from(reference.audio.pcm16, (v) => v / 32768);
    const { encoder, nFft, hop, sampleRate } = recognizer.config;
    const framing = { padTo: false, nMels: encoder.nMels, nFft, hop } as const;
    for (const seconds of [RECOGNIZER_TAIL_PADDING_SECONDS, 0.05]) {
      const padded = new Float32Array(samples.length + Math.round(seconds * sampleRate));
      padded.set(samples);
      padded.set(tailPadding(seconds, sampleRate), samples.length);
      const whole = await recognizeLogMel(recognizer, rawLogMelFrames(padded, framing));
      const options = seconds === RECOGNIZER_TAIL_PADDING_SECONDS ? {} : { tailPaddingSeconds: seconds };
      const transcript = await recognizeAudio(recognizer, samples, options);
      expect(transcript.text).toBe(whole.text);
      expect(transcript.emissions).toEqual(whole.emissions);
      // Word times stop at the audio's end; the padding's frames are not the audio's.
      const audioSeconds = samples.length / sampleRate;
      expect(transcript.words).toEqual(
        whole.words.map((w) => ({
          ...w,
          start: Math.min(w.start, audioSeconds),
          end: Math.min(w.end, audioSeconds),
        })),
      );
    }
  });

  it('recognizeAudio refuses audio too short for a frame, and a bad padding, whatever the padding', async () => {
    const { nFft } = recognizer.config;
    const before = tf.memory().numTensors;
    await expect(recognizeAudio(recognizer, new Float32Array(nFft / 2))).rejects.toThrow(
      /audio has \d+ samples; reflect padding needs at least/,
    );
    await expect(recognizeAudio(recognizer, new Float32Array(0))).rejects.toThrow(/audio is empty/);
    const samples = new Float32Array(4 * nFft);
    for (const tailPaddingSeconds of [-0.1, Number.NaN, Number.POSITIVE_INFINITY]) {
      await expect(recognizeAudio(recognizer, samples, { tailPaddingSeconds })).rejects.toThrow(
        /tail padding must be a finite number of seconds ≥ 0/,
      );
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('loadSpeechRecognizer on F16 weights', () => {
  it("gives the twin's logits on the F16-rounded weights within 1e-4", async () => {
    const recognizer = await loadSpeechRecognizer(FIXTURE_F16);
    try {
      const logits = await recognizerLogits(recognizer, mel);
      expect(maxAbsDiff(logits, reference.logits_f16_weights.values)).toBeLessThan(1e-4);
    } finally {
      recognizer.dispose();
    }
  });
});

describe('loadSpeechRecognizer: bad folders name what is wrong and leave no tensor behind', () => {
  const made: string[] = [];
  afterAll(() => {
    for (const dir of made) rmSync(dir, { recursive: true, force: true });
  });

  /** A folder with the fixture's config (fields replaced by `config`) and its weights, or `weights` written instead. */
  async function folder(
    options: {
      config?: Record<string, unknown> | string | false;
      weights?: Record<string, TensorToWrite> | false;
    } = {},
  ): Promise<string> {
    const dir = mkdtempSync(join(tmpdir(), 'specstream-recognizer-'));
    made.push(dir);
    const { config = {}, weights } = options;
    if (typeof config === 'string') writeFileSync(join(dir, 'config.json'), config);
    else if (config !== false)
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...fixtureConfig, ...config }));
    if (weights === undefined)
      symlinkSync(join(FIXTURE, 'model.safetensors'), join(dir, 'model.safetensors'));
    else if (weights !== false) await writeSafetensors(join(dir, 'model.safetensors'), weights);
    return dir;
  }

  /** The fixture's tensors, changed by `edit`. */
  async function tensors(
    edit: (all: Record<string, TensorToWrite>) => void,
  ): Promise<Record<string, TensorToWrite>> {
    const file = await openSafetensors(join(FIXTURE, 'model.safetensors'));
    const all: Record<string, TensorToWrite> = {};
    for (const name of file.names) {
      const { values } = await file.readValues(name);
      all[name] = { dtype: 'F32', shape: file.info(name).shape, data: values };
    }
    await file.close();
    edit(all);
    return all;
  }

  const cases: [
    string,
    () => Promise<string>,
    typeof InvalidArgumentError | typeof SafetensorsError,
    RegExp,
  ][] = [
    [
      'a missing folder',
      async () => join(tmpdir(), 'no-such-recognizer'),
      InvalidArgumentError,
      /no-such-recognizer does not exist/,
    ],
    ['no config.json', () => folder({ config: false }), InvalidArgumentError, /has no config\.json/],
    [
      'config.json not JSON',
      () => folder({ config: '{ "model_type": ' }),
      InvalidArgumentError,
      /config\.json is not valid JSON/,
    ],
    [
      'another model_type',
      () => folder({ config: { model_type: 'llama' } }),
      InvalidArgumentError,
      /model_type is "llama", not "specstream-ctc"/,
    ],
    [
      'a missing field',
      () => folder({ config: { d_model: undefined } }),
      InvalidArgumentError,
      /config\.json: d_model must be an integer >= 1, got undefined/,
    ],
    [
      'heads not dividing d_model',
      () => folder({ config: { heads: 3 } }),
      InvalidArgumentError,
      /config\.json: config\.dModel \(\d+\) must be a multiple of config\.heads \(3\)/,
    ],
    [
      'a short vocabulary',
      () => folder({ config: { vocabulary: ['', 'a'] } }),
      InvalidArgumentError,
      /vocabulary has 2 labels but vocab_size is \d+/,
    ],
    [
      'another sample rate',
      () => folder({ config: { sample_rate: 8000 } }),
      InvalidArgumentError,
      /sample_rate must be 16000/,
    ],
    ['no model.safetensors', () => folder({ weights: false }), SafetensorsError, /no model\.safetensors/],
    [
      'a missing tensor',
      async () => folder({ weights: await tensors((all) => delete all['layers.1.mlp.down.bias']) }),
      SafetensorsError,
      /needs tensor "layers\.1\.mlp\.down\.bias" \[\d+\], which the checkpoint lacks/,
    ],
    [
      'a mis-shaped tensor',
      async () =>
        folder({
          weights: await tensors((all) => {
            const t = all['layers.0.attn.q.weight'];
            all['layers.0.attn.q.weight'] = { ...t, shape: [t.shape[1] / 2, t.shape[0] * 2] };
          }),
        }),
      SafetensorsError,
      /tensor "layers\.0\.attn\.q\.weight" is \[\d+,\d+\], but config\.json's sizes need \[\d+,\d+\]/,
    ],
    [
      'more layers than config.json says',
      () => folder({ config: { layers: (fixtureConfig.layers as number) - 1 } }),
      SafetensorsError,
      /unexpected tensors "layers\.1\..*" and \d+ more \(config\.json says 1 layers\)/,
    ],
    [
      'an integer tensor',
      async () =>
        folder({
          weights: await tensors((all) => {
            const { shape } = all['ctc_head.weight'];
            all['ctc_head.weight'] = {
              dtype: 'I32',
              shape,
              data: new Int32Array(shape.reduce((a, b) => a * b)),
            };
          }),
        }),
      SafetensorsError,
      /tensor "ctc_head\.weight" is I32, not a float tensor/,
    ],
  ];

  it.each(cases)('%s', async (_, make, errorClass, message) => {
    await expectLoadFailure(await make(), errorClass, message);
  });

  it('a read failing part-way frees the tensors read before', async () => {
    const file = await openSafetensors(join(FIXTURE, 'model.safetensors'));
    const config = await readSpeechRecognizerConfig(FIXTURE);
    let reads = 0;
    const failing: TensorReader = {
      ...file,
      readValues: (name) => {
        if (++reads === 12) return Promise.reject(new SafetensorsError('test', `cannot read ${name}`));
        return file.readValues(name);
      },
    };
    const before = tf.memory().numTensors;
    await expect(readRecognizerWeights(failing, config)).rejects.toThrow(/cannot read/);
    expect(tf.memory().numTensors).toBe(before);
    await file.close();
  });

  it('the tensor list covers every name the twin exports', () => {
    const names = [...recognizerTensorShapes({ encoder: { layers: 1 } } as never).keys()];
    expect(names).toEqual([
      'conv1.weight',
      'conv1.bias',
      'conv2.weight',
      'conv2.bias',
      ...['attn_norm', 'attn.q', 'attn.k', 'attn.v', 'attn.o', 'mlp_norm', 'mlp.up', 'mlp.down'].flatMap(
        (p) => [`layers.0.${p}.weight`, `layers.0.${p}.bias`],
      ),
      'final_norm.weight',
      'final_norm.bias',
      'ctc_head.weight',
      'ctc_head.bias',
    ]);
  });
});
