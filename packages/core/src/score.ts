import type { Decoder } from './decoder.js';
import { InvalidArgumentError } from './errors.js';

/** What a model made of token sequences it was fed whole (teacher forcing). */
export interface SequenceScores {
  /** Every position's most likely next token, sequence after sequence. */
  top1: Int32Array;
  /** −log p(the token that follows) at every position that has one, in nats. */
  crossEntropy: Float64Array;
}

/**
 * Feeds each sequence in one extendStep and scores every position: held-out
 * perplexity is exp(mean cross-entropy); two models agree where their top1
 * agree. The log-sum-exp is taken in float64 from the logits as they are.
 */
export async function scoreSequences(
  model: Decoder,
  sequences: ReadonlyArray<ArrayLike<number>>,
): Promise<SequenceScores> {
  const V = model.vocabSize;
  const top1: number[] = [];
  const crossEntropy: number[] = [];
  for (const [n, ids] of sequences.entries()) {
    if (ids.length === 0) throw new InvalidArgumentError(`sequence ${n} is empty`);
    const state = model.createState({ batch: 1, maxLength: ids.length });
    try {
      const { logits } = model.extendStep(state, [Array.from(ids)]);
      const values = (await logits.data().finally(() => logits.dispose())) as Float32Array;
      for (let t = 0; t < ids.length; t++) {
        const row = values.subarray(t * V, (t + 1) * V);
        let best = 0;
        for (let i = 1; i < V; i++) if (row[i] > row[best]) best = i;
        top1.push(best);
        if (t + 1 === ids.length) continue;
        let sum = 0;
        for (let i = 0; i < V; i++) sum += Math.exp(row[i] - row[best]);
        crossEntropy.push(Math.log(sum) + row[best] - row[ids[t + 1]]);
      }
    } finally {
      model.disposeState(state);
    }
  }
  return { top1: Int32Array.from(top1), crossEntropy: Float64Array.from(crossEntropy) };
}
