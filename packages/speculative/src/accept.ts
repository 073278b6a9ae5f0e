import { InvalidArgumentError, type Rng, sampleFrom } from '@specstream/core';

/** One row's verification problem: the drafted tokens and what scored them. */
export interface AcceptInput {
  /** Drafted tokens d_1..d_m (m may be 0). */
  draft: ArrayLike<number>;
  /**
   * The draft's distributions q_1..q_m the tokens were drawn from, or
   * undefined when the drafter is deterministic (q_i is the one-hot of d_i).
   * A q shorter than p (a draft vocabulary that is a prefix of a padded
   * target vocabulary) gives zero probability to the ids it lacks.
   */
  q?: ReadonlyArray<Float32Array>;
  /**
   * The target's processed distribution at window position i (0..m): p_i is
   * conditioned on the context plus d_1..d_i. Called lazily and in order, so
   * work stops at the first rejection.
   */
  p: (i: number) => Float32Array;
  rng: Rng;
}

export interface AcceptResult {
  /** How many drafted tokens were accepted (0..m). */
  accepted: number;
  /** The token that follows them: a residual sample at a rejection, else a bonus sample from p_m. */
  next: number;
}

export type AcceptRule = (input: AcceptInput) => AcceptResult;

/**
 * The speculative sampling rule (Leviathan et al. 2023; Chen et al. 2023):
 * accept d_i with probability min(1, p_i(d_i)/q_i(d_i)); at the first
 * rejection draw from norm(max(0, p_i − q_i)); if every token is accepted
 * draw a bonus token from p_m. The emitted tokens are then distributed
 * exactly as if drawn from p alone. A greedy p (one-hot of the target's
 * argmax) makes the same rule accept exactly while the argmax agrees and
 * then emit the argmax, with no randomness in the outcome.
 */
export const acceptDraft: AcceptRule = ({ draft, q, p, rng }) => {
  if (q !== undefined && q.length < draft.length) {
    throw new InvalidArgumentError(
      `acceptDraft: ${draft.length} drafted tokens but ${q.length} q distributions`,
    );
  }
  for (let i = 0; i < draft.length; i++) {
    const token = draft[i];
    const target = p(i);
    const px = target[token] ?? 0;
    const qx = q === undefined ? 1 : (q[i][token] ?? 0);
    // px ≥ qx accepts without a coin: keeps greedy free of random draws on acceptance.
    if (px >= qx || rng() * qx < px) continue;
    return { accepted: i, next: sampleFrom(residual(target, q?.[i], token), rng) };
  }
  return { accepted: draft.length, next: sampleFrom(p(draft.length), rng) };
};

/** max(0, p − q), q being one-hot at `token` when the drafter gave no distribution. */
function residual(p: Float32Array, q: Float32Array | undefined, token: number): Float32Array {
  const out = new Float32Array(p.length);
  let mass = 0;
  for (let i = 0; i < p.length; i++) {
    const qi = q === undefined ? (i === token ? 1 : 0) : (q[i] ?? 0);
    const r = p[i] - qi;
    if (r > 0) {
      out[i] = r;
      mass += r;
    }
  }
  // p ≤ q everywhere happens only when p == q up to round-off, and then a rejection had
  // probability ~0: the residual is undefined and p itself is the right law.
  return mass > 0 ? out : p;
}
