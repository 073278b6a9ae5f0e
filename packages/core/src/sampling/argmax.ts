import { InvalidArgumentError } from '../errors.js';

/** Index of the largest value; ties go to the lowest index so greedy decoding is deterministic. */
export function argmax(values: ArrayLike<number>): number {
  if (values.length === 0) throw new InvalidArgumentError('argmax of an empty array');
  let best = 0;
  let bestValue = values[0];
  for (let i = 1; i < values.length; i++) {
    // Strict: an equal value later in the row never displaces the earlier one.
    if (values[i] > bestValue) {
      best = i;
      bestValue = values[i];
    }
  }
  return best;
}
