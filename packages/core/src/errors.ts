/**
 * Errors thrown for bad input. Each names what was wrong; the state the call
 * was given is left exactly as it was, so the caller can correct and retry.
 */
export class SpecstreamError extends Error {
  override readonly name: string = 'SpecstreamError';
}

/** Argument of the wrong shape, range or type. */
export class InvalidArgumentError extends SpecstreamError {
  override readonly name = 'InvalidArgumentError';
}

/** A step would write past the state's `maxLength`. */
export class CacheOverflowError extends SpecstreamError {
  override readonly name = 'CacheOverflowError';
}

/** The state (or model) was already disposed. */
export class DisposedError extends SpecstreamError {
  override readonly name = 'DisposedError';
}

/** The model produced NaN or ±Infinity. */
export class NonFiniteError extends SpecstreamError {
  override readonly name = 'NonFiniteError';
}

/** Thrown (as the AbortSignal's reason when it has none) when generation is aborted. */
export class AbortError extends SpecstreamError {
  override readonly name = 'AbortError';
}
