import { InvalidArgumentError } from 'commander';

// Number('') is 0 and Number('0x10') is 16: only plain decimal notation counts as a number here.
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

function number(value: string): number {
  if (!DECIMAL.test(value.trim())) throw new InvalidArgumentError('not a number.');
  return Number(value);
}

/** A commander parser for an integer in [min, max]. */
export function integerIn(min: number, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value) => {
    const n = number(value);
    if (!Number.isInteger(n) || n < min || n > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`;
      throw new InvalidArgumentError(`must be an integer ${range}.`);
    }
    return n;
  };
}

/** A commander parser for a finite number that `accept` allows (`rule` says which). */
export function numberWhere(accept: (n: number) => boolean, rule: string): (value: string) => number {
  return (value) => {
    const n = number(value);
    if (!Number.isFinite(n) || !accept(n)) throw new InvalidArgumentError(`must be ${rule}.`);
    return n;
  };
}

/** A repeatable string option: each occurrence adds one. */
export function collect(value: string, previous: string[] = []): string[] {
  if (value === '') throw new InvalidArgumentError('must not be empty.');
  return [...previous, value];
}

/** A commander parser for a positive integer multiple of `step` (e.g. milliseconds of 10 ms frames). */
export function multipleOf(step: number): (value: string) => number {
  return (value) => {
    const n = number(value);
    if (!Number.isInteger(n) || n < step || n % step !== 0) {
      throw new InvalidArgumentError(`must be a positive multiple of ${step}.`);
    }
    return n;
  };
}
