import type * as tf from '@tensorflow/tfjs-core';

/**
 * The decoding contract. A `Decoder` is an autoregressive model whose state
 * (KV cache and one position per batch row) is extended by any number of new
 * steps in one pass. Everything above core (speculative verification,
 * streaming, generation) consumes only this interface.
 */

/** Token ids for one call: `batch` rows of `steps` ids each (all rows the same length). */
export type TokenBatch = ReadonlyArray<ArrayLike<number>>;

/**
 * Ids of one call whose first column is on the host and the rest on the device: row r's
 * steps are [first[r], ...rest[r]]. A verify pass takes each row's last token (known) and the
 * draft's picks (still on the device) this way, without uploading one or reading the other.
 */
export interface SplitTokens {
  /** One id per row. */
  first: ArrayLike<number>;
  /** int32 [batch, steps − 1], steps − 1 ≥ 1. The caller keeps it. */
  rest: tf.Tensor2D;
}

export interface CreateStateOptions {
  batch: number;
  /** Most positions any row may ever hold (prompt + generated). */
  maxLength: number;
}

export interface DecoderState {
  readonly batch: number;
  readonly maxLength: number;
  /**
   * Per row: how many positions the cache holds, i.e. the position the next
   * new step of that row gets. Rows may differ. Read-only for callers: use
   * `extendStep` and `rollback` to change it.
   */
  readonly lengths: Int32Array;
  readonly disposed: boolean;
}

/** Which positions of the new window to compute logits for. */
export type LogitsSelection =
  /** every new step: logits [batch, steps, vocab] */
  | 'all'
  /** only the last new step of each row: logits [batch, 1, vocab] */
  | 'last'
  /** one step index per row (0-based within the window): logits [batch, 1, vocab] */
  | ArrayLike<number>
  /** none: logits [batch, 0, vocab], no vocabulary projection at all (prefill's inner chunks) */
  | 'none';

export interface ExtendOptions {
  /** Default 'all'. Prefill asks for 'none', or one row each, to skip the vocabulary projection elsewhere. */
  logits?: LogitsSelection;
}

export interface ExtendResult<S extends DecoderState = DecoderState> {
  /** Owned by the caller: dispose it. */
  logits: tf.Tensor3D;
  /** The same state object, updated in place (returned for chaining). */
  state: S;
}

/** Prefill chunk sizes: buckets (largest first after sorting), or 'any' length up to MAX_PREFILL_CHUNK. */
export type PrefillBuckets = readonly number[] | 'any';

export interface Decoder<S extends DecoderState = DecoderState> {
  readonly vocabSize: number;
  /** Largest position the model can represent (learned position tables); Infinity for rotary. */
  readonly maxPositions: number;
  /**
   * Optional: the prompt chunks this model prefills best with (prefill's
   * default when the caller names none): bucket sizes, for backends that
   * compile a program per shape, or 'any' where kernels take any row count
   * (a prompt then runs in as few passes as MAX_PREFILL_CHUNK allows).
   */
  readonly prefillBuckets?: PrefillBuckets;
  createState(options: CreateStateOptions): S;
  /**
   * Row r's new steps take positions `lengths[r] + 0 .. steps-1`; each attends
   * causally to the new steps before it and to the row's cached prefix.
   * On error the state is unchanged.
   */
  extendStep(state: S, tokens: TokenBatch, options?: ExtendOptions): ExtendResult<S>;
  /**
   * Optional: extendStep with the ids already in a tensor (int32 [batch,
   * steps]), e.g. the argmax of the previous logits, so a greedy loop never
   * waits to read them back (on a GPU each read is a round trip). Shapes and
   * dtype are checked; ids are not (that would need the read this avoids):
   * out-of-range ids give unspecified logits. The caller keeps `ids`.
   */
  extendStepOnDevice?(state: S, ids: tf.Tensor2D | SplitTokens, options?: ExtendOptions): ExtendResult<S>;
  /** Per row, forget every position at or after `lengths[r]`. */
  rollback(state: S, lengths: ArrayLike<number>): void;
  /** Frees every tensor the state owns. Idempotent. */
  disposeState(state: S): void;
  /** Frees the model's weights. */
  dispose(): void;
}

/**
 * Encoder contract of the same shape, over input frames (e.g. log-mel
 * columns). A streaming encoder extends its state by a chunk of frames at a
 * time; `leftContext` bounds how far back new frames may attend.
 */
export interface EncoderStateOptions {
  batch: number;
  maxLength: number;
  /** Frames of history each new frame may attend to; Infinity = all (causal). */
  leftContext?: number;
}

export interface EncoderState {
  readonly batch: number;
  readonly maxLength: number;
  /** Per row: input frames consumed so far. */
  readonly lengths: Int32Array;
  readonly disposed: boolean;
}

export interface EncodeResult<S extends EncoderState = EncoderState> {
  /** [batch, outSteps, outputDim]; outSteps may be fewer than input steps (subsampling). Owned by the caller. */
  outputs: tf.Tensor3D;
  state: S;
}

export interface Encoder<S extends EncoderState = EncoderState> {
  readonly inputDim: number;
  readonly outputDim: number;
  createState(options: EncoderStateOptions): S;
  /** frames: [batch, steps, inputDim]. */
  extendStep(state: S, frames: tf.Tensor3D): EncodeResult<S>;
  disposeState(state: S): void;
  dispose(): void;
}
