import wavefile from 'wavefile';
import { floatToInt16 } from './pcm-format.js';

/** Sample encodings `writeWavFile` produces. */
export type WavSampleFormat = 'int16' | 'float32';

/**
 * Mono chunks → the bytes of a complete mono WAV file, encoded by wavefile.
 * int16 uses the same scaling as the 's16le' PCM codec (×32768, clipped), so
 * reading back gives exactly k/32768 for every sample that was k/32768.
 */
export function encodeWav(
  chunks: readonly Float32Array[],
  sampleRate: number,
  format: WavSampleFormat,
): { file: Uint8Array; frameCount: number } {
  const frameCount = chunks.reduce((n, chunk) => n + chunk.length, 0);
  const samples = format === 'int16' ? new Int16Array(frameCount) : new Float32Array(frameCount);
  let offset = 0;
  for (const chunk of chunks) {
    if (format === 'int16') {
      for (let i = 0; i < chunk.length; i++) samples[offset + i] = floatToInt16(chunk[i]);
    } else {
      samples.set(chunk, offset);
    }
    offset += chunk.length;
  }
  const wav = new wavefile.WaveFile();
  wav.fromScratch(1, sampleRate, format === 'int16' ? '16' : '32f', samples);
  return { file: wav.toBuffer(), frameCount };
}
