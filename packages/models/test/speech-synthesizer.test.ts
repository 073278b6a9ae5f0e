import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maxAbsDiff } from '../../../test-support/max-abs-diff.js';
import {
  float32ToHalfBits,
  halfBitsToFloat32,
  openSafetensors,
  SafetensorsError,
  type TensorToWrite,
  writeSafetensors,
} from '../src/safetensors/index.js';
import { synthesizeSpeech } from '../src/speech/synthesize-speech.js';
import { loadSpeechSynthesizer, type SpeechSynthesizer } from '../src/speech/synthesizer.js';

/** tools/speech/fixture_synthesizer.py's tiny random synthesizer and its PyTorch twin's outputs. */
const FIXTURE = fileURLToPath(new URL('./fixtures/speech-synthesizer-tiny/', import.meta.url));

interface Case {
  text: string;
  spoken: string;
  ids: number[];
  steps: number;
  /** [steps][r·n_mels]. */
  frames: number[][];
  stop_logits: number[];
}
const reference = JSON.parse(readFileSync(join(FIXTURE, 'reference.json'), 'utf8')) as { cases: Case[] };
/** The fields of the fixture's config.json the tests read (snake_case, as train_speech.py writes them). */
interface FixtureConfig {
  vocab_size: number;
  hidden_size: number;
  text_layers: number;
  decoder_layers: number;
  ff_size: number;
  n_mels: number;
  frames_per_step: number;
  sample_rate: number;
  hop: number;
  n_fft: number;
  text_lookahead: number;
  text_tokens_per_step: number;
  stop_threshold: number;
  mel_floor: number;
  symbols: string[];
  vocoder: { iterations: number; lookahead: number };
}
const fixtureConfig = JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8')) as FixtureConfig;
/** float32 against the twin's float64, through every layer and the autoregressive loop. */
const TOLERANCE = 1e-4;

interface TwinRun {
  frames: Float32Array;
  stopLogits: Float32Array;
  validFrames: number;
  done: boolean;
}

/** The whole text appended, then `steps` decoder steps in calls of `calls` steps (as extendStep runs them). */
async function runTwinCase(speech: SpeechSynthesizer, c: Case, calls = [c.steps]): Promise<TwinRun> {
  const { synthesizer } = speech;
  const state = synthesizer.createState({ batch: 1, maxFrames: c.steps * synthesizer.framesPerStep });
  const frames: Float32Array[] = [];
  const stops: Float32Array[] = [];
  let validFrames = 0;
  try {
    synthesizer.appendText(state, [c.ids]);
    synthesizer.endText(state);
    for (const steps of calls) {
      const result = await synthesizer.extendStep(state, steps);
      frames.push(result.frames.dataSync() as Float32Array);
      result.frames.dispose();
      stops.push(result.stopLogits);
      validFrames += result.validFrames[0];
    }
    return { frames: concat(frames), stopLogits: concat(stops), validFrames, done: state.done[0] };
  } finally {
    synthesizer.disposeState(state);
  }
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The first step that sees the whole text and whose stop probability passes the threshold. */
function stopStep(speech: SpeechSynthesizer, c: Case): number {
  const threshold = Math.log(fixtureConfig.stop_threshold / (1 - fixtureConfig.stop_threshold));
  return c.stop_logits.findIndex(
    (logit, s) => speech.synthesizer.visibleText(s, c.ids.length) === c.ids.length && logit > threshold,
  );
}

const folders: string[] = [];
function tempFolder(): string {
  const dir = mkdtempSync(join(tmpdir(), 'specstream-speech-synth-'));
  folders.push(dir);
  return dir;
}

/** A copy of the fixture whose config.json fields are replaced (undefined deletes one). */
function withConfig(changes: Record<string, unknown>): string {
  const dir = tempFolder();
  const config: Record<string, unknown> = { ...fixtureConfig, ...changes };
  for (const [key, value] of Object.entries(changes)) if (value === undefined) delete config[key];
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  symlinkSync(join(FIXTURE, 'model.safetensors'), join(dir, 'model.safetensors'));
  return dir;
}

/** A copy of the fixture with its tensors changed by `edit` (a name → tensor map, in F32). */
async function withTensors(edit: (tensors: Map<string, TensorToWrite>) => void): Promise<string> {
  const dir = tempFolder();
  const file = await openSafetensors(join(FIXTURE, 'model.safetensors'));
  const tensors = new Map<string, TensorToWrite>();
  try {
    for (const name of file.names) {
      const { values } = await file.readValues(name);
      tensors.set(name, { dtype: 'F32', shape: file.info(name).shape, data: values });
    }
  } finally {
    await file.close();
  }
  edit(tensors);
  await writeSafetensors(join(dir, 'model.safetensors'), Object.fromEntries(tensors));
  symlinkSync(join(FIXTURE, 'config.json'), join(dir, 'config.json'));
  return dir;
}

let speech: SpeechSynthesizer;
beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  speech = await loadSpeechSynthesizer(FIXTURE);
});
afterAll(() => {
  speech?.dispose();
  for (const dir of folders) rmSync(dir, { recursive: true, force: true });
});

describe('loadSpeechSynthesizer', () => {
  it('reads every value of config.json: the model, the vocoder and the symbols', () => {
    const { model, vocoder, symbols } = speech.config;
    expect(model.vocabSize).toBe(fixtureConfig.vocab_size);
    expect(model.hiddenSize).toBe(fixtureConfig.hidden_size);
    expect(model.textLayers).toBe(fixtureConfig.text_layers);
    expect(model.decoderLayers).toBe(fixtureConfig.decoder_layers);
    expect(model.textLookahead).toBe(fixtureConfig.text_lookahead);
    expect(model.textTokensPerStep).toBe(fixtureConfig.text_tokens_per_step);
    expect(symbols).toEqual(fixtureConfig.symbols);
    expect(speech.config.melFloor).toBe(fixtureConfig.mel_floor);
    const { synthesizer, vocoder: gl } = speech;
    expect([synthesizer.nMels, synthesizer.framesPerStep, synthesizer.sampleRate, synthesizer.hop]).toEqual([
      fixtureConfig.n_mels,
      fixtureConfig.frames_per_step,
      fixtureConfig.sample_rate,
      fixtureConfig.hop,
    ]);
    expect([gl.nFft, gl.hop, gl.nMels, gl.sampleRate]).toEqual([
      fixtureConfig.n_fft,
      fixtureConfig.hop,
      fixtureConfig.n_mels,
      fixtureConfig.sample_rate,
    ]);
    expect([gl.iterations, gl.lookahead, gl.minHz, gl.maxHz]).toEqual([
      fixtureConfig.vocoder.iterations,
      fixtureConfig.vocoder.lookahead,
      0,
      Math.min(8000, fixtureConfig.sample_rate / 2),
    ]);
    expect(vocoder.nFft).toBe(fixtureConfig.n_fft);
  });

  it('textToIds normalises like text.py and maps the symbols as train_speech.py does', () => {
    for (const c of reference.cases) {
      expect(speech.textToIds(c.text)).toEqual(c.ids);
      expect(speech.symbolIds(c.spoken)).toEqual(c.ids);
    }
    // Characters without a symbol are dropped; id 0 (padding) never comes from text.
    expect(speech.symbolIds('a\u00e9<pad>\n')).toEqual(speech.symbolIds('apad'));
  });

  it('gives the PyTorch twin’s frames and stop logits, run autoregressively', async () => {
    const r = speech.synthesizer.framesPerStep;
    for (const c of reference.cases) {
      const twin = c.frames.flat();
      const run = await runTwinCase(speech, c);
      const frameDiff = maxAbsDiff(run.frames, twin);
      const stopDiff = maxAbsDiff(run.stopLogits, c.stop_logits);
      console.log(
        `${JSON.stringify(c.text)}: ${c.steps} steps, max |Δ| frames ${frameDiff}, stop logits ${stopDiff}`,
      );
      expect(frameDiff).toBeLessThanOrEqual(TOLERANCE);
      expect(stopDiff).toBeLessThanOrEqual(TOLERANCE);
      // Both texts stop (the fixture's stop bias makes it so), where the twin's logits say.
      const stop = stopStep(speech, c);
      expect(stop).toBeGreaterThan(0);
      expect(run.done).toBe(true);
      expect(run.validFrames).toBe((stop + 1) * r);
      // In calls of other sizes: the same values.
      const split = await runTwinCase(speech, c, [1, 3, c.steps - 4]);
      expect(maxAbsDiff(split.frames, run.frames)).toBeLessThanOrEqual(1e-5);
    }
  });

  it('frames do not depend on when the text arrived, bit for bit, with any KV cache', async () => {
    const ids = reference.cases.flatMap((c) => c.ids);
    const steps = 3 * ids.length;
    /** Text arrives `chunk` ids at a time whenever no step is ready, each id appended alone. */
    const interleaved = async (
      synthesizer: SpeechSynthesizer['synthesizer'],
      chunk: number,
      perCall: number,
    ) => {
      const r = synthesizer.framesPerStep;
      const state = synthesizer.createState({ batch: 1, maxFrames: steps * r });
      const frames: Float32Array[] = [];
      let at = 0;
      while (state.lengths[0] < steps * r) {
        const ready = synthesizer.readySteps(state);
        if (ready > 0) {
          const left = (steps * r - state.lengths[0]) / r;
          const result = await synthesizer.extendStep(state, Math.min(ready, perCall, left));
          frames.push(result.frames.dataSync() as Float32Array);
          result.frames.dispose();
        } else if (at < ids.length) {
          for (const id of ids.slice(at, at + chunk)) synthesizer.appendText(state, [[id]]);
          at += chunk;
        } else synthesizer.endText(state);
      }
      synthesizer.disposeState(state);
      return concat(frames);
    };
    for (const kvCache of ['inplace', 'concat', 'blocks'] as const) {
      const loaded = await loadSpeechSynthesizer(FIXTURE, { kvCache });
      try {
        const whole = await interleaved(loaded.synthesizer, ids.length, 4);
        for (const [chunk, perCall] of [
          [1, 1],
          [3, 2],
          [16, 4],
          [7, 5],
        ]) {
          const diff = maxAbsDiff(await interleaved(loaded.synthesizer, chunk, perCall), whole);
          expect(diff, `${kvCache}: ${chunk} ids at a time, ${perCall} steps a call`).toBe(0);
        }
      } finally {
        loaded.dispose();
      }
    }
  });

  it('reads F16 checkpoints (as the trainer ships them) exactly as their values in F32', async () => {
    const rounded = (values: ArrayLike<number>) => halfBitsToFloat32(float32ToHalfBits(values));
    const f16Dir = await withTensors((tensors) => {
      for (const t of tensors.values()) t.dtype = 'F16';
    });
    const f32Dir = await withTensors((tensors) => {
      for (const t of tensors.values()) t.data = rounded(t.data as ArrayLike<number>);
    });
    const half = await loadSpeechSynthesizer(f16Dir);
    const full = await loadSpeechSynthesizer(f32Dir);
    try {
      const c = reference.cases[0];
      const a = await runTwinCase(half, c);
      const b = await runTwinCase(full, c);
      expect(maxAbsDiff(a.frames, b.frames)).toBe(0);
      // Rounding the weights to F16 moves the output, but not far.
      expect(maxAbsDiff(a.frames, c.frames.flat())).toBeLessThan(0.1);
    } finally {
      half.dispose();
      full.dispose();
    }
  });
});

describe('loadSpeechSynthesizer: bad folders fail by name and leave no tensor behind', () => {
  const cases: Array<[string, () => Promise<string> | string, RegExp]> = [
    ['no folder', () => join(tmpdir(), 'specstream-no-such-synthesizer'), /cannot read .*config\.json/],
    [
      'another model type',
      () => withConfig({ model_type: 'specstream-ctc' }),
      /"specstream-ctc" model, not specstream-synthesizer/,
    ],
    [
      'a field missing',
      () => withConfig({ hop: undefined }),
      /config\.json: hop must be a number, got nothing/,
    ],
    [
      'symbols of another size',
      () => withConfig({ symbols: ['<pad>', 'a'] }),
      /symbols has 2 entries, vocab_size is \d+/,
    ],
    [
      'a symbol of two characters',
      () => withConfig({ symbols: ['<pad>', 'ab', ...fixtureConfig.symbols.slice(2)] }),
      /symbol 1 must be one character/,
    ],
    ['no vocoder settings', () => withConfig({ vocoder: undefined }), /vocoder must be an object/],
    [
      'a hop the vocoder cannot take',
      () => withConfig({ n_fft: fixtureConfig.hop }),
      /hop .* must be at most nFft\/2/,
    ],
    [
      'more text layers than the weights',
      () => withConfig({ text_layers: fixtureConfig.text_layers + 1 }),
      /lacks \d+ tensor\(s\) the config implies, first "text_layers\.\d+\.attn_norm\.weight"/,
    ],
    [
      'fewer decoder layers than the weights',
      () => withConfig({ decoder_layers: fixtureConfig.decoder_layers - 1 }),
      /has \d+ tensor\(s\) the config does not imply, first "decoder_layers\.\d+\./,
    ],
    [
      'a wider model than the weights',
      () => withConfig({ ff_size: fixtureConfig.ff_size * 2 }),
      /"text_layers\.0\.mlp\.up\.weight" has shape \[\d+,\d+\], the config implies/,
    ],
    [
      'a missing tensor',
      () => withTensors((t) => t.delete('stop_head.bias')),
      /lacks 1 tensor\(s\) .* first "stop_head\.bias"/,
    ],
    [
      'a tensor of the wrong shape',
      () =>
        withTensors((t) => {
          const w = t.get('frame_head.weight')!;
          t.set('frame_head.weight', { ...w, shape: [w.shape[1], w.shape[0]] });
        }),
      /"frame_head\.weight" has shape/,
    ],
    [
      'an integer tensor',
      () =>
        withTensors((t) => {
          const b = t.get('final_norm.bias')!;
          t.set('final_norm.bias', { dtype: 'I32', shape: b.shape, data: new Int32Array(b.shape[0]) });
        }),
      /"final_norm\.bias" is I32, not a float type/,
    ],
  ];
  it.each(cases)('%s', async (_, folder, message) => {
    const dir = await folder();
    const before = tf.memory().numTensors;
    await expect(loadSpeechSynthesizer(dir)).rejects.toThrow(message);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a folder with no model.safetensors', async () => {
    const dir = tempFolder();
    symlinkSync(join(FIXTURE, 'config.json'), join(dir, 'config.json'));
    await expect(loadSpeechSynthesizer(dir)).rejects.toThrow(SafetensorsError);
  });
});

describe('synthesizeSpeech', () => {
  it('speaks a text to the twin’s frames up to the stop, vocoded, and frees every tensor', async () => {
    const { hop, nMels, framesPerStep: r } = speech.synthesizer;
    for (const c of reference.cases) {
      const before = tf.memory().numTensors;
      const spoken = await synthesizeSpeech(speech, c.text, { stepsPerCall: 3 });
      expect(tf.memory().numTensors).toBe(before);
      expect(spoken.spoken).toBe(c.spoken);
      expect(spoken.ids).toEqual(c.ids);
      expect(spoken.stopped).toBe(true);
      const frames = (stopStep(speech, c) + 1) * r;
      expect(spoken.frameCount).toBe(frames);
      expect(maxAbsDiff(spoken.frames, c.frames.flat().slice(0, frames * nMels))).toBeLessThanOrEqual(
        TOLERANCE,
      );
      expect(spoken.samples.length).toBe(frames * hop);
      expect(spoken.sampleRate).toBe(fixtureConfig.sample_rate);
      // The vocoder's own offline run of the same frames.
      expect(maxAbsDiff(spoken.samples, speech.vocoder.vocode(spoken.frames))).toBe(0);
    }
  });

  it('stops at maxFrames when the model has not stopped; refuses text with nothing to say; aborts', async () => {
    const before = tf.memory().numTensors;
    const r = speech.synthesizer.framesPerStep;
    const short = await synthesizeSpeech(speech, reference.cases[1].text, { maxFrames: 5 * r });
    expect(short.stopped).toBe(false);
    expect(short.frameCount).toBe(5 * r);
    await expect(synthesizeSpeech(speech, ' ... -- ')).rejects.toThrow(/nothing to speak/);
    const controller = new AbortController();
    controller.abort(new Error('stop now'));
    await expect(synthesizeSpeech(speech, 'hello', { signal: controller.signal })).rejects.toThrow(
      'stop now',
    );
    expect(tf.memory().numTensors).toBe(before);
  });
});
