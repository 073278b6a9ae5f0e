import * as tf from '@tensorflow/tfjs-core';
import type { LogitsSelection } from './decoder.js';
import { CacheOverflowError, DisposedError, InvalidArgumentError } from './errors.js';

/** Checks shared by every Decoder implementation; each throws before any state changes. */

export function checkPositiveInteger(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) {
    throw new InvalidArgumentError(`${name} must be a positive integer, got ${value}`);
  }
}

export function checkNotDisposed(state: { disposed: boolean }): void {
  if (state.disposed)
    throw new DisposedError('the decoder state was disposed; create a new one with createState');
}

/**
 * tokens must be `batch` rows of one common, non-zero length of integer ids in
 * [0, vocabSize). Returns the ids flattened row-major and the step count.
 */
export function flattenTokens(
  tokens: ReadonlyArray<ArrayLike<number>>,
  batch: number,
  vocabSize: number,
): { ids: Int32Array; steps: number } {
  if (!Array.isArray(tokens) || tokens.length !== batch) {
    throw new InvalidArgumentError(
      `tokens must have one row per batch row: expected ${batch} rows, got ${Array.isArray(tokens) ? tokens.length : typeof tokens}`,
    );
  }
  const steps = tokens[0]?.length ?? 0;
  if (steps === 0)
    throw new InvalidArgumentError('tokens rows are empty: extendStep needs at least one step');
  const ids = new Int32Array(batch * steps);
  for (let r = 0; r < batch; r++) {
    const row = tokens[r];
    if (row.length !== steps) {
      throw new InvalidArgumentError(`tokens rows must all have ${steps} steps; row ${r} has ${row.length}`);
    }
    for (let s = 0; s < steps; s++) {
      const id = row[s];
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
        throw new InvalidArgumentError(
          `token id ${id} at row ${r}, step ${s} is outside the vocabulary [0, ${vocabSize})`,
        );
      }
      ids[r * steps + s] = id;
    }
  }
  return { ids, steps };
}

export function checkCapacity(
  lengths: Int32Array,
  steps: number,
  maxLength: number,
  maxPositions: number,
): void {
  for (let r = 0; r < lengths.length; r++) {
    const end = lengths[r] + steps;
    if (end > maxLength) {
      throw new CacheOverflowError(
        `row ${r} would reach length ${end}, past the state's maxLength ${maxLength} (it holds ${lengths[r]}, adding ${steps})`,
      );
    }
    if (end > maxPositions) {
      throw new CacheOverflowError(
        `row ${r} would reach position ${end - 1}; the model has ${maxPositions} positions`,
      );
    }
  }
}

/** Per-row logits step indices for a LogitsSelection given as indices. */
/** A LogitsSelection's shape: a known keyword, or one in-window index per row. */
export function checkLogitsSelection(
  selection: LogitsSelection | undefined,
  batch: number,
  steps: number,
): void {
  if (selection === undefined || selection === 'all' || selection === 'last' || selection === 'none') return;
  if (typeof selection === 'string')
    throw new InvalidArgumentError(
      `logits must be 'all', 'last', 'none' or one index per row, got '${selection}'`,
    );
  checkLogitsIndices(selection, batch, steps);
}

export function checkLogitsIndices(indices: ArrayLike<number>, batch: number, steps: number): void {
  if (indices.length !== batch) {
    throw new InvalidArgumentError(
      `logits indices need one entry per row: expected ${batch}, got ${indices.length}`,
    );
  }
  for (let r = 0; r < batch; r++) {
    const i = indices[r];
    if (!Number.isInteger(i) || i < 0 || i >= steps) {
      throw new InvalidArgumentError(`logits index ${i} for row ${r} is outside the window [0, ${steps})`);
    }
  }
}

export function checkRollback(current: Int32Array, lengths: ArrayLike<number>): void {
  if (lengths.length !== current.length) {
    throw new InvalidArgumentError(
      `rollback needs one length per row: expected ${current.length}, got ${lengths.length}`,
    );
  }
  for (let r = 0; r < current.length; r++) {
    const length = lengths[r];
    if (!Number.isInteger(length) || length < 0 || length > current[r]) {
      throw new InvalidArgumentError(
        `rollback length ${length} for row ${r} is outside [0, ${current[r]}] (the row's current length)`,
      );
    }
  }
}

/**
 * Rows of a pass's final hidden states [batch·steps, hidden] to project onto
 * the vocabulary, for a LogitsSelection other than 'none' (which projects
 * nothing; callers skip the head).
 */
export function selectLogitRows(
  x: tf.Tensor2D,
  batch: number,
  steps: number,
  selection: Exclude<LogitsSelection, 'none'>,
): tf.Tensor2D {
  // One step per row: every selection picks every row (a decode step skips the gather).
  if (selection === 'all' || steps === 1) return x;
  const rows = new Int32Array(batch);
  for (let r = 0; r < batch; r++) rows[r] = r * steps + (selection === 'last' ? steps - 1 : selection[r]);
  return tf.gather(x, rows);
}
