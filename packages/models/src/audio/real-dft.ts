import { InvalidArgumentError } from '@specstream/core';
import { type ComplexDft, createComplexDft } from './complex-dft.js';

/**
 * Exact DFT of a real signal of any even length n (Whisper's n_fft = 400 is
 * not a power of two, and zero-padding to 512 would move the bins).
 *
 * The n real samples are packed into n/2 complex ones, z[m] = x[2m] + i·x[2m+1],
 * so one complex DFT of half the length does the work; the spectra of the even
 * and odd samples are then separated and recombined with one twiddle per bin.
 */
export interface RealDft {
  readonly size: number;
  /** Number of output bins, size/2 + 1 (DC to Nyquist). */
  readonly bins: number;
  /** X[k] = Σ x[n]·e^{-2πikn/size} for k in [0, bins). */
  transform(input: ArrayLike<number>, re: Float64Array, im: Float64Array): void;
  /** |X[k]|² for k in [0, bins). */
  powerSpectrum(input: ArrayLike<number>, power: Float64Array): void;
}

/** The real (and inverse real) DFT packs n samples into a complex DFT of n/2. */
export function checkRealDftSize(size: number): void {
  if (!Number.isInteger(size) || size < 4 || size % 2 !== 0) {
    throw new InvalidArgumentError(`DFT size must be an even integer >= 4, got ${size}`);
  }
}

/** cos and sin of 2πk/size for k < count: the twiddle factors of both real transforms. */
export function unitCircle(size: number, count: number): { cos: Float64Array; sin: Float64Array } {
  const cos = new Float64Array(count);
  const sin = new Float64Array(count);
  for (let k = 0; k < count; k++) {
    cos[k] = Math.cos((2 * Math.PI * k) / size);
    sin[k] = Math.sin((2 * Math.PI * k) / size);
  }
  return { cos, sin };
}

/** `makeComplexDft` picks the half-length complex DFT (the bench swaps in Bluestein to compare). */
export function createRealDft(
  size: number,
  makeComplexDft: (size: number) => ComplexDft = createComplexDft,
): RealDft {
  checkRealDftSize(size);
  const half = size / 2;
  const bins = half + 1;
  const complexDft = makeComplexDft(half);
  const evenSamples = new Float64Array(half);
  const oddSamples = new Float64Array(half);
  const spectrumRe = new Float64Array(half);
  const spectrumIm = new Float64Array(half);
  const { cos: twiddleRe, sin } = unitCircle(size, bins);
  const twiddleIm = sin.map((v) => -v); // e^{-2πik/n}
  const re = new Float64Array(bins);
  const im = new Float64Array(bins);

  function transform(input: ArrayLike<number>, outRe: Float64Array, outIm: Float64Array): void {
    for (let m = 0; m < half; m++) {
      evenSamples[m] = input[2 * m];
      oddSamples[m] = input[2 * m + 1];
    }
    complexDft.transform(evenSamples, oddSamples, spectrumRe, spectrumIm);
    for (let k = 0; k < bins; k++) {
      const a = k % half;
      const b = (half - k) % half;
      const zr = spectrumRe[a];
      const zi = spectrumIm[a];
      const yr = spectrumRe[b];
      const yi = spectrumIm[b];
      // Even-sample spectrum E = (Z[k] + conj Z[h-k]) / 2, odd O = (Z[k] - conj Z[h-k]) / 2i.
      const evenRe = 0.5 * (zr + yr);
      const evenIm = 0.5 * (zi - yi);
      const oddRe = 0.5 * (zi + yi);
      const oddIm = -0.5 * (zr - yr);
      const wr = twiddleRe[k];
      const wi = twiddleIm[k];
      outRe[k] = evenRe + wr * oddRe - wi * oddIm;
      outIm[k] = evenIm + wr * oddIm + wi * oddRe;
    }
  }

  return {
    size,
    bins,
    transform,
    powerSpectrum(input, power) {
      transform(input, re, im);
      for (let k = 0; k < bins; k++) power[k] = re[k] * re[k] + im[k] * im[k];
    },
  };
}
