import type { Sampler } from '@specstream/core';
import type * as tf from '@tensorflow/tfjs-core';

/** What a drafter offers for one row: up to k tokens, and the law they were drawn from. */
export interface Proposal {
  tokens: number[];
  /**
   * q_1..q_m, one distribution per token, when the tokens were sampled; leave
   * it out for deterministic proposals (the verifier then treats q as one-hot).
   */
  probs?: Float32Array[];
}

export interface DraftContext {
  /** Per row: every token so far (prompt and emitted). Read-only. */
  histories: ReadonlyArray<readonly number[]>;
  /** Rows still generating; proposals for the others are ignored. */
  active: readonly boolean[];
  /** Most tokens wanted per row this iteration. */
  k: number;
  signal?: AbortSignal;
}

/**
 * A greedy proposal left on the device (webgpu), so the target's verify pass can read it
 * without the host waiting for it: the caller reads the picks together with the verify
 * pass's, then settles the proposal with them.
 */
export interface DeviceProposal {
  /** int32 [batch, k]: every row's k picks, finished rows' too. Owned by the proposal. */
  readonly ids: tf.Tensor2D;
  /**
   * The picks as read (row-major [batch, k]) become the drafter's: each active row's
   * tokens, [] for the others. Throws the sampler's own error for an active row whose
   * pick was refused (−1: NaN, +∞ or nothing above −∞ in the draft's logits).
   */
  settle(picks: Int32Array): Promise<Proposal[]>;
  /** Frees the ids and whatever the proposal kept. Idempotent. */
  dispose(): void;
}

/** One generation's drafting: owns whatever state the drafter keeps (a draft KV cache). */
export interface DraftSession {
  propose(context: DraftContext): Promise<Proposal[]>;
  /**
   * Optional: the same proposal for greedy drafting without a penalty, left on the device
   * (see DeviceProposal); undefined where it cannot be (no device path, a sampled draft),
   * before any state changes, so the caller then calls `propose`.
   */
  proposeOnDevice?(context: DraftContext): DeviceProposal | undefined;
  /** Frees the session's state. Idempotent. */
  dispose(): void;
}

export interface DraftSessionOptions {
  batch: number;
  /** Longest history any row can reach, plus the largest k. */
  maxLength: number;
  /** The generation's sampler: drafts use the same settings and random stream as verification. */
  sampler: Sampler;
  /** The prompts, so a drafter can read them up front (outside the timed iterations). */
  prompts?: ReadonlyArray<readonly number[]>;
}

/**
 * Anything that guesses the target's next tokens: a smaller model
 * (`modelDrafter`), a lookup in the text so far (`promptLookupDrafter`), or
 * your own. A drafter is reusable; each generation starts a session.
 */
export interface Drafter {
  readonly name: string;
  /**
   * Ids the drafter can propose: [0, vocabSize). Undefined for drafters that copy tokens from the text.
   * The histories it reads may still hold larger ids when the target's vocabulary is padded past it.
   */
  readonly vocabSize?: number;
  /** Positions the drafter's own state can hold (a learned position table); undefined = no limit. */
  readonly maxPositions?: number;
  start(options: DraftSessionOptions): DraftSession;
}
