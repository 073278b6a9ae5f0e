import { concatFloat32, InvalidArgumentError } from '@specstream/core';
import { concatWith, from, lastValueFrom, NEVER, of, Subject, take, throwError, toArray } from 'rxjs';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { type ResampleQuality, resample } from '../src/audio/index.js';
import { SampleRateConverter } from '../src/audio/sample-rate-converter.js';

afterEach(() => {
  vi.restoreAllMocks();
});

const sine = (hz: number, rate: number, n: number, amplitude = 0.5) =>
  Float32Array.from({ length: n }, (_, i) => amplitude * Math.sin((2 * Math.PI * hz * i) / rate));

const run = async (chunks: Float32Array[], from_: number, to: number, quality?: ResampleQuality) =>
  concatFloat32(await lastValueFrom(from(chunks).pipe(resample(from_, to, { quality }), toArray())));

/** Upward zero crossings per second over [start, end). */
function crossingFrequency(x: Float32Array, rate: number, start: number, end: number): number {
  let first = -1;
  let last = -1;
  let count = 0;
  for (let i = start + 1; i < end; i++) {
    if (x[i - 1] < 0 && x[i] >= 0) {
      if (first < 0) first = i;
      else count++;
      last = i;
    }
  }
  return (count * rate) / (last - first);
}

/** Magnitude of the DFT of x at `hz` (one bin, evaluated directly). */
function dftMagnitude(x: Float32Array, rate: number, hz: number): number {
  let re = 0;
  let im = 0;
  for (let i = 0; i < x.length; i++) {
    re += x[i] * Math.cos((2 * Math.PI * hz * i) / rate);
    im -= x[i] * Math.sin((2 * Math.PI * hz * i) / rate);
  }
  return Math.hypot(re, im);
}

function randomChunks(x: Float32Array, seed: number, maxChunk: number): Float32Array[] {
  const chunks: Float32Array[] = [];
  let s = seed;
  for (let start = 0; start < x.length; ) {
    s = (s * 1103515245 + 12345) % 2147483648;
    const size = 1 + (s % maxChunk);
    chunks.push(x.slice(start, start + size));
    start += size;
  }
  return chunks;
}

describe('resample 44100 → 16000: a 440 Hz sine', () => {
  // 2 s plus an odd tail, so n·16000/44100 is not an integer (32044.79…).
  const n = 2 * 44100 + 123;
  const input = sine(440, 44100, n);

  test('keeps its length: round(n·16000/44100), i.e. within 1 sample of the exact n·16000/44100', async () => {
    for (const quality of ['best', 'medium', 'fastest'] as const) {
      const out = await run([input], 44100, 16000, quality);
      expect(out.length).toBe(Math.round((n * 16000) / 44100));
      expect(Math.abs(out.length - (n * 16000) / 44100)).toBeLessThanOrEqual(1);
    }
  });

  test('keeps its frequency (zero crossings within ±0.5 Hz, DFT peak at 440 ± 1 Hz) and amplitude', async () => {
    const out = await run([input], 44100, 16000);
    // Skip 10 ms at each end, where the filter meets the signal's edges.
    const middle = out.subarray(160, out.length - 160);
    expect(Math.abs(crossingFrequency(middle, 16000, 0, middle.length) - 440)).toBeLessThan(0.5);
    const spectrum = Array.from({ length: 81 }, (_, k) => 400 + k).map((hz) => ({
      hz,
      magnitude: dftMagnitude(middle, 16000, hz),
    }));
    const peak = spectrum.reduce((best, bin) => (bin.magnitude > best.magnitude ? bin : best));
    expect(Math.abs(peak.hz - 440)).toBeLessThanOrEqual(1);
    const rms = Math.sqrt(middle.reduce((s, v) => s + v * v, 0) / middle.length);
    expect(rms).toBeCloseTo(0.5 / Math.SQRT2, 2);
  });

  // libsamplerate keeps its filter state across calls, so chunking should not matter at all; in
  // practice the outputs are bit-identical, and 1e-6 leaves room for float summation order only.
  test('chunked input (random chunks of 1–4000 samples) gives the one-shot output within 1e-6', async () => {
    const oneShot = await run([input], 44100, 16000);
    for (const [seed, maxChunk] of [
      [1, 4000],
      [2, 300],
      [3, 5],
    ]) {
      const chunked = await run(randomChunks(input, seed, maxChunk), 44100, 16000);
      expect(chunked.length).toBe(oneShot.length);
      let maxDiff = 0;
      for (let i = 0; i < oneShot.length; i++) maxDiff = Math.max(maxDiff, Math.abs(chunked[i] - oneShot[i]));
      expect(maxDiff).toBeLessThan(1e-6);
    }
  });
});

describe('resample, other cases', () => {
  test('upsampling 16000 → 48000 keeps length and frequency', async () => {
    const input = sine(1000, 16000, 16000 + 7);
    const out = await run([input.subarray(0, 5000), input.subarray(5000)], 16000, 48000);
    expect(out.length).toBe(Math.round((16007 * 48000) / 16000));
    expect(Math.abs(crossingFrequency(out, 48000, 480, out.length - 480) - 1000)).toBeLessThan(0.5);
  });

  test('a chunk too big for one libsamplerate call (8000 → 192000, 40000 samples) is split invisibly', async () => {
    const input = sine(300, 8000, 40_000);
    const oneShot = await run([input], 8000, 192000, 'fastest');
    expect(oneShot.length).toBe(40_000 * 24);
    const chunked = await run(randomChunks(input, 7, 3000), 8000, 192000, 'fastest');
    let maxDiff = 0;
    for (let i = 0; i < oneShot.length; i++) maxDiff = Math.max(maxDiff, Math.abs(chunked[i] - oneShot[i]));
    expect(maxDiff).toBeLessThan(1e-6);
  });

  test('matching rates are the identity: the same chunks pass straight through', async () => {
    const chunks = [Float32Array.of(0.1, 0.2), Float32Array.of(0.3)];
    const out = await lastValueFrom(from(chunks).pipe(resample(16000, 16000), toArray()));
    expect(out).toHaveLength(2);
    expect(out[0]).toBe(chunks[0]);
    expect(out[1]).toBe(chunks[1]);
  });

  test('a downstream take(1) stops cleanly while queued input is being converted', async () => {
    const chunks = Array.from({ length: 5 }, () => sine(440, 44100, 4410));
    const out = await lastValueFrom(from(chunks).pipe(resample(44100, 16000), take(1), toArray()));
    expect(out).toHaveLength(1);
    expect(out[0].length).toBeGreaterThan(1000);
  });

  test('an empty input gives an empty output', async () => {
    expect(await lastValueFrom(from([] as Float32Array[]).pipe(resample(44100, 16000), toArray()))).toEqual(
      [],
    );
  });
});

describe('resample releases its converter', () => {
  const spyDestroy = () => vi.spyOn(SampleRateConverter.prototype, 'destroy');

  test('on complete', async () => {
    const destroy = spyDestroy();
    await run([new Float32Array(1000)], 44100, 16000);
    expect(destroy).toHaveBeenCalledTimes(1);
  });

  test('on error, passing the error through', async () => {
    const destroy = spyDestroy();
    const failing = of(new Float32Array(1000)).pipe(
      concatWith(throwError(() => new Error('mic unplugged'))),
      resample(44100, 16000),
    );
    await expect(lastValueFrom(failing)).rejects.toThrow('mic unplugged');
    await vi.waitFor(() => expect(destroy).toHaveBeenCalledTimes(1));
  });

  test('on unsubscribe mid-stream, and when unsubscribed before the converter was even ready', async () => {
    const destroy = spyDestroy();
    const input = new Subject<Float32Array>();
    const out: Float32Array[] = [];
    const subscription = input.pipe(resample(48000, 16000)).subscribe((chunk) => out.push(chunk));
    input.next(new Float32Array(4800));
    await vi.waitFor(() => expect(out.length).toBeGreaterThan(0));
    subscription.unsubscribe();
    expect(destroy).toHaveBeenCalledTimes(1);

    const early = NEVER.pipe(resample(48000, 16000)).subscribe();
    early.unsubscribe();
    await vi.waitFor(() => expect(destroy).toHaveBeenCalledTimes(2));
  });
});

describe('resample argument errors', () => {
  test('rates, ratio, quality, chunk type', async () => {
    expect(() => resample(0, 16000)).toThrow(/fromRate must be an integer in \[1, 192000\] Hz, got 0/);
    expect(() => resample(44100, 22050.5)).toThrow(/toRate must be an integer/);
    expect(() => resample(44100, 384000)).toThrow(InvalidArgumentError);
    expect(() => resample(192000, 100)).toThrow(/beyond libsamplerate's ratio range/);
    expect(() => resample(44100, 16000, { quality: 'ultra' as ResampleQuality })).toThrow(
      /quality must be 'best', 'medium' or 'fastest', got ultra/,
    );
    const notFloats = of([1, 2, 3] as unknown as Float32Array).pipe(resample(44100, 16000));
    await expect(lastValueFrom(notFloats)).rejects.toThrow(/chunks must be Float32Array/);
  });
});
