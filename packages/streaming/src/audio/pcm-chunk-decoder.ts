import { bytesPerSample, decodePcm, type PcmFormat } from './pcm-format.js';

/**
 * Decodes a byte stream cut at arbitrary points: bytes past the last whole
 * frame of a chunk (half a sample, or some channels of a frame) are held back
 * and completed by the next chunk, so the output never depends on chunking.
 */
export class PcmChunkDecoder {
  private readonly frameBytes: number;
  private pending = new Uint8Array(0);

  constructor(
    private readonly format: PcmFormat,
    private readonly channels: number,
  ) {
    this.frameBytes = bytesPerSample(format) * channels;
  }

  /** Bytes held back, waiting for the rest of their frame. */
  get pendingBytes(): number {
    return this.pending.length;
  }

  /** The mono samples of every frame completed by `chunk` (possibly none). */
  push(chunk: Uint8Array): Float32Array {
    let bytes = chunk;
    if (this.pending.length > 0) {
      bytes = new Uint8Array(this.pending.length + chunk.length);
      bytes.set(this.pending);
      bytes.set(chunk, this.pending.length);
    }
    const whole = bytes.length - (bytes.length % this.frameBytes);
    // Copy the remainder (`new Uint8Array(view)` copies; Buffer#slice would not):
    // `chunk` may be a pooled Buffer that its producer reuses.
    this.pending = new Uint8Array(bytes.subarray(whole));
    return decodePcm(bytes.subarray(0, whole), this.format, this.channels);
  }
}
