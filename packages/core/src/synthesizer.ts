import type * as tf from '@tensorflow/tfjs-core';

/**
 * The speech synthesis contracts, of the same shape as Decoder and Encoder:
 * a model (weights) plus state objects it extends in place.
 *
 * A `Synthesizer` turns text token ids into acoustic frames (mel columns),
 * autoregressively. Text may arrive incrementally: `appendText` adds tokens
 * to a row as they stream in, `endText` says no more will come. Each decoder
 * step emits `framesPerStep` frames (a reduction factor, as in Tacotron), and
 * `extendStep(state, steps)` runs `steps` decoder steps in one call.
 *
 * Streaming determinism: a step may only look at text that can no longer
 * change its result. `readySteps(state)` says how many steps can run now
 * with what has been appended; `extendStep` refuses more. Frames therefore
 * depend only on the full text, never on how it was split into appends or
 * when they happened relative to generation. A model that needs the whole
 * text before speaking reports 0 ready steps until `endText`.
 *
 * A `Vocoder` turns those frames into audio samples, incrementally: `push`
 * returns the samples that no later frame can change, `flush` the rest.
 * What a frame means (mel scale, log base, framing) is an agreement between
 * a synthesizer and the vocoder paired with it; both expose `nMels`,
 * `sampleRate` and `hop` so callers can check the pairing.
 */

/** Text token ids to append: one row per batch row; rows may differ in length (and be empty). */
export type TextBatch = ReadonlyArray<ArrayLike<number>>;

export interface SynthesizerStateOptions {
  batch: number;
  /** Most frames any row may ever hold. */
  maxFrames: number;
  /** Most text tokens any row may ever hold; default the model's `maxTextTokens`. */
  maxTextTokens?: number;
}

export interface SynthesizerState {
  readonly batch: number;
  readonly maxFrames: number;
  readonly maxTextTokens: number;
  /**
   * Per row: frames generated so far (a multiple of framesPerStep). All rows
   * advance together; read-only for callers.
   */
  readonly lengths: Int32Array;
  /** Per row: text tokens appended so far. */
  readonly textLengths: Int32Array;
  /** True once endText was called: the text of every row is complete. */
  readonly textEnded: boolean;
  /** Per row: whether the model has stopped (its stop head fired). Sticky. */
  readonly done: readonly boolean[];
  /** Per row: the utterance's length in frames once done, else -1. */
  readonly stopFrames: Int32Array;
  readonly disposed: boolean;
}

export interface SynthesisResult<S extends SynthesizerState = SynthesizerState> {
  /** [batch, steps·framesPerStep, nMels]. Owned by the caller: dispose it. */
  frames: tf.Tensor3D;
  /** Per row, after this call: whether the row has stopped. */
  done: boolean[];
  /**
   * Per row: how many leading frames of `frames` belong to the utterance
   * (all of them, up to the stop step's group in the call where the row
   * stops, 0 in later calls). Frames past that are computed but meaningless.
   */
  validFrames: number[];
  /** The same state object, updated in place. */
  state: S;
}

export interface Synthesizer<S extends SynthesizerState = SynthesizerState> {
  readonly vocabSize: number;
  readonly nMels: number;
  /** Frames one decoder step emits (the reduction factor r). */
  readonly framesPerStep: number;
  /** Audio the frames describe: sample rate and samples per frame. */
  readonly sampleRate: number;
  readonly hop: number;
  /** Default text capacity of a state. */
  readonly maxTextTokens: number;
  createState(options: SynthesizerStateOptions): S;
  /**
   * Appends text tokens to each row (ids in [0, vocabSize)). Conditioning is
   * computed here, once per appended chunk (an encoder over the new tokens,
   * for instance). Throws after endText. On error the state is unchanged.
   */
  appendText(state: S, tokens: TextBatch): void;
  /** No more text will come; every row must hold at least one token. Idempotent. */
  endText(state: S): void;
  /**
   * Decoder steps `extendStep` can take now: those whose result no text yet
   * to come can change (after endText: as many as the capacity allows).
   * The minimum over rows.
   */
  readySteps(state: S): number;
  /**
   * Runs `steps` decoder steps (each fed the previous step's last frame)
   * and returns their steps·framesPerStep frames. Throws if `steps` exceeds
   * `readySteps(state)`; on error the state is unchanged. Asynchronous
   * because the stop decision needs values on the host, and webgpu in Node
   * can only download asynchronously; the state must not be changed until it
   * settles (calls made meanwhile throw).
   */
  extendStep(state: S, steps: number): Promise<SynthesisResult<S>>;
  /** Frees every tensor the state owns. Idempotent. */
  disposeState(state: S): void;
  /** Frees the model's weights. */
  dispose(): void;
}

export interface VocoderState {
  /** Frames pushed so far. */
  readonly framesIn: number;
  /** Samples returned so far (push and flush). */
  readonly samplesOut: number;
  /** True after flush: the state accepts nothing more. */
  readonly flushed: boolean;
  readonly disposed: boolean;
}

export interface Vocoder<S extends VocoderState = VocoderState> {
  readonly sampleRate: number;
  /** Samples per frame: n frames in total become n·hop samples. */
  readonly hop: number;
  readonly nMels: number;
  /**
   * Look-ahead in frames: the samples of frame slot t ([t·hop, (t+1)·hop))
   * come out of the push that brings the frame count past t + latencyFrames.
   */
  readonly latencyFrames: number;
  createVocoderState(): S;
  /**
   * frames: frame-major [n × nMels] (n may be 0). Returns the samples that
   * are now final, continuing exactly where the previous call stopped.
   */
  push(state: S, frames: Float32Array): Float32Array;
  /** Ends the utterance: returns the remaining samples (total framesIn·hop). */
  flush(state: S): Float32Array;
  /** Frees whatever the state holds. Idempotent. */
  disposeVocoderState(state: S): void;
  dispose(): void;
}
