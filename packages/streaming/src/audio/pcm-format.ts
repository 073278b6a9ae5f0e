import { InvalidArgumentError } from '@specstream/core';
import { downmixInterleaved } from './downmix.js';

/**
 * Raw PCM sample encodings, named as ffmpeg/sox name them: signed 16-bit
 * integers or 32-bit IEEE floats, little-endian, channels interleaved.
 */
export type PcmFormat = 's16le' | 'f32le';

export const PCM_FORMATS: readonly PcmFormat[] = ['s16le', 'f32le'];

export function checkPcmFormat(where: string, format: unknown): asserts format is PcmFormat {
  if (!PCM_FORMATS.includes(format as PcmFormat)) {
    throw new InvalidArgumentError(
      `${where}: format must be one of ${PCM_FORMATS.map((f) => `'${f}'`).join(', ')}, got ${String(format)}`,
    );
  }
}

export function bytesPerSample(format: PcmFormat): number {
  return format === 's16le' ? 2 : 4;
}

/**
 * Whole interleaved frames of `bytes` → mono floats (channels averaged).
 * `bytes.length` must be a multiple of the frame size. A DataView reads the
 * samples because chunks from streams start at arbitrary byte offsets, where
 * an Int16Array/Float32Array view would throw.
 */
export function decodePcm(bytes: Uint8Array, format: PcmFormat, channels: number): Float32Array {
  const width = bytesPerSample(format);
  const count = bytes.length / width;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const interleaved = new Float32Array(count);
  if (format === 's16le') {
    for (let i = 0; i < count; i++) interleaved[i] = view.getInt16(i * 2, true);
    return downmixInterleaved(interleaved, channels, 1 / 32768);
  }
  for (let i = 0; i < count; i++) interleaved[i] = view.getFloat32(i * 4, true);
  return downmixInterleaved(interleaved, channels);
}

/**
 * A float sample → a 16-bit integer. Scaling by 32768 (not 32767) makes
 * decode∘encode exact for every k/32768; +1.0 itself clips to 32767.
 */
export function floatToInt16(x: number): number {
  if (Number.isNaN(x)) return 0;
  return Math.max(-32768, Math.min(32767, Math.round(x * 32768)));
}

/** Mono floats → bytes in `format`. f32le stores samples unchanged (no clipping). */
export function encodePcm(samples: Float32Array, format: PcmFormat): Uint8Array {
  const width = bytesPerSample(format);
  const bytes = new Uint8Array(samples.length * width);
  const view = new DataView(bytes.buffer);
  if (format === 's16le') {
    for (let i = 0; i < samples.length; i++) view.setInt16(i * 2, floatToInt16(samples[i]), true);
  } else {
    for (let i = 0; i < samples.length; i++) view.setFloat32(i * 4, samples[i], true);
  }
  return bytes;
}
