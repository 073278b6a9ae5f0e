import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { concatFloat32, InvalidArgumentError } from '@specstream/core';
import { concatWith, from, lastValueFrom, of, take, throwError, toArray } from 'rxjs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import wavefile from 'wavefile';
import { wavFileSource, writeWavFile } from '../src/audio/index.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'audio-wav-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const f = (...values: number[]) => Float32Array.from(values);

async function readAll(path: string, chunkSamples?: number) {
  const wav = await wavFileSource(path, { chunkSamples });
  const chunks = await lastValueFrom(wav.samples.pipe(toArray()));
  const all = concatFloat32(chunks);
  return { wav, chunks, all };
}

/** Writes a WAV made by wavefile itself (interleaved samples in the file's own integer/float units). */
async function wavefileFixture(name: string, channels: number, bitDepth: string, samples: number[]) {
  const wav = new wavefile.WaveFile();
  wav.fromScratch(channels, 8000, bitDepth, samples);
  const path = join(dir, name);
  await writeFile(path, wav.toBuffer());
  return path;
}

describe('writeWavFile → wavFileSource round trip', () => {
  test('int16 mono: every k/32768 comes back exactly; out-of-range samples clip', async () => {
    const path = join(dir, 'int16.wav');
    const input = [f(0, 0.5, -0.5, -1), f(0.25, 32767 / 32768, 1 / 32768, -1 / 32768), f(1, 1.5, -2)];
    const written = await lastValueFrom(from(input).pipe(writeWavFile(path, 16000)));
    expect(written).toEqual({
      path,
      sampleRate: 16000,
      format: 'int16',
      frameCount: 11,
      durationSeconds: 11 / 16000,
      fileBytes: 44 + 2 * 11,
    });
    const { wav, all } = await readAll(path);
    expect(wav).toMatchObject({
      sampleRate: 16000,
      channels: 1,
      bitDepth: 16,
      sampleFormat: 'int',
      frameCount: 11,
    });
    const top = 32767 / 32768;
    expect(Array.from(all)).toEqual(
      [0, 0.5, -0.5, -1, 0.25, top, 1 / 32768, -1 / 32768, top, top, -1].map(Math.fround),
    );
  });

  test('float32 mono: samples come back bit-exact, without clipping', async () => {
    const path = join(dir, 'float.wav');
    const samples = f(0, 0.1, -0.7, 1, -1, 1.5, 1e-7);
    const written = await lastValueFrom(of(samples).pipe(writeWavFile(path, 22050, { format: 'float32' })));
    expect(written.fileBytes).toBeGreaterThanOrEqual(44 + 4 * samples.length);
    const { wav, all } = await readAll(path);
    expect(wav).toMatchObject({ sampleRate: 22050, channels: 1, bitDepth: 32, sampleFormat: 'float' });
    expect(all).toEqual(samples);
  });

  test('an empty input writes a valid empty file', async () => {
    const path = join(dir, 'empty.wav');
    await lastValueFrom(from([] as Float32Array[]).pipe(writeWavFile(path, 8000)));
    const { wav, chunks } = await readAll(path);
    expect(wav.frameCount).toBe(0);
    expect(chunks).toEqual([]);
  });
});

describe('wavFileSource decodes every supported encoding, averaging channels', () => {
  test('16-bit stereo', async () => {
    const path = await wavefileFixture(
      's16-stereo.wav',
      2,
      '16',
      [16384, 0, -32768, -32768, 1000, -1000, 32767, 32767],
    );
    const { wav, all } = await readAll(path);
    expect(wav).toMatchObject({ channels: 2, bitDepth: 16, frameCount: 4, sampleRate: 8000 });
    expect(Array.from(all)).toEqual([0.25, -1, 0, 32767 / 32768].map(Math.fround));
  });

  test('8-bit (unsigned, centred on 128) stereo', async () => {
    const path = await wavefileFixture('u8-stereo.wav', 2, '8', [255, 255, 0, 0, 128, 192, 64, 192]);
    const { wav, all } = await readAll(path);
    expect(wav).toMatchObject({ channels: 2, bitDepth: 8, sampleFormat: 'int' });
    expect(Array.from(all)).toEqual([127 / 128, -1, 0.25, 0]);
  });

  test('24-bit mono and 32-bit int stereo', async () => {
    const p24 = await wavefileFixture('s24.wav', 1, '24', [-8388608, 4194304, 8388607]);
    expect(Array.from((await readAll(p24)).all)).toEqual([-1, 0.5, 8388607 / 8388608].map(Math.fround));
    const p32 = await wavefileFixture('s32-stereo.wav', 2, '32', [-2147483648, 0, 1073741824, 1073741824]);
    const r32 = await readAll(p32);
    expect(r32.wav).toMatchObject({ channels: 2, bitDepth: 32, sampleFormat: 'int' });
    expect(Array.from(r32.all)).toEqual([-0.5, 0.5]);
  });

  test('32-bit float with 3 channels', async () => {
    const path = await wavefileFixture('f32-3ch.wav', 3, '32f', [0.3, 0.6, 0.9, -1, 0, 1]);
    const { wav, all } = await readAll(path);
    expect(wav).toMatchObject({ channels: 3, bitDepth: 32, sampleFormat: 'float' });
    expect(all[0]).toBeCloseTo(0.6, 6);
    expect(all[1]).toBe(0);
  });

  test('WAVE_FORMAT_EXTENSIBLE 32-bit float (as ffmpeg writes for > 2 channels) decodes as float', async () => {
    const path = join(dir, 'extensible-float.wav');
    await writeFile(path, extensibleFloatWav(2, 48000, f(0.5, -0.25, 1, 0, -0.75, -0.25)));
    const { wav, all } = await readAll(path);
    expect(wav).toMatchObject({ channels: 2, sampleRate: 48000, sampleFormat: 'float', frameCount: 3 });
    expect(Array.from(all)).toEqual([0.125, 0.5, -0.5]);
  });

  test('chunks have chunkSamples samples (the last fewer); samples is cold and stops on unsubscribe', async () => {
    const path = await wavefileFixture('seven.wav', 1, '16', [1, 2, 3, 4, 5, 6, 7]);
    const { wav, chunks } = await readAll(path, 3);
    expect(chunks.map((c) => c.length)).toEqual([3, 3, 1]);
    expect(wav.durationSeconds).toBe(7 / 8000);
    const again = await lastValueFrom(wav.samples.pipe(toArray()));
    expect(again).toEqual(chunks);
    expect(again[0]).not.toBe(chunks[0]);
    const first = await lastValueFrom(wav.samples.pipe(take(1), toArray()));
    expect(first).toEqual([chunks[0]]);
  });
});

describe('writeWavFile never leaves a partial file', () => {
  test('an input error writes nothing', async () => {
    const sub = await mkdtemp(join(dir, 'err-'));
    const path = join(sub, 'out.wav');
    const errored = from([f(0.1), f(0.2)])
      .pipe(concatWith(throwError(() => new Error('mic unplugged'))))
      .pipe(writeWavFile(path, 8000));
    await expect(lastValueFrom(errored)).rejects.toThrow('mic unplugged');
    expect(await readdir(sub)).toEqual([]);
  });

  test('unsubscribing while the file is being written aborts it and removes the temporary file', async () => {
    const sub = await mkdtemp(join(dir, 'abort-'));
    const path = join(sub, 'out.wav');
    // of() completes synchronously, so the write has just started when we unsubscribe.
    const subscription = of(new Float32Array(2_000_000)).pipe(writeWavFile(path, 16000)).subscribe();
    subscription.unsubscribe();
    await expect.poll(() => readdir(sub), { timeout: 5000 }).toEqual([]);
  });

  test('an existing file is replaced whole', async () => {
    const path = join(dir, 'replace.wav');
    await writeFile(path, 'old contents');
    await lastValueFrom(of(f(0.5)).pipe(writeWavFile(path, 8000)));
    expect((await readFile(path)).subarray(0, 4).toString()).toBe('RIFF');
  });
});

describe('bad input raises clear errors', () => {
  test('missing file, directory, non-WAV file', async () => {
    const missing = wavFileSource(join(dir, 'nope.wav'));
    await expect(missing).rejects.toThrow(InvalidArgumentError);
    await expect(missing).rejects.toThrow(/cannot read .*nope\.wav: no such file/);
    await expect(wavFileSource(dir)).rejects.toThrow(/it is a directory/);
    const text = join(dir, 'text.wav');
    await writeFile(text, 'this is plain text, not RIFF audio at all');
    await expect(wavFileSource(text)).rejects.toThrow(/text\.wav is not a readable WAV file/);
  });

  test('unsupported encodings name the format and list what is supported', async () => {
    const mulaw = await wavefileFixture('mulaw.wav', 1, '8m', [0, 1, 2]);
    await expect(wavFileSource(mulaw)).rejects.toThrow(
      /unsupported WAV encoding \(format code 7, 8-bit.*supported: PCM 8\/16\/24\/32-bit integer or 32-bit float/,
    );
    const double = await wavefileFixture('f64.wav', 1, '64', [0.5]);
    await expect(wavFileSource(double)).rejects.toThrow(/format code 3, 64-bit/);
  });

  test('bad arguments', async () => {
    await expect(wavFileSource(join(dir, 'x.wav'), { chunkSamples: 0 })).rejects.toThrow(
      /chunkSamples must be a positive integer, got 0/,
    );
    await expect(wavFileSource(42 as unknown as string)).rejects.toThrow(/path must be a string or URL/);
    expect(() => writeWavFile('', 16000)).toThrow(/path must be a non-empty string/);
    expect(() => writeWavFile('a.wav', 44100.5)).toThrow(/sampleRate must be an integer/);
    expect(() => writeWavFile('a.wav', 16000, { format: 'int24' as 'int16' })).toThrow(
      /format must be 'int16' or 'float32', got int24/,
    );
    const notFloats = of([1, 2] as unknown as Float32Array).pipe(writeWavFile(join(dir, 'n.wav'), 8000));
    await expect(lastValueFrom(notFloats)).rejects.toThrow(/chunks must be Float32Array/);
  });
});

/** A minimal WAVE_FORMAT_EXTENSIBLE float file, laid out by hand because wavefile writes float as plain format 3. */
function extensibleFloatWav(channels: number, sampleRate: number, interleaved: Float32Array): Uint8Array {
  const dataBytes = interleaved.length * 4;
  const bytes = new Uint8Array(12 + 8 + 40 + 8 + dataBytes);
  const view = new DataView(bytes.buffer);
  const ascii = (offset: number, s: string) => {
    for (let i = 0; i < s.length; i++) bytes[offset + i] = s.charCodeAt(i);
  };
  ascii(0, 'RIFF');
  view.setUint32(4, bytes.length - 8, true);
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
  view.setUint32(16, 40, true);
  view.setUint16(20, 0xfffe, true); // WAVE_FORMAT_EXTENSIBLE
  view.setUint16(22, channels, true);
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * channels * 4, true);
  view.setUint16(32, channels * 4, true);
  view.setUint16(34, 32, true);
  view.setUint16(36, 22, true); // cbSize
  view.setUint16(38, 32, true); // valid bits
  view.setUint32(40, 0, true); // channel mask
  // KSDATAFORMAT_SUBTYPE_IEEE_FLOAT: 00000003-0000-0010-8000-00aa00389b71
  view.setUint32(44, 3, true);
  bytes.set([0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71], 48);
  ascii(60, 'data');
  view.setUint32(64, dataBytes, true);
  for (let i = 0; i < interleaved.length; i++) view.setFloat32(68 + i * 4, interleaved[i], true);
  return bytes;
}
