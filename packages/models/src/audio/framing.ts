/**
 * STFT framing with torch.stft(center=True, pad_mode='reflect'): the signal is
 * reflect-padded by nFft/2 on both sides (x[-i] = x[i], x[N-1+i] = x[N-1-i]),
 * and frame t covers samples [t·hop − nFft/2, t·hop + nFft/2).
 */

/** First (unpadded) sample index of frame t; negative for frames reaching into the left padding. */
export function frameStart(t: number, hop: number, nFft: number): number {
  return t * hop - nFft / 2;
}

/**
 * Frames Whisper keeps for a signal of `length` samples: torch.stft yields
 * 1 + ⌊length/hop⌋ and Whisper drops the last one.
 */
export function keptFrameCount(length: number, hop: number): number {
  return Math.floor(length / hop);
}

/**
 * Frames settled after `received` samples, whatever the total length turns out
 * to be: frame t must not touch the right padding (needs t·hop + nFft/2 samples;
 * frame 0's left reflection also reads x[nFft/2]), and must not be the frame
 * Whisper drops (needs (t+1)·hop samples, which only binds when hop > nFft/2).
 */
export function settledFrameCount(received: number, hop: number, nFft: number): number {
  const half = nFft / 2;
  if (received <= half) return 0;
  return Math.min(Math.floor((received - half) / hop) + 1, keptFrameCount(received, hop));
}

/**
 * Copies frame samples [start, start + frame.length) of the reflect-padded
 * signal into `frame`. `source` holds signal samples from absolute index
 * `sourceStart`; `total` is the signal length (Infinity while it is unknown,
 * which is fine as long as the frame does not reach the right padding).
 */
export function gatherFrame(
  frame: Float64Array,
  source: Float32Array,
  sourceStart: number,
  start: number,
  total: number,
): void {
  const n = frame.length;
  if (start >= 0 && start + n <= total) {
    const offset = start - sourceStart;
    for (let i = 0; i < n; i++) frame[i] = source[offset + i];
    return;
  }
  for (let i = 0; i < n; i++) {
    frame[i] = source[reflectIndex(start + i, total) - sourceStart];
  }
}

function reflectIndex(index: number, total: number): number {
  if (index < 0) return -index;
  if (index >= total) return 2 * (total - 1) - index;
  return index;
}
