/**
 * Slaney-style mel filterbank, computed the way transformers' `mel_filter_bank`
 * does for WhisperFeatureExtractor (norm 'slaney', mel_scale 'slaney', 0–8000 Hz,
 * 16 kHz). Built from the formulas so 80 and 128 bins (and other n_fft) need no
 * stored table.
 */

export const WHISPER_SAMPLE_RATE = 16000;

/**
 * Slaney's scale: linear below 1 kHz (3 mel per 200 Hz), logarithmic above, with
 * 27 mel per factor 6.4. Operations are ordered as in transformers' numpy code so
 * the band edges round the same way.
 */
const LOG_START_HZ = 1000;
const LOG_START_MEL = 15;
const MELS_PER_LOG_HZ = 27 / Math.log(6.4);
const LOG_HZ_PER_MEL = Math.log(6.4) / 27;

export function hzToMelSlaney(hz: number): number {
  if (hz < LOG_START_HZ) return (3 * hz) / 200;
  return LOG_START_MEL + Math.log(hz / LOG_START_HZ) * MELS_PER_LOG_HZ;
}

export function melToHzSlaney(mel: number): number {
  if (mel < LOG_START_MEL) return (200 * mel) / 3;
  return LOG_START_HZ * Math.exp(LOG_HZ_PER_MEL * (mel - LOG_START_MEL));
}

export interface MelFilterBankOptions {
  nMels: number;
  nFft: number;
  sampleRate?: number;
  minHz?: number;
  maxHz?: number;
}

export interface MelFilterBank {
  readonly nMels: number;
  /** nFft/2 + 1 frequency bins, DC to Nyquist. */
  readonly nBins: number;
  /** Row-major [nMels × nBins]: weights[m·nBins + k] (transformers stores the transpose). */
  readonly weights: Float64Array;
  /** Band edges and centres in Hz, nMels + 2 of them: filter m rises from [m] to [m+1], falls to [m+2]. */
  readonly edgesHz: Float64Array;
}

export function melFilterBank(options: MelFilterBankOptions): MelFilterBank {
  const { nMels, nFft, sampleRate = WHISPER_SAMPLE_RATE, minHz = 0, maxHz = 8000 } = options;
  const nBins = nFft / 2 + 1;
  const mels = linspace(hzToMelSlaney(minHz), hzToMelSlaney(maxHz), nMels + 2);
  const edgesHz = mels.map(melToHzSlaney);
  // transformers uses `sampling_rate // 2` as the top bin frequency.
  const binHz = linspace(0, Math.floor(sampleRate / 2), nBins);
  const weights = new Float64Array(nMels * nBins);
  for (let m = 0; m < nMels; m++) {
    const lower = edgesHz[m];
    const centre = edgesHz[m + 1];
    const upper = edgesHz[m + 2];
    // Slaney normalisation: every triangle has unit area in Hz.
    const areaNorm = 2 / (upper - lower);
    for (let k = 0; k < nBins; k++) {
      const rising = (binHz[k] - lower) / (centre - lower);
      const falling = (upper - binHz[k]) / (upper - centre);
      weights[m * nBins + k] = Math.max(0, Math.min(rising, falling)) * areaNorm;
    }
  }
  return { nMels, nBins, weights, edgesHz };
}

/** numpy.linspace semantics (start + i·step, last point exactly `stop`), so edges round like the reference. */
function linspace(start: number, stop: number, count: number): Float64Array {
  const out = new Float64Array(count);
  const step = (stop - start) / (count - 1);
  for (let i = 0; i < count; i++) out[i] = i * step + start;
  out[count - 1] = stop;
  return out;
}
