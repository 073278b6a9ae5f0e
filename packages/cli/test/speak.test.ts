import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from '@specstream/core';
import { loadSpeechSynthesizer, type SpeechSynthesizer, synthesizeSpeech } from '@specstream/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../src/index.js';
import { expectOneLine, modelFolder, PROMPT, plainGenerate, removeModelFolders, runCli } from './helpers.js';

/** tools/speech/fixture_synthesizer.py's tiny random synthesizer (it stops once it has seen all the text). */
const SYNTHESIZER = fileURLToPath(
  new URL('../../models/test/fixtures/speech-synthesizer-tiny/', import.meta.url),
);
const TEXT = 'Hello there, it is 3.11 -- is it not?';

interface Wav {
  sampleRate: number;
  channels: number;
  bits: number;
  samples: Int16Array;
}

/** A 16-bit PCM WAV file's header fields and samples, checking that its lengths agree with the file's. */
function readWav(path: string): Wav {
  const bytes = readFileSync(path);
  expect(bytes.toString('ascii', 0, 4)).toBe('RIFF');
  expect(bytes.toString('ascii', 8, 12)).toBe('WAVE');
  expect(bytes.readUInt32LE(4)).toBe(bytes.length - 8);
  expect(bytes.toString('ascii', 36, 40)).toBe('data');
  const dataBytes = bytes.readUInt32LE(40);
  expect(dataBytes).toBe(bytes.length - 44);
  const data = bytes.subarray(44);
  return {
    channels: bytes.readUInt16LE(22),
    sampleRate: bytes.readUInt32LE(24),
    bits: bytes.readUInt16LE(34),
    samples: new Int16Array(data.buffer.slice(data.byteOffset, data.byteOffset + dataBytes)),
  };
}

/** The samples as the WAV writer quantises them (×32768, rounded, clipped). */
function int16(samples: Float32Array): Int16Array {
  return Int16Array.from(samples, (x) => Math.max(-32768, Math.min(32767, Math.round(x * 32768))));
}

let out: string;
let speech: SpeechSynthesizer;
beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  speech = await loadSpeechSynthesizer(SYNTHESIZER);
  out = mkdtempSync(join(tmpdir(), 'specstream-cli-speak-'));
});
afterAll(() => {
  speech?.dispose();
  removeModelFolders();
  rmSync(out, { recursive: true, force: true });
});

const speak = (...args: string[]) => runCli(['speak', '--backend', 'wasm', '--model', SYNTHESIZER, ...args]);

describe('speak', () => {
  it('speaks the text into a WAV file: the offline synthesis, with time to first audio and real-time factor', async () => {
    const path = join(out, 'hello.wav');
    const result = await speak(TEXT, '-o', path);
    expect(result.code).toBe(EXIT.ok);
    expect(result.stdout).toBe('');
    expect(expectOneLine(result.stderr)).toMatch(
      /^specstream: wrote .*hello\.wav: [\d.]+ s of audio at 16000 Hz \| first audio \d+ ms after the text \| real-time factor [\d.]+ \([\d.]+ s\)$/,
    );
    const wav = readWav(path);
    expect([wav.channels, wav.bits, wav.sampleRate]).toEqual([1, 16, speech.synthesizer.sampleRate]);
    const offline = await synthesizeSpeech(speech, TEXT);
    expect(offline.stopped).toBe(true);
    expect(wav.samples.length).toBe(offline.frameCount * speech.synthesizer.hop);
    expect(wav.samples).toEqual(int16(offline.samples));
  });

  it('reads the text from stdin when it is absent or -', async () => {
    const expected = int16((await synthesizeSpeech(speech, TEXT)).samples);
    for (const args of [[], ['-']]) {
      const path = join(out, `stdin-${args.length}.wav`);
      const result = await runCli(
        ['speak', ...args, '--backend', 'wasm', '--model', SYNTHESIZER, '-o', path],
        {
          stdin: `${TEXT}\n`,
        },
      );
      expect(result.code).toBe(EXIT.ok);
      expect(readWav(path).samples).toEqual(expected);
    }
  });

  it('bad folders, outputs and texts exit with one line and their own code', async () => {
    const wrongType = mkdtempSync(join(out, 'wrong-type-'));
    const config = JSON.parse(readFileSync(join(SYNTHESIZER, 'config.json'), 'utf8'));
    writeFileSync(join(wrongType, 'config.json'), JSON.stringify({ ...config, model_type: 'llama' }));
    symlinkSync(join(SYNTHESIZER, 'model.safetensors'), join(wrongType, 'model.safetensors'));
    const cases: Array<[string[], number, RegExp]> = [
      [
        [TEXT, '-o', join(out, 'x.wav'), '--model', join(out, 'nothing-here')],
        EXIT.missingModel,
        /does not exist/,
      ],
      [
        [TEXT, '-o', join(out, 'x.wav'), '--model', wrongType],
        EXIT.unsupportedModel,
        /"llama" model, not specstream-synthesizer/,
      ],
      [[TEXT, '-o', join(out, 'no-such-folder', 'x.wav')], EXIT.usage, /the folder of .* does not exist/],
      [[' -- ... ', '-o', join(out, 'x.wav')], EXIT.usage, /nothing to speak/],
      [[TEXT], EXIT.usage, /required option '-o, --output <file.wav>' not specified/],
    ];
    for (const [args, code, message] of cases) {
      const result = await speak(...args);
      expect(result.code, args.join(' ')).toBe(code);
      expect(expectOneLine(result.stderr)).toMatch(message);
    }
  });
});

describe('generate --speak', () => {
  it('speaks the generated text while it is generated: the WAV equals speaking the whole text', async () => {
    const path = join(out, 'generated.wav');
    const result = await runCli(
      plainGenerate(
        'wasm',
        modelFolder('llama'),
        '--max-new-tokens',
        '24',
        '--speak',
        path,
        '--speech-model',
        SYNTHESIZER,
      ),
    );
    expect(result.code).toBe(EXIT.ok);
    const lines = result.stderr.split('\n').filter((line) => line !== '');
    expect(lines[0]).toMatch(/^specstream: 24 tokens in/);
    expect(lines[1]).toMatch(
      /^specstream: wrote .*generated\.wav: [\d.]+ s of audio at 16000 Hz \| first audio \d+ ms after the first text token \| real-time factor/,
    );
    expect(lines.length).toBe(2);
    const wav = readWav(path);
    expect(wav.sampleRate).toBe(speech.synthesizer.sampleRate);
    const spokenSymbols = speech.textToIds(result.stdout).length;
    expect(spokenSymbols).toBeGreaterThan(0);
    expect(wav.samples).toEqual(int16((await synthesizeSpeech(speech, result.stdout)).samples));
  });

  it('checks the synthesizer folder before loading anything', async () => {
    const result = await runCli([
      'generate',
      PROMPT,
      '--model',
      modelFolder('llama'),
      '--no-draft',
      '--speak',
      join(out, 'never.wav'),
      '--speech-model',
      join(out, 'no-synthesizer'),
    ]);
    expect(result.code).toBe(EXIT.missingModel);
    expect(expectOneLine(result.stderr)).toMatch(/synthesizer folder .*no-synthesizer does not exist/);
  });
});
