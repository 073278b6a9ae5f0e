import { InvalidArgumentError } from '@specstream/core';

/** What one iteration cost and achieved, fed back to the policy. */
export interface IterationReport {
  /** Tokens drafted per row; 0 for a plain target step (the policy's choice, or the text's end near). */
  k: number;
  /** Per active row: tokens proposed and how many were accepted. */
  proposed: readonly number[];
  accepted: readonly number[];
  /** Draft steps actually run (0 for model-free drafters) and their total time. */
  draftSteps: number;
  draftMs: number;
  /** Time of the one verification pass over k+1 positions. */
  verifyMs: number;
}

/** Chooses k before each iteration. */
export interface KPolicy {
  readonly maxK: number;
  /** k for the next iteration, in [0, maxK]; 0 = a plain target step. */
  next(): number;
  observe(report: IterationReport): void;
}

export function checkK(k: number, name = 'k'): void {
  if (!Number.isInteger(k) || k < 1 || k > 64) {
    throw new InvalidArgumentError(`${name} must be an integer in [1, 64], got ${k}`);
  }
}

export function fixedK(k: number): KPolicy {
  checkK(k);
  return { maxK: k, next: () => k, observe() {} };
}

/** E[tokens per iteration] for per-token acceptance α and k drafted tokens: (1 − α^(k+1)) / (1 − α). */
export function expectedTokens(alpha: number, k: number): number {
  return alpha >= 1 ? k + 1 : (1 - alpha ** (k + 1)) / (1 - alpha);
}
