import { argmax } from './argmax.js';
import { pick, softmaxOver, toDistribution, unmaskedIds } from './candidates.js';
import { assertSampleableLogits } from './finite.js';
import { minPPositions } from './min-p.js';
import { nucleusPositions } from './nucleus.js';
import { isGreedy, type SamplingOptions, validateSampling } from './options.js';
import { applyRepetitionPenalty } from './penalty.js';
import { topKIds } from './top-k.js';

/**
 * One row of logits → the distribution a token is drawn from (length vocab,
 * sums to 1, zeros where filtered). Order: repetition penalty, temperature,
 * top-k, top-p, min-p. Greedy returns the one-hot of the argmax so that
 * speculative decoding can treat it as a distribution like any other.
 * `history` (token ids so far) is only read when a repetition penalty is set.
 */
export function processLogits(
  logits: Float32Array,
  options: SamplingOptions,
  history?: ArrayLike<number>,
): Float32Array {
  const settings = validateSampling(options);
  assertSampleableLogits(logits);
  const penalized =
    settings.repetitionPenalty !== 1 && history !== undefined && history.length > 0
      ? applyRepetitionPenalty(logits, history, settings.repetitionPenalty)
      : logits;
  if (isGreedy(settings)) return oneHot(logits.length, argmax(penalized));

  // Top-k first picks ids by raw logit: dividing by a positive temperature keeps the order.
  const limitK = settings.topK > 0 && settings.topK < logits.length;
  const ids = limitK ? topKIds(penalized, settings.topK) : unmaskedIds(penalized);
  let candidates = softmaxOver(penalized, ids, settings.temperature);
  if (settings.topP < 1) candidates = pick(candidates, nucleusPositions(candidates.probs, settings.topP));
  if (settings.minP > 0) candidates = pick(candidates, minPPositions(candidates.probs, settings.minP));
  return toDistribution(candidates, logits.length);
}

function oneHot(length: number, index: number): Float32Array {
  const distribution = new Float32Array(length);
  distribution[index] = 1;
  return distribution;
}
