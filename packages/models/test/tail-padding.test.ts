import { InvalidArgumentError } from '@specstream/core';
import { describe, expect, it } from 'vitest';
import { TAIL_PADDING_PEAK, tailPadding, withTailPadding } from '../src/speech/tail-padding.js';

describe('tailPadding', () => {
  it('is round(seconds × rate) samples of noise within ±peak, the same on every call', () => {
    for (const [seconds, rate] of [
      [0.3, 16000],
      [0.05, 8000],
      [1 / 3, 22050],
    ]) {
      const a = tailPadding(seconds, rate);
      expect(a.length).toBe(Math.round(seconds * rate));
      expect(Math.max(...a.map(Math.abs))).toBeLessThanOrEqual(TAIL_PADDING_PEAK);
      expect(tailPadding(seconds, rate)).toEqual(a);
    }
    expect(tailPadding(0, 16000).length).toBe(0);
  });

  it('is zero-mean uniform noise: mean, variance and deciles within sampling error', () => {
    const n = 16000;
    const x = Array.from(tailPadding(n / 16000, 16000), (v) => v / TAIL_PADDING_PEAK);
    const mean = x.reduce((a, b) => a + b, 0) / n;
    const variance = x.reduce((a, b) => a + (b - mean) ** 2, 0) / n;
    // Uniform on [−1, 1): mean 0 (sd √(1/3n) ≈ 0.0046), variance 1/3 (sd √(4/45n) ≈ 0.0024).
    expect(Math.abs(mean)).toBeLessThan(5 * Math.sqrt(1 / (3 * n)));
    expect(Math.abs(variance - 1 / 3)).toBeLessThan(5 * Math.sqrt(4 / (45 * n)));
    // Each tenth of [−1, 1) holds n/10 samples, sd √(n·0.1·0.9) = 38.
    for (let k = 0; k < 10; k++) {
      const inBin = x.filter((v) => v >= -1 + k / 5 && v < -1 + (k + 1) / 5).length;
      expect(Math.abs(inBin - n / 10)).toBeLessThan(5 * Math.sqrt(n * 0.09));
    }
    // Not a repeating short pattern: neighbours are uncorrelated (sd of the lag-1 correlation 1/√n).
    let lag = 0;
    for (let i = 1; i < n; i++) lag += (x[i] - mean) * (x[i - 1] - mean);
    expect(Math.abs(lag / (n - 1) / variance)).toBeLessThan(5 / Math.sqrt(n));
  });

  it('withTailPadding appends it and leaves the audio alone', () => {
    const audio = Float32Array.from({ length: 100 }, (_, i) => Math.sin(i));
    const padded = withTailPadding(audio, 0.01, 16000);
    expect(padded.subarray(0, 100)).toEqual(audio);
    expect(padded.subarray(100)).toEqual(tailPadding(0.01, 16000));
    expect(withTailPadding(audio, 0, 16000)).toBe(audio);
  });

  it('refuses a negative or non-finite length', () => {
    for (const seconds of [-1e-9, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => tailPadding(seconds, 16000)).toThrow(InvalidArgumentError);
      expect(() => tailPadding(seconds, 16000)).toThrow(
        /tail padding must be a finite number of seconds ≥ 0/,
      );
    }
  });
});
