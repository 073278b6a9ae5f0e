import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { concatFloat32, initBackend } from '@specstream/core';
import {
  CTC_BEAM_WIDTH,
  type CtcDecoder,
  loadSpeechRecognizer,
  RECOGNIZER_TAIL_PADDING_SECONDS,
  recognizeAudio,
  type SpeechRecognizer,
  trainCharNgramLm,
} from '@specstream/models';
import { resample, wavFileSource, writeWavFile } from '@specstream/streaming';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_BEAM,
  DEFAULT_RECOGNIZER,
  DEFAULT_TAIL_PADDING_SECONDS,
} from '../src/commands/transcribe.js';
import { EXIT, main } from '../src/index.js';
import { expectOneLine, jsonLines, REPO_ROOT, runCli } from './helpers.js';

/** tools/speech/fixture_recognizer.py's tiny random recognizer: noise for text, but deterministic. */
const RECOGNIZER = join(REPO_ROOT, 'packages/models/test/fixtures/speech-recognizer-tiny');
/** Real speech (espeak-ng, 2.9 s, 16 kHz; packages/streaming/test/fixtures/README.md). */
const SPEECH = join(REPO_ROOT, 'packages/streaming/test/fixtures/speech-16k.wav');
/** The fixture's folder has no LM text: by default the CLI runs a beam search on the acoustic scores alone. */
const DEFAULT_DECODER: CtcDecoder = { beamWidth: DEFAULT_BEAM };

it("the CLI's default beam is the width the models package tuned its LM weights at", () => {
  expect(DEFAULT_BEAM).toBe(CTC_BEAM_WIDTH);
});
it("the CLI's default tail padding, written out for --help, is the models package's", () => {
  expect(DEFAULT_TAIL_PADDING_SECONDS).toBe(RECOGNIZER_TAIL_PADDING_SECONDS);
});
/** Sentences for a character LM (any text over the recognizer's letters). */
const LM_SENTENCES = ['the cat sat on the mat', "it's a dog and a cat", 'a mat for the dog'];

// The cli package does not depend on tfjs itself: the copy core resolves is the one whose engine counts.
const tf = createRequire(join(import.meta.dirname, '../../core/package.json'))('@tensorflow/tfjs-core') as {
  memory(): { numTensors: number };
};

let dir: string;
let recognizer: SpeechRecognizer;
/** The speech as the 16 kHz WAV written here decodes (16-bit: k/32768). */
let speech: Float32Array;
let wav16k: string;
let wav22k: string;
let lmText: string;

/** What the CLI's tests need of an rxjs Observable (rxjs is no dependency of this package). */
interface Stream<T> {
  subscribe(observer: { next(value: T): void; error(error: unknown): void; complete(): void }): unknown;
}

/** Every value a stream emits, once it completes. */
function values<T>(stream: Stream<T>): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const all: T[] = [];
    stream.subscribe({ next: (v) => all.push(v), error: reject, complete: () => resolve(all) });
  });
}

const collect = async (samples: Stream<Float32Array>) => concatFloat32(await values(samples));

/** Bytes of raw audio as `s16le` or `f32le`. */
function pcm(samples: Float32Array, format: 's16le' | 'f32le'): Buffer {
  if (format === 'f32le') return Buffer.from(new Float32Array(samples).buffer);
  const bytes = Buffer.alloc(2 * samples.length);
  samples.forEach((x, i) => {
    bytes.writeInt16LE(Math.max(-32768, Math.min(32767, Math.round(x * 32768))), 2 * i);
  });
  return bytes;
}

/** runCli with binary stdin (runCli's stdin is text): the CLI in this process, stdin a stream of `bytes` in pieces. */
async function runWithStdin(args: string[], bytes: Buffer) {
  let stdout = '';
  let stderr = '';
  const out = new PassThrough().on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8');
  });
  const err = new PassThrough().on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const pieces = Array.from({ length: Math.ceil(bytes.length / 4093) }, (_, i) =>
    bytes.subarray(i * 4093, (i + 1) * 4093),
  );
  const code = await main(['transcribe', '-', '--backend', 'wasm', '--model', RECOGNIZER, ...args], {
    stdout: out,
    stderr: err,
    stdin: Readable.from(pieces),
    stdoutIsTty: false,
    stdinIsTty: false,
    stderrIsTty: false,
    env: {},
    interrupt: new AbortController().signal,
  });
  await new Promise((resolve) => setImmediate(resolve));
  return { code, stdout, stderr };
}

const transcribe = (...args: string[]) =>
  runCli(['transcribe', '--backend', 'wasm', '--model', RECOGNIZER, ...args]);

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  recognizer = await loadSpeechRecognizer(RECOGNIZER);
  dir = mkdtempSync(join(tmpdir(), 'specstream-cli-transcribe-'));
  const source = await wavFileSource(SPEECH);
  wav16k = join(dir, 'speech-16k.wav');
  await values(source.samples.pipe(writeWavFile(wav16k, 16000)));
  speech = await collect((await wavFileSource(wav16k)).samples);
  lmText = join(dir, 'sentences.txt');
  writeFileSync(lmText, `${LM_SENTENCES.join('\n')}\n`);
  wav22k = join(dir, 'speech-22k.wav');
  await values(source.samples.pipe(resample(16000, 22050), writeWavFile(wav22k, 22050)));
});
afterAll(() => {
  recognizer?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe('transcribe', () => {
  it('prints the offline text of a 16 kHz WAV on stdout', async () => {
    const offline = await recognizeAudio(recognizer, speech, { decoder: DEFAULT_DECODER });
    expect(offline.text.length).toBeGreaterThan(3);
    const result = await transcribe(wav16k);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(EXIT.ok);
    expect(result.stdout).toBe(`${offline.text}\n`);
  });

  it.each([
    ['160', '0'],
    ['320', '0'],
    ['40', '0'],
    ['10', '0'],
    ['320', String(DEFAULT_BEAM)],
    ['40', '3'],
  ])(
    '--json --chunk-ms %s --beam %s: NDJSON partials, then a final event with the offline text and words',
    async (chunkMs, beam) => {
      const decoder: CtcDecoder = beam === '0' ? 'greedy' : { beamWidth: Number(beam) };
      const offline = await recognizeAudio(recognizer, speech, { decoder });
      const result = await transcribe(wav16k, '--json', '--chunk-ms', chunkMs, '--beam', beam);
      expect(result.code).toBe(EXIT.ok);
      expect(result.stderr).toBe('');
      const events = jsonLines(result.stdout);
      const final = events.at(-1)!;
      expect(final).toMatchObject({ type: 'final', text: offline.text, words: offline.words });
      expect(final.audioSeconds).toBe(speech.length / 16000);
      const partials = events.slice(0, -1);
      const melFrames = Math.floor(speech.length / 160);
      const framesPerCall = Number(chunkMs) / 10;
      // A partial per encoder call that completes an output frame (4 log-mel frames).
      const calls = Math.ceil(melFrames / framesPerCall);
      expect(partials.length).toBeGreaterThanOrEqual(Math.min(calls, Math.floor(melFrames / 4)) - 1);
      for (const event of partials) {
        expect(event.type).toBe('partial');
        // Greedy text is final once shown; a beam's best guess may change.
        if (decoder === 'greedy') expect(offline.text.startsWith(event.text as string)).toBe(true);
        expect(event.latencyMs).toBeGreaterThanOrEqual(0);
      }
      expect(partials[0].audioSeconds).toBeCloseTo(Math.ceil(4 / framesPerCall) * framesPerCall * 0.01, 9);
      const elapsed = events.map((e) => e.elapsedMs as number);
      expect(elapsed.every((t, i) => t >= 0 && (i === 0 || t >= elapsed[i - 1]))).toBe(true);
    },
  );

  it('resamples a WAV of another rate to 16 kHz first', async () => {
    const resampled = await collect((await wavFileSource(wav22k)).samples.pipe(resample(22050, 16000)));
    const offline = await recognizeAudio(recognizer, resampled, { decoder: DEFAULT_DECODER });
    const result = await transcribe(wav22k, '--json');
    expect(result.code).toBe(EXIT.ok);
    expect(jsonLines(result.stdout).at(-1)).toMatchObject({ type: 'final', text: offline.text });
  });

  it('- reads raw s16le 16 kHz PCM from stdin', async () => {
    const offline = await recognizeAudio(recognizer, speech, { decoder: DEFAULT_DECODER });
    const result = await runWithStdin([], pcm(speech, 's16le'));
    expect(result.stderr).toBe('');
    expect(result.code).toBe(EXIT.ok);
    expect(result.stdout).toBe(`${offline.text}\n`);
  });

  it('- with --format f32le --rate 22050 resamples the stdin stream', async () => {
    const wav = await wavFileSource(wav22k);
    const samples = await collect(wav.samples);
    // resample gives the same samples however its input is chunked.
    const offline = await recognizeAudio(
      recognizer,
      await collect(wav.samples.pipe(resample(22050, 16000))),
      {
        decoder: DEFAULT_DECODER,
      },
    );
    const result = await runWithStdin(['--format', 'f32le', '--rate', '22050'], pcm(samples, 'f32le'));
    expect(result.code).toBe(EXIT.ok);
    expect(result.stdout).toBe(`${offline.text}\n`);
  });

  it('shows the growing text on stderr when it is a terminal', async () => {
    const result = await runCli(['transcribe', wav16k, '--backend', 'wasm', '--model', RECOGNIZER], {
      stderrTty: true,
    });
    expect(result.code).toBe(EXIT.ok);
    const draws = result.stderr.split('\r\x1b[K').filter((s) => s !== '');
    expect(draws.length).toBeGreaterThan(3);
    // The line is cleared before the final text goes to stdout.
    expect(result.stderr.endsWith('\r\x1b[K')).toBe(true);
    expect(`${draws.at(-1)}\n`).toBe(result.stdout);
  });

  it('Ctrl-C stops mid-stream, exits 130 and leaves no tensor behind', async () => {
    const before = tf.memory().numTensors;
    const result = await runCli(
      ['transcribe', wav16k, '--json', '--chunk-ms', '40', '--backend', 'wasm', '--model', RECOGNIZER],
      {
        onStdout: (_, interrupt) => interrupt.abort(),
      },
    );
    expect(result.code).toBe(EXIT.interrupted);
    expect(result.stderr).toBe('specstream: interrupted\n');
    const events = jsonLines(result.stdout);
    expect(events.length).toBeGreaterThan(0);
    expect(events.every((e) => e.type === 'partial')).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('--help says what - reads', async () => {
    const result = await runCli(['transcribe', '--help']);
    expect(result.code).toBe(EXIT.ok);
    expect(result.stdout).toMatch(
      /Usage: specstream transcribe[\s\S]*- for raw PCM on\s+stdin:\s+s16le,\s+16000\s+Hz,\s+mono[\s\S]*--chunk-ms/,
    );
  });

  it('--lm FILE: the beam search fuses a character LM trained on the file', async () => {
    const lm = trainCharNgramLm(LM_SENTENCES, recognizer.vocabulary);
    const decoder: CtcDecoder = { beamWidth: 8, lm };
    const fused = await recognizeAudio(recognizer, speech, { decoder });
    const plain = await recognizeAudio(recognizer, speech, { decoder: { beamWidth: 8 } });
    // The LM matters here: the fixture's noise reads differently with it.
    expect(fused.text).not.toBe(plain.text);
    const result = await transcribe(wav16k, '--beam', '8', '--lm', lmText);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(EXIT.ok);
    expect(result.stdout).toBe(`${fused.text}\n`);
  });

  /** Each value of `flag` makes the CLI print what recognizeAudio gives with `setting` at that value, and the values disagree. */
  async function expectBeamFlag(
    flag: string,
    setting: 'oovPenalty' | 'wordLmWeight',
    values: [number, number],
  ): Promise<[string, string]> {
    const lm = trainCharNgramLm(LM_SENTENCES, recognizer.vocabulary);
    const texts: string[] = [];
    for (const value of values) {
      const offline = await recognizeAudio(recognizer, speech, {
        decoder: { beamWidth: 8, lm, [setting]: value },
      });
      const result = await transcribe(wav16k, '--beam', '8', '--lm', lmText, flag, String(value));
      expect(result.stderr).toBe('');
      expect(result.stdout).toBe(`${offline.text}\n`);
      texts.push(offline.text);
    }
    // The fixture's noise reads differently at the two values: the flag is not ignored.
    expect(texts[1]).not.toBe(texts[0]);
    return texts as [string, string];
  }

  it("--oov-penalty: the beam search's penalty per word not in the LM's text", async () => {
    const [free, strict] = await expectBeamFlag('--oov-penalty', 'oovPenalty', [0, 8]);
    // The fixture's noise spells non-words: a high penalty turns it toward the LM's words.
    const known = new Set(LM_SENTENCES.flatMap((s) => s.split(' ')));
    const unknown = (text: string) => text.split(' ').filter((w) => w !== '' && !known.has(w)).length;
    expect(unknown(strict)).toBeLessThan(unknown(free));
  });

  it("--word-lm-weight: the weight of the word LM trained on the LM's text", async () => {
    // The fixture's noise spells words the LM's text never puts in that order.
    await expectBeamFlag('--word-lm-weight', 'wordLmWeight', [0, 4]);
  });

  it('--tail-padding: the seconds of faint noise after the audio, the same as offline', async () => {
    const texts = new Set<string>();
    for (const seconds of [0, 0.05, 1.5]) {
      const offline = await recognizeAudio(recognizer, speech, {
        decoder: DEFAULT_DECODER,
        tailPaddingSeconds: seconds,
      });
      texts.add(offline.text);
      const result = await transcribe(wav16k, '--tail-padding', String(seconds), '--json');
      expect(result.code).toBe(EXIT.ok);
      const final = jsonLines(result.stdout).at(-1);
      expect(final).toMatchObject({ type: 'final', text: offline.text, audioSeconds: speech.length / 16000 });
    }
    // The padding changes what the fixture's noise model hears at the end.
    expect(texts.size).toBeGreaterThan(1);
  });

  it("uses the LM text the recognizer folder's config.json names, unless --lm none", async () => {
    const folder = join(dir, 'with-lm');
    mkdirSync(folder);
    symlinkSync(join(RECOGNIZER, 'model.safetensors'), join(folder, 'model.safetensors'));
    const config = JSON.parse(readFileSync(join(RECOGNIZER, 'config.json'), 'utf8'));
    writeFileSync(join(folder, 'config.json'), JSON.stringify({ ...config, lm_text: 'sentences.txt' }));
    symlinkSync(lmText, join(folder, 'sentences.txt'));
    const lm = trainCharNgramLm(LM_SENTENCES, recognizer.vocabulary);
    const fused = await recognizeAudio(recognizer, speech, { decoder: { beamWidth: DEFAULT_BEAM, lm } });
    const run = (...args: string[]) =>
      runCli(['transcribe', wav16k, '--backend', 'wasm', '--model', folder, ...args]);
    expect((await run()).stdout).toBe(`${fused.text}\n`);
    const plain = await recognizeAudio(recognizer, speech, { decoder: DEFAULT_DECODER });
    expect((await run('--lm', 'none')).stdout).toBe(`${plain.text}\n`);
    const greedy = await recognizeAudio(recognizer, speech);
    expect((await run('--beam', '0')).stdout).toBe(`${greedy.text}\n`);
  });

  it('defaults to the shipped recognizer at the repository root', () => {
    expect(DEFAULT_RECOGNIZER).toBe(join(REPO_ROOT, 'models', 'specstream-speech-recognizer'));
  });
});

describe('transcribe: errors are one line with their exit code', () => {
  /** A recognizer folder with the fixture's weights and its config changed (or none). */
  function recognizerFolder(config: Record<string, unknown> | false): string {
    const folder = join(dir, `model-${Math.random().toString(36).slice(2)}`);
    mkdirSync(folder);
    symlinkSync(join(RECOGNIZER, 'model.safetensors'), join(folder, 'model.safetensors'));
    if (config !== false) {
      const base = JSON.parse(readFileSync(join(RECOGNIZER, 'config.json'), 'utf8'));
      writeFileSync(join(folder, 'config.json'), JSON.stringify({ ...base, ...config }));
    }
    return folder;
  }

  it.each<[string, () => string[], number, RegExp]>([
    [
      'a missing model folder',
      () => [wav16k, '--model', join(dir, 'nowhere')],
      EXIT.missingModel,
      /recognizer folder .*nowhere does not exist \(pass --model DIR\)$/,
    ],
    [
      'a folder without config.json',
      () => [wav16k, '--model', recognizerFolder(false)],
      EXIT.missingModel,
      /has no config\.json$/,
    ],
    [
      'a folder of another model',
      () => [wav16k, '--model', recognizerFolder({ model_type: 'llama' })],
      EXIT.unsupportedModel,
      /model_type is "llama", not "specstream-ctc"/,
    ],
    [
      'a config that does not fit the weights',
      () => [wav16k, '--model', recognizerFolder({ ff_dim: 8 })],
      EXIT.unsupportedModel,
      /tensor "layers\.0\.mlp\.up\.weight" is \[\d+,\d+\], but config\.json's sizes need \[8,\d+\]/,
    ],
    [
      'an lm_text that is no file name',
      () => [wav16k, '--model', recognizerFolder({ lm_text: 3 })],
      EXIT.unsupportedModel,
      /lm_text must be a file name in the folder, got 3/,
    ],
    [
      'a missing input file',
      () => [join(dir, 'none.wav'), '--model', RECOGNIZER],
      EXIT.usage,
      /input file .*none\.wav does not exist$/,
    ],
    [
      'a file that is not a WAV',
      () => [join(RECOGNIZER, 'config.json'), '--model', RECOGNIZER],
      EXIT.usage,
      /config\.json is not a readable WAV file/,
    ],
    [
      '--rate with a WAV file',
      () => [wav16k, '--model', RECOGNIZER, '--rate', '8000'],
      EXIT.usage,
      /--rate and --format describe raw PCM on stdin/,
    ],
    [
      '--chunk-ms not a multiple of 10',
      () => [wav16k, '--chunk-ms', '15'],
      EXIT.usage,
      /'--chunk-ms <ms>' argument '15' is invalid\. must be a positive multiple of 10\./,
    ],
    ['--chunk-ms 0', () => [wav16k, '--chunk-ms', '0'], EXIT.usage, /must be a positive multiple of 10/],
    [
      'a negative --beam',
      () => [wav16k, '--beam', '-1'],
      EXIT.usage,
      /'--beam <width>' argument '-1' is invalid/,
    ],
    [
      'a missing --lm file',
      () => [wav16k, '--model', RECOGNIZER, '--lm', join(dir, 'none.txt')],
      EXIT.usage,
      /LM text file .*none\.txt does not exist$/,
    ],
    [
      'a negative --oov-penalty',
      () => [wav16k, '--oov-penalty', '-1'],
      EXIT.usage,
      /'--oov-penalty <γ>' argument '-1' is invalid\. must be a number >= 0\./,
    ],
    [
      'a negative --word-lm-weight',
      () => [wav16k, '--word-lm-weight', '-1'],
      EXIT.usage,
      /'--word-lm-weight <δ>' argument '-1' is invalid\. must be a number >= 0\./,
    ],
    [
      '--word-lm-weight with --beam 0',
      () => [wav16k, '--model', RECOGNIZER, '--word-lm-weight', '1', '--beam', '0'],
      EXIT.usage,
      /--word-lm-weight needs a beam search with an LM/,
    ],
    [
      '--word-lm-weight without an LM text',
      () => [wav16k, '--model', RECOGNIZER, '--word-lm-weight', '1'],
      EXIT.usage,
      /--word-lm-weight needs an LM, and recognizer folder .* has no LM text/,
    ],
    [
      'a negative --tail-padding',
      () => [wav16k, '--tail-padding', '-0.1'],
      EXIT.usage,
      /'--tail-padding <seconds>' argument '-0.1' is invalid\. must be a number of seconds from 0 to 10\./,
    ],
    [
      '--oov-penalty with --lm none',
      () => [wav16k, '--model', RECOGNIZER, '--oov-penalty', '2', '--lm', 'none'],
      EXIT.usage,
      /--oov-penalty needs a beam search with an LM/,
    ],
    [
      '--oov-penalty without an LM text',
      () => [wav16k, '--model', RECOGNIZER, '--oov-penalty', '2'],
      EXIT.usage,
      /--oov-penalty needs an LM, and recognizer folder .* has no LM text/,
    ],
    [
      '--lm with --beam 0',
      () => [wav16k, '--model', RECOGNIZER, '--lm', lmText, '--beam', '0'],
      EXIT.usage,
      /--lm needs a beam search/,
    ],
  ])('%s', async (_, args, code, message) => {
    const result = await runCli(['transcribe', '--backend', 'wasm', ...args()]);
    expect(result.code).toBe(code);
    expect(expectOneLine(result.stderr)).toMatch(message);
    expect(result.stdout).toBe('');
  });

  it.each<[string, Buffer, RegExp]>([
    [
      'raw PCM cut inside a sample',
      Buffer.from('abc'),
      /^specstream: stdin: pcmReadableSource: the stream ended inside a frame/,
    ],
    [
      'audio too short for one frame',
      Buffer.alloc(200),
      /^specstream: stdin: .*100 samples; reflect padding needs at least 201/,
    ],
  ])('%s on stdin exits 2', async (_, bytes, message) => {
    const result = await runWithStdin([], bytes);
    expect(result.code).toBe(EXIT.usage);
    expect(expectOneLine(result.stderr)).toMatch(message);
  });
});
