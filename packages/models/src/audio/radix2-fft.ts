import FFT from 'fft.js';

/**
 * Typed view of fft.js (its bundled declarations are all `any`). Only the
 * complex forward transform is used: the Bluestein DFT needs nothing else.
 */
export interface Radix2Fft {
  readonly size: number;
  /** Forward DFT of interleaved complex `input` (re, im, re, im, ...) into `output`; both 2·size long. */
  forward(output: Float64Array, input: Float64Array): void;
}

export function createRadix2Fft(size: number): Radix2Fft {
  // fft.js throws a plain Error for these; callers only pass sizes they derived themselves.
  const fft = new FFT(size);
  return {
    size,
    forward(output, input) {
      fft.transform(output, input);
    },
  };
}

export function nextPowerOfTwo(n: number): number {
  let p = 2;
  while (p < n) p *= 2;
  return p;
}
