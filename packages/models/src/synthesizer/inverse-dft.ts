import { createComplexDft } from '../audio/complex-dft.js';
import { checkRealDftSize, unitCircle } from '../audio/real-dft.js';

/**
 * Inverse of createRealDft: the real signal of length n whose DFT has bins
 * X[0..n/2] (the upper half implied by Hermitian symmetry),
 * x[t] = (1/n)·Σ_{k<n} X[k]·e^{2πikt/n}. The imaginary parts of DC and
 * Nyquist are ignored (they are 0 for any real signal).
 *
 * The same packing as the forward transform, run backwards: the even and
 * odd samples' spectra E and O are recovered from X, Z = E + i·O is
 * inverted by one complex DFT of length n/2 (idft(Z) = conj(dft(conj Z))/m),
 * and z's real and imaginary parts are the even and odd samples.
 */
export interface InverseRealDft {
  readonly size: number;
  readonly bins: number;
  transform(re: ArrayLike<number>, im: ArrayLike<number>, out: Float64Array): void;
}

export function createInverseRealDft(size: number): InverseRealDft {
  checkRealDftSize(size);
  const half = size / 2;
  const dft = createComplexDft(half);
  const zRe = new Float64Array(half);
  const zIm = new Float64Array(half);
  const outRe = new Float64Array(half);
  const outIm = new Float64Array(half);
  const { cos, sin } = unitCircle(size, half);

  return {
    size,
    bins: half + 1,
    transform(re, im, out) {
      for (let k = 0; k < half; k++) {
        const ar = re[k];
        const ai = k === 0 ? 0 : im[k];
        // conj X[half - k]
        const br = re[half - k];
        const bi = k === 0 ? 0 : -im[half - k];
        const er = 0.5 * (ar + br);
        const ei = 0.5 * (ai + bi);
        const dr = 0.5 * (ar - br);
        const di = 0.5 * (ai - bi);
        // O = D·e^{+2πik/n}
        const or = dr * cos[k] - di * sin[k];
        const oi = dr * sin[k] + di * cos[k];
        // Z = E + i·O, conjugated for the forward DFT
        zRe[k] = er - oi;
        zIm[k] = -(ei + or);
      }
      dft.transform(zRe, zIm, outRe, outIm);
      const norm = 1 / half;
      for (let m = 0; m < half; m++) {
        out[2 * m] = outRe[m] * norm;
        out[2 * m + 1] = -outIm[m] * norm;
      }
    },
  };
}
