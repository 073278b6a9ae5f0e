import { InvalidArgumentError } from '@specstream/core';
import { kneserNeyCounts, kneserNeyDiscount, nextHistory, paddedHistory } from './kneser-ney.js';
import { NOT_A_WORD, WORD_LEXICON_ROOT, type WordLexicon } from './word-lexicon.js';

/**
 * A word n-gram language model over the words of a lexicon (word-lexicon.ts), for the CTC beam
 * search to score each word when it ends (ctc-beam.ts). The character LM beside it sees only the
 * last few characters, about one word; this one sees the order-1 words before, whatever their
 * length. Smoothing is interpolated Kneser-Ney, as in char-ngram-lm.ts, down to the uniform
 * distribution over the lexicon's words, the end of the sentence and one unknown word, so every
 * word has a probability > 0 and those after any history sum to 1.
 *
 * Words are named by their lexicon node (the node that spells them); any other node (a proper
 * prefix of words, NOT_A_WORD) is the unknown word. A state is the last order-1 words' indices,
 * most recent lowest, in base words + 3, padded with the sentence start.
 */
export interface WordNgramLm {
  readonly order: number;
  /** The state before a sentence's first word. */
  readonly start: number;
  /** Natural-log probability of the word spelled up to lexicon node `node` after `state`. */
  logProb(state: number, node: number): number;
  /** Natural-log probability of the end of the sentence after `state`. */
  endLogProb(state: number): number;
  /** The state after `state` followed by the word at lexicon node `node`. */
  next(state: number, node: number): number;
}

export interface WordNgramLmOptions {
  /** Words per n-gram, the predicted one included (default WORD_LM_DEFAULT_ORDER). */
  order?: number;
}

export const WORD_LM_DEFAULT_ORDER = 3;

/** Word indices: the end of the sentence, the unknown word, the sentence start (history padding only), then the lexicon's words. */
const END = 0;
const UNKNOWN = 1;
const START = 2;
const FIRST_WORD = 3;

/** Probabilities cached per state before the cache is dropped (a long stream visits new histories forever). */
const CACHE_LIMIT = 65536;

/**
 * Counts the word n-grams of `sentences`, split into words as `lexicon` was (trainWordLexicon:
 * lowercased, a character outside the labels is a break), and returns the smoothed model.
 */
export function trainWordNgramLm(
  sentences: Iterable<string>,
  lexicon: WordLexicon,
  options: WordNgramLmOptions = {},
): WordNgramLm {
  const order = options.order ?? WORD_LM_DEFAULT_ORDER;
  const codes = new Map<string, number>();
  lexicon.vocabulary.forEach((label, id) => {
    if (id > 0) codes.set(label, id);
  });
  // Each word's lexicon node → its index, in order of first appearance.
  const indexOf = new Map<number, number>();
  const lines: number[][] = [];
  for (const line of sentences) {
    const words: number[] = [];
    let node = WORD_LEXICON_ROOT;
    for (const character of `${line.toLowerCase()} `) {
      const label = codes.get(character) ?? lexicon.space;
      if (label !== lexicon.space) {
        node = lexicon.next(node, label);
        continue;
      }
      if (node !== WORD_LEXICON_ROOT && !lexicon.isWord(node)) {
        words.push(UNKNOWN); // a lexicon of another text
      } else if (node !== WORD_LEXICON_ROOT) {
        let index = indexOf.get(node);
        if (index === undefined) {
          index = FIRST_WORD + indexOf.size;
          indexOf.set(node, index);
        }
        words.push(index);
      }
      node = WORD_LEXICON_ROOT;
    }
    if (words.length > 0) lines.push(words);
  }
  const base = FIRST_WORD + indexOf.size;
  // Keys of the longest n-grams (history × base + word) must stay exact doubles.
  const maxOrder = Math.floor(53 / Math.log2(base));
  if (!Number.isInteger(order) || order < 1 || order > maxOrder) {
    throw new InvalidArgumentError(`word LM order must be an integer in 1…${maxOrder}, got ${order}`);
  }
  const alphabet = { order, base, start: START, end: END };
  const counts = kneserNeyCounts(lines, alphabet);
  // Per length: each history's total and distinct followers, and the discount.
  const histories = counts.map((byKey) => {
    const byHistory = new Map<number, { total: number; types: number }>();
    for (const [key, count] of byKey) {
      const history = Math.floor(key / base);
      const entry = byHistory.get(history);
      if (entry === undefined) byHistory.set(history, { total: count, types: 1 });
      else {
        entry.total += count;
        entry.types++;
      }
    }
    return byHistory;
  });
  const discounts = counts.map(kneserNeyDiscount);
  // The uniform floor: every word but the start padding, which is never predicted.
  const uniform = 1 / (base - 1);

  /** P(word | the last length-1 words of `state`), interpolated down to the uniform distribution. */
  const probability = (length: number, state: number, word: number): number => {
    if (length === 0) return uniform;
    const history = state % base ** (length - 1);
    const lower = probability(length - 1, history, word);
    const entry = histories[length - 1].get(history);
    if (entry === undefined) return lower;
    const discount = discounts[length - 1];
    const seen = counts[length - 1].get(history * base + word) ?? 0;
    return (Math.max(seen - discount, 0) + discount * entry.types * lower) / entry.total;
  };
  const cache = new Map<number, number>();
  const logProbOf = (state: number, word: number): number => {
    const key = state * base + word;
    const hit = cache.get(key);
    if (hit !== undefined) return hit;
    const logProb = Math.log(probability(order, state, word));
    if (cache.size >= CACHE_LIMIT) cache.clear();
    cache.set(key, logProb);
    return logProb;
  };
  const wordOf = (node: number) => (node === NOT_A_WORD ? UNKNOWN : (indexOf.get(node) ?? UNKNOWN));
  return {
    order,
    start: paddedHistory(alphabet),
    logProb: (state, node) => logProbOf(state, wordOf(node)),
    endLogProb: (state) => logProbOf(state, END),
    next: (state, node) => nextHistory(alphabet, state, wordOf(node)),
  };
}
