import type { ComplexDft } from './complex-dft.js';
import { createRadix2Fft, nextPowerOfTwo } from './radix2-fft.js';

/**
 * Complex DFT of arbitrary length L via Bluestein's chirp-z identity
 * kn = (k² + n² − (k−n)²) / 2, which turns the DFT into a circular convolution
 * that power-of-two FFTs (fft.js) evaluate exactly, up to float64 rounding:
 *
 *   X[k] = c[k] · Σ_n (x[n]·c[n]) · conj(c[k−n]),   c[m] = e^{−iπm²/L}.
 *
 * Works for any length >= 1; used for lengths the mixed-radix FFT cannot factor.
 */
export function createBluesteinDft(size: number): ComplexDft {
  const convSize = nextPowerOfTwo(2 * size - 1);
  const fft = createRadix2Fft(convSize);
  const chirp = chirpTable(size);
  const filterSpectrum = chirpFilterSpectrum(chirp, size, convSize);
  // Output chirp with the 1/M of the inverse FFT folded in.
  const outChirp = chirp.map((v) => v / convSize);
  const work = new Float64Array(2 * convSize);
  const workSpectrum = new Float64Array(2 * convSize);

  function transform(
    inRe: ArrayLike<number>,
    inIm: ArrayLike<number>,
    outRe: Float64Array,
    outIm: Float64Array,
  ) {
    for (let n = 0; n < size; n++) {
      const xr = inRe[n];
      const xi = inIm[n];
      const cr = chirp[2 * n];
      const ci = chirp[2 * n + 1];
      work[2 * n] = xr * cr - xi * ci;
      work[2 * n + 1] = xr * ci + xi * cr;
    }
    // Entries past 2·size stay zero from construction: the convolution's zero padding.
    fft.forward(workSpectrum, work);
    // The inverse FFT is taken as conj(FFT(conj(·))): store the conjugated product.
    for (let i = 0; i < convSize; i++) {
      const ar = workSpectrum[2 * i];
      const ai = workSpectrum[2 * i + 1];
      const br = filterSpectrum[2 * i];
      const bi = filterSpectrum[2 * i + 1];
      workSpectrum[2 * i] = ar * br - ai * bi;
      workSpectrum[2 * i + 1] = -(ar * bi + ai * br);
    }
    const conv = work;
    fft.forward(conv, workSpectrum);
    for (let k = 0; k < size; k++) {
      const vr = conv[2 * k];
      const vi = -conv[2 * k + 1];
      const cr = outChirp[2 * k];
      const ci = outChirp[2 * k + 1];
      outRe[k] = vr * cr - vi * ci;
      outIm[k] = vr * ci + vi * cr;
    }
    // `work` doubled as the convolution output: clear its padding for the next call.
    conv.fill(0, 2 * size);
  }

  return { size, transform };
}

/** c[m] = e^{−iπm²/L}, interleaved. m² is reduced mod 2L first so large m keeps full angle precision. */
function chirpTable(size: number): Float64Array {
  const table = new Float64Array(2 * size);
  for (let m = 0; m < size; m++) {
    const angle = (Math.PI * ((m * m) % (2 * size))) / size;
    table[2 * m] = Math.cos(angle);
    table[2 * m + 1] = -Math.sin(angle);
  }
  return table;
}

/** FFT of the circular filter b[m] = conj(c[|m|]) for m in (−L, L), wrapped into M slots. */
function chirpFilterSpectrum(chirp: Float64Array, size: number, convSize: number): Float64Array {
  const filter = new Float64Array(2 * convSize);
  for (let m = 0; m < size; m++) {
    const re = chirp[2 * m];
    const im = -chirp[2 * m + 1];
    filter[2 * m] = re;
    filter[2 * m + 1] = im;
    if (m > 0) {
      filter[2 * (convSize - m)] = re;
      filter[2 * (convSize - m) + 1] = im;
    }
  }
  const spectrum = new Float64Array(2 * convSize);
  createRadix2Fft(convSize).forward(spectrum, filter);
  return spectrum;
}
