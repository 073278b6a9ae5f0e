import { readFile } from 'node:fs/promises';
import { InvalidArgumentError } from '@specstream/core';
import { kneserNeyCounts, kneserNeyDiscount, nextHistory, paddedHistory } from './kneser-ney.js';
import { trainWordLexicon, type WordLexicon } from './word-lexicon.js';
import { trainWordNgramLm, WORD_LM_DEFAULT_ORDER, type WordNgramLm } from './word-ngram-lm.js';

/**
 * A character n-gram language model over a CTC recognizer's labels, for shallow fusion in beam
 * search (ctc-beam.ts). It predicts the same ids as the recognizer's vocabulary, except that id
 * 0 — the CTC blank, which the LM never predicts as a character — stands for the end of the
 * sentence. Smoothing is interpolated Kneser-Ney (one discount per order, from the counts of
 * counts), interpolated at the bottom with the uniform distribution, so every id has a
 * probability > 0 and the probabilities of all ids after any history sum to 1.
 *
 * A history is an integer state: its last order-1 symbols, most recent lowest, in base
 * vocabulary.length + 1, where the extra digit is the sentence start that pads the history of a
 * sentence's first characters.
 */
export interface CharNgramLm {
  readonly order: number;
  /** The recognizer's labels; the LM predicts ids 1… as these characters and 0 as the end of sentence. */
  readonly vocabulary: readonly string[];
  /** The state before a sentence's first character. */
  readonly start: number;
  /** The state after `state` followed by label `label` (1 … vocabulary.length-1). */
  next(state: number, label: number): number;
  /** Natural-log probabilities of every id after `state` ([0]: the end of the sentence); cached: do not modify. */
  logProbs(state: number): Float64Array;
  /** The words of the text it was trained on (trainCharNgramLm sets it), for the beam's out-of-vocabulary penalty. */
  readonly words?: WordLexicon;
  /** A word n-gram LM over those words (trainCharNgramLm sets it unless its wordOrder is 0), for the beam's word LM term. */
  readonly wordLm?: WordNgramLm;
}

/** The end-of-sentence id (the slot of the CTC blank, which the LM never predicts). */
export const CHAR_LM_END = 0;

/**
 * Order 8 against 6 on the shipped recognizer's tuning sentences (bench/speech/tune-beam.ts):
 * 10.6% against 11.6% word error rate in trained voices, 39% against 44% in the held-out voice;
 * the price is training at load (~0.45 s against 0.15 s from the 800 KB text shipped then) and its
 * counts (~170 MB against ~50 MB of heap). From the 1.18 MB text shipped since: ~0.75 s, ~190 MB.
 */
export const CHAR_LM_DEFAULT_ORDER = 8;

export interface CharNgramLmOptions {
  /** Characters per n-gram, the predicted one included (default CHAR_LM_DEFAULT_ORDER, 8). */
  order?: number;
  /** Words per n-gram of the word LM trained beside it (default WORD_LM_DEFAULT_ORDER, 3; 0: none). */
  wordOrder?: number;
}

/** Distributions cached per order before the cache is dropped (a long stream visits new histories forever). */
const CACHE_LIMIT = 65536;

/** A history at one order: how often each symbol followed it (Kneser-Ney counts). */
interface HistoryCounts {
  total: number;
  symbols: number[];
  counts: number[];
}

/** Reads a text file, one sentence per line, and trains the LM on it (see trainCharNgramLm). */
export async function loadCharNgramLm(
  path: string,
  vocabulary: readonly string[],
  options: CharNgramLmOptions = {},
): Promise<CharNgramLm> {
  return trainCharNgramLm((await readFile(path, 'utf8')).split('\n'), vocabulary, options);
}

/**
 * Counts the n-grams of `sentences` (lowercased; a character outside the vocabulary is a word
 * break; runs of spaces collapse; empty lines are skipped) and returns the smoothed model, with
 * the text's words when the labels have a space.
 * `vocabulary` is the recognizer's: index 0 the blank, every other label one character.
 */
export function trainCharNgramLm(
  sentences: Iterable<string>,
  vocabulary: readonly string[],
  options: CharNgramLmOptions = {},
): CharNgramLm {
  const order = options.order ?? CHAR_LM_DEFAULT_ORDER;
  const size = vocabulary.length;
  const base = size + 1;
  // Keys of the longest n-grams (history × base + symbol) must stay exact doubles.
  const maxOrder = Math.floor(53 / Math.log2(base));
  if (!Number.isInteger(order) || order < 1 || order > maxOrder) {
    throw new InvalidArgumentError(`character LM order must be an integer in 1…${maxOrder}, got ${order}`);
  }
  const codes = characterCodes(vocabulary);
  const lines = [...sentences];
  const alphabet = { order, base, start: base - 1, end: CHAR_LM_END };
  const counts = kneserNeyCounts(
    lines.map((line) => sentenceIds(line, codes)),
    alphabet,
  );
  const histories = counts.map((byKey) => historiesOf(byKey, base));
  const discounts = counts.map(kneserNeyDiscount);
  const words = codes.has(' ') ? trainWordLexicon(lines, vocabulary) : undefined;
  const wordOrder = options.wordOrder ?? WORD_LM_DEFAULT_ORDER;
  const wordLm =
    words === undefined || wordOrder === 0 ? undefined : trainWordNgramLm(lines, words, { order: wordOrder });
  return { ...smoothedModel({ order, vocabulary, base, histories, discounts }), words, wordLm };
}

/** Each label's character → its id; labels must be single characters (index 0, the blank, is skipped). */
function characterCodes(vocabulary: readonly string[]): Map<string, number> {
  const codes = new Map<string, number>();
  vocabulary.forEach((label, id) => {
    if (id === 0) return;
    if ([...label].length !== 1) {
      throw new InvalidArgumentError(
        `a character LM needs single-character labels, label ${id} is ${JSON.stringify(label)}`,
      );
    }
    codes.set(label, id);
  });
  return codes;
}

/** A line's label ids: lowercased, other characters as a space (or dropped without one), spaces collapsed and trimmed. */
function sentenceIds(line: string, codes: Map<string, number>): number[] {
  const space = codes.get(' ');
  const ids: number[] = [];
  for (const character of line.toLowerCase()) {
    const id = codes.get(character) ?? space;
    if (id === undefined) continue;
    if (id === space && (ids.length === 0 || ids[ids.length - 1] === space)) continue;
    ids.push(id);
  }
  if (ids.length > 0 && ids[ids.length - 1] === space) ids.pop();
  return ids;
}

function historiesOf(counts: Map<number, number>, base: number): Map<number, HistoryCounts> {
  const histories = new Map<number, HistoryCounts>();
  for (const [key, count] of counts) {
    const history = Math.floor(key / base);
    let entry = histories.get(history);
    if (entry === undefined) {
      entry = { total: 0, symbols: [], counts: [] };
      histories.set(history, entry);
    }
    entry.total += count;
    entry.symbols.push(key % base);
    entry.counts.push(count);
  }
  return histories;
}

interface ModelParts {
  order: number;
  vocabulary: readonly string[];
  base: number;
  /** Per n-gram length k (index k-1): histories of k-1 symbols. */
  histories: Map<number, HistoryCounts>[];
  discounts: number[];
}

function smoothedModel({ order, vocabulary, base, histories, discounts }: ModelParts): CharNgramLm {
  const size = vocabulary.length;
  const uniform = new Float64Array(size).fill(1 / size);
  const cached = histories.map(() => new Map<number, Float64Array>());
  const logCache = new Map<number, Float64Array>();
  const alphabet = { order, base, start: base - 1, end: CHAR_LM_END };

  /** P(· | the last length-1 symbols of `state`), interpolated down to the uniform distribution. */
  const probabilities = (length: number, state: number): Float64Array => {
    if (length === 0) return uniform;
    const history = state % base ** (length - 1);
    const cache = cached[length - 1];
    const hit = cache.get(history);
    if (hit !== undefined) return hit;
    const lower = probabilities(length - 1, history);
    const counts = histories[length - 1].get(history);
    let result = lower;
    if (counts !== undefined) {
      const discount = discounts[length - 1];
      const backoff = (discount * counts.symbols.length) / counts.total;
      result = lower.map((p) => backoff * p);
      counts.symbols.forEach((symbol, i) => {
        result[symbol] += (counts.counts[i] - discount) / counts.total;
      });
    }
    if (cache.size >= CACHE_LIMIT) cache.clear();
    cache.set(history, result);
    return result;
  };

  return {
    order,
    vocabulary,
    start: paddedHistory(alphabet),
    next: (state, label) => nextHistory(alphabet, state, label),
    logProbs(state) {
      const hit = logCache.get(state);
      if (hit !== undefined) return hit;
      const logs = probabilities(order, state).map(Math.log);
      if (logCache.size >= CACHE_LIMIT) logCache.clear();
      logCache.set(state, logs);
      return logs;
    },
  };
}

/** Natural-log probability of a whole sentence (its labels, then the end), as the LM scores it in beam search. */
export function charLmSentenceLogProb(lm: CharNgramLm, text: string): number {
  return charLmLabelsLogProb(lm, sentenceIds(text, characterCodes(lm.vocabulary)));
}

/** Natural-log probability of labels (vocabulary ids) and then the end of the sentence. */
export function charLmLabelsLogProb(lm: CharNgramLm, labels: readonly number[]): number {
  let state = lm.start;
  let total = 0;
  for (const label of labels) {
    total += lm.logProbs(state)[label];
    state = lm.next(state, label);
  }
  return total + lm.logProbs(state)[CHAR_LM_END];
}
