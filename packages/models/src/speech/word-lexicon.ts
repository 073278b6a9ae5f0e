import { InvalidArgumentError } from '@specstream/core';

/**
 * The words of a text, as a trie over a CTC recognizer's labels: what the beam search's
 * out-of-vocabulary penalty (ctc-beam.ts) checks each word it spells against, letter by letter,
 * so that a misspelling is penalised as soon as no word of the text begins with it, not only
 * once it is complete. Nodes are integers: ROOT is the empty word, NOT_A_WORD a spelling no
 * word begins with (it stays so until the next space).
 */
export interface WordLexicon {
  /** The recognizer's labels (index 0 the blank); the space label separates words. */
  readonly vocabulary: readonly string[];
  /** The label of the space. */
  readonly space: number;
  /** Distinct words. */
  readonly size: number;
  /** The node after `node` followed by the non-space label `label`: NOT_A_WORD when no word begins so. */
  next(node: number, label: number): number;
  /** Whether the spelling at `node` is a whole word of the text. */
  isWord(node: number): boolean;
}

/** The empty spelling: before a sentence's first letter and after each space. */
export const WORD_LEXICON_ROOT = 0;
/** A spelling no word of the text begins with. */
export const NOT_A_WORD = -1;

/**
 * The words of `sentences`, split as the character LM splits its text (trainCharNgramLm):
 * lowercased, a character outside the labels is a word break. `vocabulary` is the recognizer's;
 * it must have a space label.
 */
export function trainWordLexicon(sentences: Iterable<string>, vocabulary: readonly string[]): WordLexicon {
  const space = vocabulary.indexOf(' ');
  if (space < 1) throw new InvalidArgumentError('a word lexicon needs a space label in the vocabulary');
  const codes = new Map<string, number>();
  vocabulary.forEach((label, id) => {
    if (id > 0) codes.set(label, id);
  });
  const base = vocabulary.length;
  // Child of node n by label l at key n·base + l; `words` marks the nodes that end a word.
  const children = new Map<number, number>();
  const words: boolean[] = [false];
  let size = 0;
  for (const line of sentences) {
    let node = WORD_LEXICON_ROOT;
    for (const character of `${line.toLowerCase()} `) {
      const label = codes.get(character) ?? space;
      if (label === space) {
        if (node !== WORD_LEXICON_ROOT && !words[node]) {
          words[node] = true;
          size++;
        }
        node = WORD_LEXICON_ROOT;
        continue;
      }
      const key = node * base + label;
      let child = children.get(key);
      if (child === undefined) {
        child = words.length;
        words.push(false);
        children.set(key, child);
      }
      node = child;
    }
  }
  return {
    vocabulary,
    space,
    size,
    next: (node, label) =>
      node === NOT_A_WORD ? NOT_A_WORD : (children.get(node * base + label) ?? NOT_A_WORD),
    isWord: (node) => node !== NOT_A_WORD && words[node],
  };
}
