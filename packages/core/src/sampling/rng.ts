import seedrandom from 'seedrandom';
import { InvalidArgumentError } from '../errors.js';

/** A uniform random stream in [0, 1). */
export type Rng = () => number;

/**
 * Alea: small state, fast, passes BigCrush; 32 bits per draw is plenty to pick
 * among ~150k tokens. The seed goes in as a string, so equal numbers give equal
 * streams. Without a seed, Math.random picks one so that two unseeded
 * generators made in the same millisecond still differ.
 */
export function createRng(seed?: number): Rng {
  if (seed !== undefined && !Number.isFinite(seed)) {
    throw new InvalidArgumentError(`seed must be a finite number, got ${seed}`);
  }
  return seedrandom.alea(String(seed ?? Math.random()));
}
