import { InvalidArgumentError } from '@specstream/core';
import { Observable, type OperatorFunction } from 'rxjs';

export interface FramesOptions {
  /** Samples per window. */
  size: number;
  /** Samples between window starts (hop ≤ size overlaps, hop > size skips). */
  hop: number;
  /**
   * What happens at the end of the input to samples not covered by a whole window:
   * - 'drop' (default): windows are emitted only when complete; a tail shorter than a window is dropped.
   * - 'pad': every window that starts before the end is emitted, zero-padded past the end.
   */
  last?: 'drop' | 'pad';
}

/**
 * Samples → windows of `size` samples every `hop` samples, with exact sample
 * accounting whatever the chunking of the input: window i covers samples
 * [i·hop, i·hop + size) of the concatenated input. Each window is a new array.
 */
export function frames(options: FramesOptions): OperatorFunction<Float32Array, Float32Array> {
  const { size, hop, last = 'drop' } = options;
  for (const [name, v] of [
    ['size', size],
    ['hop', hop],
  ] as const) {
    if (!Number.isInteger(v) || v < 1)
      throw new InvalidArgumentError(`frames: ${name} must be a positive integer, got ${v}`);
  }
  if (last !== 'drop' && last !== 'pad') {
    throw new InvalidArgumentError(`frames: last must be 'drop' or 'pad', got ${String(last)}`);
  }
  return (source) =>
    new Observable<Float32Array>((subscriber) => {
      // buffer holds samples [start, start + filled) of the whole stream; the next window starts at `next`.
      let buffer = new Float32Array(Math.max(size, hop) * 2);
      let start = 0;
      let filled = 0;
      let next = 0;
      const emitReady = () => {
        while (next + size <= start + filled) {
          subscriber.next(buffer.slice(next - start, next - start + size));
          next += hop;
        }
        // Drop samples no future window needs.
        const keepFrom = Math.min(next, start + filled) - start;
        if (keepFrom > 0) {
          buffer.copyWithin(0, keepFrom, filled);
          filled -= keepFrom;
          start += keepFrom;
        }
      };
      return source.subscribe({
        next(chunk) {
          let offset = 0;
          // Samples before the next window (hop > size) are skipped without storing.
          if (filled === 0 && start < next) {
            offset = Math.min(chunk.length, next - start);
            start += offset;
          }
          const need = filled + chunk.length - offset;
          if (need > buffer.length) {
            const grown = new Float32Array(Math.max(need, buffer.length * 2));
            grown.set(buffer.subarray(0, filled));
            buffer = grown;
          }
          buffer.set(chunk.subarray(offset), filled);
          filled = need;
          emitReady();
        },
        error: (e) => subscriber.error(e),
        complete() {
          if (last === 'pad') {
            while (next < start + filled) {
              const window = new Float32Array(size);
              window.set(buffer.subarray(next - start, Math.min(filled, next - start + size)));
              subscriber.next(window);
              next += hop;
            }
          }
          subscriber.complete();
        },
      });
    });
}
