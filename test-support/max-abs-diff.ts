import { expect } from 'vitest';

/**
 * Largest |a[i] − b[i]|, after asserting equal lengths: the comparison every
 * package's numerical tests make against their references. Test-only code,
 * shared by the packages' tests (no package depends on it).
 */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}
