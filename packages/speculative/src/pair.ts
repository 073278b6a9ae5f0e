import { type Decoder, InvalidArgumentError } from '@specstream/core';
import type { Drafter } from './drafter.js';
import { fixedK, type KPolicy } from './k-policy.js';
import { modelDrafter } from './model-drafter.js';
import { checkVocabularies, type VocabularyTokenizer } from './vocabulary.js';

export interface PairOptions {
  target: Decoder;
  /** A smaller model (any Decoder), or a Drafter such as promptLookupDrafter(). */
  draft: Decoder | Drafter;
  /** Tokens drafted per iteration: a number, or a policy such as adaptiveK(). Default 4. */
  k?: number | KPolicy;
  /** When given, the vocabularies are compared string by string. */
  tokenizers?: { target: VocabularyTokenizer; draft: VocabularyTokenizer };
}

export interface SpeculativePair {
  readonly target: Decoder;
  readonly drafter: Drafter;
  readonly policy: KPolicy;
}

function isDecoder(x: Decoder | Drafter): x is Decoder {
  return typeof (x as Decoder).extendStep === 'function';
}

/** Checks a target/draft configuration and normalises it; throws InvalidArgumentError naming the problem. */
export function speculativePair(options: PairOptions): SpeculativePair {
  const { target, draft } = options;
  if (target === undefined || typeof target.extendStep !== 'function') {
    throw new InvalidArgumentError('speculative pair: target must be a Decoder');
  }
  if (draft === undefined || (!isDecoder(draft) && typeof (draft as Drafter).start !== 'function')) {
    throw new InvalidArgumentError('speculative pair: draft must be a Decoder or a Drafter');
  }
  const drafter = isDecoder(draft) ? modelDrafter(draft) : draft;
  if (drafter.vocabSize !== undefined || options.tokenizers !== undefined) {
    checkVocabularies({
      targetVocabSize: target.vocabSize,
      draftVocabSize: drafter.vocabSize ?? target.vocabSize,
      targetTokenizer: options.tokenizers?.target,
      draftTokenizer: options.tokenizers?.draft,
    });
  }
  const k = options.k ?? 4;
  const policy = typeof k === 'number' ? fixedK(k) : k;
  return { target, drafter, policy };
}
