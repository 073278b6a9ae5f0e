import { InvalidArgumentError } from '@specstream/core';

/** The part of a tokenizer that says what each id means (models' Tokenizer fits). */
export interface VocabularyTokenizer {
  readonly vocabSize: number;
  idToToken?(id: number): string | undefined;
  decode(ids: readonly number[]): string;
}

export interface VocabularyCheck {
  targetVocabSize: number;
  draftVocabSize: number;
  targetTokenizer?: VocabularyTokenizer;
  draftTokenizer?: VocabularyTokenizer;
}

/**
 * A draft is usable when every id it can propose means the same to the
 * target: equal vocabularies, or the draft's a prefix of a target vocabulary
 * padded with extra rows (e.g. 32000 vs 32064). With tokenizers, the strings
 * of the shared ids must agree; the first id that differs is named.
 */
export function checkVocabularies(check: VocabularyCheck): void {
  const { targetVocabSize: target, draftVocabSize: draft } = check;
  if (draft > target) {
    throw new InvalidArgumentError(
      `draft vocabulary (${draft} ids) is larger than the target's (${target}): the target cannot score ids ${target}..${draft - 1}`,
    );
  }
  const a = check.targetTokenizer;
  const b = check.draftTokenizer;
  if (a === undefined || b === undefined) return;
  const shared = Math.min(draft, a.vocabSize, b.vocabSize);
  if (b.vocabSize > a.vocabSize && b.vocabSize <= draft) {
    throw new InvalidArgumentError(
      `draft tokenizer has ${b.vocabSize} ids, the target tokenizer only ${a.vocabSize}: id ${a.vocabSize} has no meaning for the target`,
    );
  }
  const text = (t: VocabularyTokenizer, id: number) => t.idToToken?.(id) ?? t.decode([id]);
  for (let id = 0; id < shared; id++) {
    const x = text(a, id);
    const y = text(b, id);
    if (x !== y) {
      throw new InvalidArgumentError(
        `vocabularies differ at id ${id}: target ${JSON.stringify(x)}, draft ${JSON.stringify(y)}`,
      );
    }
  }
}
