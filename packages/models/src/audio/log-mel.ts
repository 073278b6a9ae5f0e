import { InvalidArgumentError } from '@specstream/core';
import { frameStart, gatherFrame, keptFrameCount } from './framing.js';
import { sharedLogMelFrameKernel } from './log-mel-frame.js';
import {
  assertFiniteSamples,
  assertReflectable,
  type OfflineLogMelOptions,
  resolveFraming,
  resolvePadTo,
} from './options.js';

/** Whisper clamps everything more than 8 decades (80 dB) below the loudest bin. */
export const LOG_MEL_DYNAMIC_RANGE = 8;

/**
 * Whisper's input features (WhisperFeatureExtractor): pad/truncate to 30 s, STFT
 * (periodic Hann, center reflect padding), |X|², slaney mel, log10(max(x, 1e-10)),
 * drop the last frame, clamp to (max − 8), then (x + 4) / 4.
 *
 * @returns Float32Array [nMels × frames], row-major by mel bin (the layout of
 *   `input_features[0]`); frames = ⌊samples / hop⌋ (3000 for 30 s).
 */
export function logMelSpectrogram(audio: Float32Array, options: OfflineLogMelOptions = {}): Float32Array {
  const { nMels } = resolveFraming(options);
  const raw = rawLogMelFrames(audio, options);
  return framesToMelMajor(normalizeLogMel(raw), nMels);
}

/**
 * The same pipeline up to the log, before the global clamp and rescale:
 * Float32Array [frames × nMels] (frame-major, the layout the stream emits).
 * With `padTo: false` this is exactly what createLogMelStream produces.
 */
export function rawLogMelFrames(audio: Float32Array, options: OfflineLogMelOptions = {}): Float32Array {
  const framing = resolveFraming(options);
  const padTo = resolvePadTo(options);
  assertFiniteSamples(audio, 'audio');
  if (audio.length === 0) throw new InvalidArgumentError('audio is empty');
  const signal = padTo === null ? audio : padOrTruncate(audio, padTo);
  assertReflectable(signal.length, framing.nFft, padTo === null ? 'audio' : 'padded audio');

  const kernel = sharedLogMelFrameKernel(framing);
  const frames = keptFrameCount(signal.length, framing.hop);
  const out = new Float32Array(frames * framing.nMels);
  for (let t = 0; t < frames; t++) {
    gatherFrame(kernel.frame, signal, 0, frameStart(t, framing.hop, framing.nFft), signal.length);
    kernel.compute(out, t * framing.nMels);
  }
  return out;
}

/**
 * Whisper's final step: clamp to (max − 8), then (x + 4) / 4. Layout-agnostic.
 * Exact (equal to the offline features) only when `max` is the maximum over the
 * whole utterance; a running maximum from a stream clamps early frames too little
 * (values in [runningMax − 8, finalMax − 8) pass unclamped). Keep the raw frames
 * and renormalise if that matters.
 */
export function normalizeLogMel(raw: Float32Array, max: number = maxOf(raw)): Float32Array {
  // Rounded to float32 like torch's `log_spec.max() - 8.0`, so clamped values match bit for bit.
  const floor = Math.fround(max - LOG_MEL_DYNAMIC_RANGE);
  const out = new Float32Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = (Math.max(raw[i], floor) + 4) / 4;
  return out;
}

/** Largest value of `values` (−Infinity when empty): the running max to pass to normalizeLogMel. */
export function maxOf(values: Float32Array, initial = Number.NEGATIVE_INFINITY): number {
  let max = initial;
  for (let i = 0; i < values.length; i++) if (values[i] > max) max = values[i];
  return max;
}

/** [frames × nMels] → [nMels × frames]. */
export function framesToMelMajor(frameMajor: Float32Array, nMels: number): Float32Array {
  if (frameMajor.length % nMels !== 0) {
    throw new InvalidArgumentError(`length ${frameMajor.length} is not a multiple of nMels ${nMels}`);
  }
  const frames = frameMajor.length / nMels;
  const out = new Float32Array(frameMajor.length);
  for (let t = 0; t < frames; t++) {
    for (let m = 0; m < nMels; m++) out[m * frames + t] = frameMajor[t * nMels + m];
  }
  return out;
}

/** Zero padding on the right / truncation, as WhisperFeatureExtractor does by default. */
function padOrTruncate(audio: Float32Array, length: number): Float32Array {
  if (audio.length === length) return audio;
  const out = new Float32Array(length);
  out.set(audio.length > length ? audio.subarray(0, length) : audio);
  return out;
}
