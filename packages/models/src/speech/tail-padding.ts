import { InvalidArgumentError } from '@specstream/core';

/**
 * Seconds of faint noise appended to a recogniser's audio when it ends (recognizeAudio and
 * streaming's ctcTranscription). The encoder is causal, and a CTC model trained that way emits
 * a sound's letters some frames after it hears them: when speech stops at the very end of the
 * audio (flite's voices leave about 0.1 s of silence, espeak-ng's about 0.3 s) the last letters
 * are never emitted and the last word comes out cut ("distributi"). Chosen on the trained voices
 * of the tuning sentences (models/SPEECH.md): 0.1 s to 0.5 s score alike there.
 */
export const RECOGNIZER_TAIL_PADDING_SECONDS = 0.3;

/**
 * Peak of the padding's noise. Digital silence logs to the mel floor (log10 1e-10 = −10), far
 * below any frame the recogniser trained on, and with it long paddings make it emit letters;
 * noise at −60 dBFS looks like a recording's own silence.
 */
export const TAIL_PADDING_PEAK = 1e-3;

/**
 * `seconds` of uniform noise in ±TAIL_PADDING_PEAK at `sampleRate`, the same every call (a fixed
 * xorshift sequence), so a stream and the offline path that pad the same audio see the same samples.
 */
export function tailPadding(seconds: number, sampleRate: number): Float32Array {
  if (!Number.isFinite(seconds) || seconds < 0) {
    throw new InvalidArgumentError(`tail padding must be a finite number of seconds ≥ 0, got ${seconds}`);
  }
  const out = new Float32Array(Math.round(seconds * sampleRate));
  let state = 0x9e3779b9;
  for (let i = 0; i < out.length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    // (state >>> 0) / 2^32 is uniform in [0, 1).
    out[i] = TAIL_PADDING_PEAK * (2 * ((state >>> 0) / 4294967296) - 1);
  }
  return out;
}

/** `samples` followed by `tailPadding(seconds, sampleRate)` (`samples` itself when seconds is 0). */
export function withTailPadding(samples: Float32Array, seconds: number, sampleRate: number): Float32Array {
  const padding = tailPadding(seconds, sampleRate);
  if (padding.length === 0) return samples;
  const out = new Float32Array(samples.length + padding.length);
  out.set(samples);
  out.set(padding, samples.length);
  return out;
}
