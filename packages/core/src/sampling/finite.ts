import { InvalidArgumentError, NonFiniteError } from '../errors.js';

/**
 * -Infinity is the usual way to mask a token out, so it is allowed; NaN and
 * +Infinity mean the model went wrong and would silently poison the softmax.
 */
export function assertSampleableLogits(logits: Float32Array): void {
  if (logits.length === 0) throw new InvalidArgumentError('logits row is empty');
  let anyUnmasked = false;
  for (let i = 0; i < logits.length; i++) {
    const value = logits[i];
    if (value === Number.NEGATIVE_INFINITY) continue;
    if (!Number.isFinite(value)) {
      throw new NonFiniteError(`logits[${i}] is ${value}; only -Infinity (a mask) may be non-finite`);
    }
    anyUnmasked = true;
  }
  if (!anyUnmasked) throw new InvalidArgumentError('every logit is -Infinity: no token is left to choose');
}
