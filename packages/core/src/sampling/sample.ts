import { InvalidArgumentError, NonFiniteError } from '../errors.js';
import type { Rng } from './rng.js';

/**
 * Inverse-CDF draw: the first index whose running sum exceeds u × total.
 * Scaling u by the actual total (rather than assuming 1) absorbs float32
 * round-off and also accepts unnormalized weights. Zero entries are never drawn.
 */
export function sampleFrom(probs: Float32Array, rng: Rng): number {
  const target = rng() * totalMass(probs);
  let cumulative = 0;
  let lastWithMass = -1;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] === 0) continue;
    cumulative += probs[i];
    lastWithMass = i;
    if (target < cumulative) return i;
  }
  // Reached only if round-off left target at the very top; the last token with mass owns that end.
  return lastWithMass;
}

function totalMass(probs: Float32Array): number {
  let total = 0;
  for (let i = 0; i < probs.length; i++) {
    const p = probs[i];
    if (!Number.isFinite(p)) throw new NonFiniteError(`probs[${i}] is ${p}`);
    if (p < 0) throw new InvalidArgumentError(`probs[${i}] is ${p}; probabilities must be >= 0`);
    total += p;
  }
  if (!(total > 0)) throw new InvalidArgumentError('probs has no mass: every entry is 0 (or it is empty)');
  return total;
}
