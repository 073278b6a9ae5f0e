import type { MelFilterBank } from '../audio/mel-filter-bank.js';

/**
 * Regularised pseudo-inverse of a mel filter bank F [nMels × bins]:
 * F⁺ = Fᵀ(FFᵀ + λI)⁻¹, returned row-major [bins × nMels]. F⁺·mel is the
 * minimum-norm power spectrum with that mel projection (the mel bank has
 * fewer rows than bins, so the system is underdetermined). λ is
 * `relativeRegularization` times the mean diagonal of FFᵀ: narrow low
 * filters that catch almost no bin make FFᵀ nearly singular, and λ keeps
 * their coefficients bounded instead of amplifying noise.
 */
export function melPseudoInverse(bank: MelFilterBank, relativeRegularization = 1e-4): Float64Array {
  const { nMels, nBins, weights } = bank;
  const gram = new Float64Array(nMels * nMels);
  for (let i = 0; i < nMels; i++) {
    for (let j = 0; j <= i; j++) {
      let sum = 0;
      for (let k = 0; k < nBins; k++) sum += weights[i * nBins + k] * weights[j * nBins + k];
      gram[i * nMels + j] = sum;
      gram[j * nMels + i] = sum;
    }
  }
  let trace = 0;
  for (let i = 0; i < nMels; i++) trace += gram[i * nMels + i];
  const lambda = (relativeRegularization * trace) / nMels || Number.MIN_VALUE;
  for (let i = 0; i < nMels; i++) gram[i * nMels + i] += lambda;
  const chol = cholesky(gram, nMels);
  // Solve (FFᵀ + λI)·A = F column by column; F⁺ = Aᵀ.
  const pinv = new Float64Array(nBins * nMels);
  const column = new Float64Array(nMels);
  for (let k = 0; k < nBins; k++) {
    for (let m = 0; m < nMels; m++) column[m] = weights[m * nBins + k];
    solveCholesky(chol, nMels, column);
    pinv.set(column, k * nMels);
  }
  return pinv;
}

/** Lower-triangular L with L·Lᵀ = a (a symmetric positive definite, n × n row-major). */
function cholesky(a: Float64Array, n: number): Float64Array {
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let sum = a[i * n + j];
      for (let k = 0; k < j; k++) sum -= l[i * n + k] * l[j * n + k];
      l[i * n + j] = i === j ? Math.sqrt(Math.max(sum, Number.MIN_VALUE)) : sum / l[j * n + j];
    }
  }
  return l;
}

/** Overwrites b with the solution of L·Lᵀ·x = b. */
function solveCholesky(l: Float64Array, n: number, b: Float64Array): void {
  for (let i = 0; i < n; i++) {
    let sum = b[i];
    for (let k = 0; k < i; k++) sum -= l[i * n + k] * b[k];
    b[i] = sum / l[i * n + i];
  }
  for (let i = n - 1; i >= 0; i--) {
    let sum = b[i];
    for (let k = i + 1; k < n; k++) sum -= l[k * n + i] * b[k];
    b[i] = sum / l[i * n + i];
  }
}
