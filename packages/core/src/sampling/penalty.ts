import { InvalidArgumentError } from '../errors.js';

/**
 * CTRL / Hugging Face repetition penalty: every token id seen in `history`
 * becomes less likely, a positive logit divided by `penalty`, a negative one
 * multiplied (dividing a negative would make it more likely). Returns a copy.
 */
export function applyRepetitionPenalty(
  logits: Float32Array,
  history: ArrayLike<number>,
  penalty: number,
): Float32Array {
  if (!(Number.isFinite(penalty) && penalty > 0)) {
    throw new InvalidArgumentError(`repetitionPenalty must be a finite number > 0, got ${penalty}`);
  }
  const penalized = logits.slice();
  for (let j = 0; j < history.length; j++) {
    const id = history[j];
    if (!(Number.isInteger(id) && id >= 0 && id < logits.length)) {
      throw new InvalidArgumentError(`history[${j}] is ${id}, not a token id in [0, ${logits.length})`);
    }
    // Read from the input, not the copy, so an id repeated in history is penalized once.
    const value = logits[id];
    penalized[id] = value > 0 ? value / penalty : value * penalty;
  }
  return penalized;
}
