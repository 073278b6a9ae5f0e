import { InvalidArgumentError } from '@specstream/core';
import { WHISPER_SAMPLE_RATE } from './mel-filter-bank.js';

/** Framing shared by the offline and streaming front ends (Whisper's defaults). */
export interface LogMelOptions {
  /** Mel bins: 80 (Whisper v1–v3 small/medium) or 128 (large-v3). Default 80. */
  nMels?: number;
  /** STFT window and DFT length in samples. Default 400 (25 ms). */
  nFft?: number;
  /** Samples between frame starts. Default 160 (10 ms). */
  hop?: number;
}

export interface OfflineLogMelOptions extends LogMelOptions {
  /** Seconds the audio is zero-padded or truncated to, like Whisper. Default 30. */
  chunkLength?: number;
  /** Samples to pad/truncate to instead of chunkLength; `false` keeps the audio's own length. */
  padTo?: number | false;
}

export interface ResolvedFraming {
  nMels: number;
  nFft: number;
  hop: number;
}

export function resolveFraming(options: LogMelOptions): ResolvedFraming {
  const { nMels = 80, nFft = 400, hop = 160 } = options;
  if (nMels !== 80 && nMels !== 128) {
    throw new InvalidArgumentError(`nMels must be 80 or 128 (Whisper's mel bins), got ${nMels}`);
  }
  if (!Number.isInteger(nFft) || nFft < 4 || nFft % 2 !== 0) {
    throw new InvalidArgumentError(`nFft must be an even integer >= 4, got ${nFft}`);
  }
  if (!Number.isInteger(hop) || hop < 1) {
    throw new InvalidArgumentError(`hop must be a positive integer, got ${hop}`);
  }
  return { nMels, nFft, hop };
}

/** Target length in samples, or null for no padding. */
export function resolvePadTo(options: OfflineLogMelOptions): number | null {
  const { chunkLength = 30, padTo } = options;
  if (padTo === false) return null;
  if (padTo !== undefined) {
    if (!Number.isInteger(padTo) || padTo < 1) {
      throw new InvalidArgumentError(`padTo must be a positive integer or false, got ${padTo}`);
    }
    return padTo;
  }
  if (!Number.isFinite(chunkLength) || chunkLength <= 0) {
    throw new InvalidArgumentError(`chunkLength must be a positive number of seconds, got ${chunkLength}`);
  }
  return Math.round(chunkLength * WHISPER_SAMPLE_RATE);
}

/** Rejects NaN/±Infinity samples: one would silently turn whole frames into NaN. */
export function assertFiniteSamples(samples: Float32Array, what: string): void {
  if (!(samples instanceof Float32Array)) {
    throw new InvalidArgumentError(`${what} must be a Float32Array`);
  }
  for (let i = 0; i < samples.length; i++) {
    if (!Number.isFinite(samples[i])) {
      throw new InvalidArgumentError(`${what} has a non-finite sample (${samples[i]}) at index ${i}`);
    }
  }
}

/** center=True reflect padding needs at least nFft/2 + 1 samples (torch.stft rejects fewer). */
export function assertReflectable(length: number, nFft: number, what: string): void {
  if (length === 0) throw new InvalidArgumentError(`${what} is empty`);
  if (length <= nFft / 2) {
    throw new InvalidArgumentError(
      `${what} has ${length} samples; reflect padding needs at least ${nFft / 2 + 1}`,
    );
  }
}
