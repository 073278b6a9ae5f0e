import { melFilterBank } from './mel-filter-bank.js';
import type { ResolvedFraming } from './options.js';
import { createRealDft } from './real-dft.js';

/** Floor applied before log10, as in Whisper: log10(max(x, 1e-10)). */
export const LOG_MEL_FLOOR = 1e-10;

/**
 * One STFT frame → one row of raw log10 mel energies. Offline and streaming
 * front ends share this so their frames are bit-identical by construction;
 * they differ only in how they gather the frame's samples.
 */
export interface LogMelFrameKernel {
  readonly nMels: number;
  readonly nFft: number;
  /** Scratch the caller fills with the frame's nFft (unwindowed) samples before `compute`. */
  readonly frame: Float64Array;
  /** Writes nMels raw log10 mel values for `frame` to out[offset ...]. */
  compute(out: Float32Array, offset: number): void;
}

export function createLogMelFrameKernel({ nMels, nFft }: ResolvedFraming): LogMelFrameKernel {
  const window = periodicHann(nFft);
  const dft = createRealDft(nFft);
  const rows = sparseRows(melFilterBank({ nMels, nFft }).weights, nMels, dft.bins);
  const frame = new Float64Array(nFft);
  const windowed = new Float64Array(nFft);
  const power = new Float64Array(dft.bins);
  const silentLogMel = Math.log10(LOG_MEL_FLOOR);

  function compute(out: Float32Array, offset: number): void {
    let silent = true;
    for (let i = 0; i < nFft; i++) {
      windowed[i] = frame[i] * window[i];
      if (frame[i] !== 0) silent = false;
    }
    // Whisper pads 2 s of speech with 28 s of zeros; those frames are exactly the floor.
    if (silent) {
      out.fill(silentLogMel, offset, offset + nMels);
      return;
    }
    // Runs in JS, chosen by bench/logmel-bench.ts (power spectra of all 3001 frames of 30 s,
    // Node 20, 2-core AMD EPYC; JS medians of 15 runs): in-house mixed-radix 18.0 ms and
    // Bluestein-400 on fft.js 41.4 ms (both exact); fft.js realTransform zero-padded to 512
    // 14.6 ms but wrong bins; tfjs cpu tf.spectral.rfft(400) 15.0 s (an O(n²) fallback for
    // non-powers of two) and rfft(512) 21.0 s. The wasm backend has no FFT kernel at all.
    // Whole front end on 30 s: 22 ms warm, 36 ms first call.
    dft.powerSpectrum(windowed, power);
    for (let m = 0; m < nMels; m++) {
      const { start, weights } = rows[m];
      let energy = 0;
      for (let j = 0; j < weights.length; j++) energy += weights[j] * power[start + j];
      out[offset + m] = Math.log10(Math.max(energy, LOG_MEL_FLOOR));
    }
  }

  return { nMels, nFft, frame, compute };
}

const sharedKernels = new Map<string, LogMelFrameKernel>();

/**
 * One kernel per (nMels, nFft), reused by every offline call and stream. Besides
 * skipping setup, V8 then keeps running the already-optimised closures: a fresh
 * kernel per call measured ~30% slower on 30 s of audio. Sharing the scratch
 * `frame` is safe because callers gather and compute a frame without yielding.
 */
export function sharedLogMelFrameKernel(framing: ResolvedFraming): LogMelFrameKernel {
  const key = `${framing.nMels}/${framing.nFft}`;
  let kernel = sharedKernels.get(key);
  if (kernel === undefined) {
    kernel = createLogMelFrameKernel(framing);
    sharedKernels.set(key, kernel);
  }
  return kernel;
}

/** torch.hann_window(n) / numpy hanning(n+1)[:-1]: periodic, so it tiles at hop n/4. */
export function periodicHann(length: number): Float64Array {
  const window = new Float64Array(length);
  for (let i = 0; i < length; i++) window[i] = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / length);
  return window;
}

interface SparseRow {
  start: number;
  weights: Float64Array;
}

/** Each triangle covers a few bins of 201; skipping the zeros makes the projection ~40× cheaper. */
function sparseRows(dense: Float64Array, nMels: number, nBins: number): SparseRow[] {
  const rows: SparseRow[] = [];
  for (let m = 0; m < nMels; m++) {
    const row = dense.subarray(m * nBins, (m + 1) * nBins);
    let start = row.findIndex((w) => w !== 0);
    if (start < 0) start = 0;
    let end = nBins;
    while (end > start && row[end - 1] === 0) end--;
    rows.push({ start, weights: row.slice(start, end) });
  }
  return rows;
}
