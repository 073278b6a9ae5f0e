import { describe, expect, it } from 'vitest';
import { FEW_ROWS, prefetchChoice, TIMED_WORK } from '../../src/kernel-sets/wasm/prefetch-choice.js';

describe('prefetchChoice', () => {
  it('alternates per weight shape while undecided, then keeps the flag faster on most shapes', () => {
    for (const faster of [0, 1]) {
      const choice = prefetchChoice(3, undefined);
      const work = 4 * TIMED_WORK;
      // A model's products come in a fixed order of shapes; each shape's own calls alternate.
      const shapes = ['a', 'b', 'c', 'd'];
      const seen = new Map<string, number[]>();
      for (let call = 0; choice.decided(4) === undefined; call++) {
        const shape = shapes[call % shapes.length];
        const flag = choice.flag(4, work, shape);
        seen.set(shape, [...(seen.get(shape) ?? []), flag]);
        // Shape 'a' is slow whatever the flag (it must not bias the choice); one outlier does not decide.
        const base = shape === 'a' ? 10 : 1;
        const ms = call === 0 ? 100 : base * (flag === faster ? 2 : 3);
        choice.record(flag, 4, work, ms, shape);
      }
      expect(choice.decided(4)).toBe(faster);
      for (const flags of seen.values()) expect(new Set(flags).size).toBe(2);
      expect(choice.flag(4, work, 'e')).toBe(faster);
      expect(choice.flag(FEW_ROWS, TIMED_WORK / 4, 'a')).toBe(faster);
      // Many rows (prefill chunks) are timed and decided on their own.
      expect(choice.decided(FEW_ROWS + 1)).toBeUndefined();
    }
  });

  it('never prefetches one row, and leaves small products out of the timing', () => {
    const choice = prefetchChoice(1, undefined);
    expect(choice.flag(1, 10 * TIMED_WORK, 'a')).toBe(0);
    expect(choice.flag(4, TIMED_WORK / 2, 'a')).toBe(1);
    choice.record(1, 4, TIMED_WORK / 2, 1, 'a');
    choice.record(0, 1, 10 * TIMED_WORK, 1, 'a');
    expect(choice.decided(4)).toBeUndefined();
    expect(choice.decided(1)).toBe(0);
  });

  it('SPECSTREAM_WASM_PREFETCH fixes the flag, and a bad value is named', () => {
    expect(prefetchChoice(3, 'on').flag(4, TIMED_WORK, 'a')).toBe(1);
    expect(prefetchChoice(3, 'off').flag(4, TIMED_WORK, 'a')).toBe(0);
    expect(() => prefetchChoice(3, 'maybe')).toThrow(
      /SPECSTREAM_WASM_PREFETCH must be on, off or auto, got "maybe"/,
    );
  });
});
