import { readFileSync } from 'node:fs';
import { InvalidArgumentError } from '@specstream/core';
import { describe, expect, it } from 'vitest';
import { shippedModel } from '../../../test-support/shipped-models.js';
import {
  NOT_A_WORD,
  trainWordLexicon,
  WORD_LEXICON_ROOT,
  type WordLexicon,
} from '../src/speech/word-lexicon.js';
import { trainWordNgramLm, WORD_LM_DEFAULT_ORDER, type WordNgramLm } from '../src/speech/word-ngram-lm.js';

/** A toy recognizer's labels: blank, space, a, b, c. */
const TOY = ['', ' ', 'a', 'b', 'c'];
const SENTENCES = ['ab ab', 'ab', 'a bc'];

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** The lexicon node that spells `word` (NOT_A_WORD once no word begins so). */
function nodeOf(lexicon: WordLexicon, word: string): number {
  return [...word].reduce((node, c) => lexicon.next(node, lexicon.vocabulary.indexOf(c)), WORD_LEXICON_ROOT);
}

function stateAfter(lm: WordNgramLm, lexicon: WordLexicon, words: string[]): number {
  return words.reduce((state, word) => lm.next(state, nodeOf(lexicon, word)), lm.start);
}

const probability = (lm: WordNgramLm, lexicon: WordLexicon, history: string[], word: string) =>
  Math.exp(lm.logProb(stateAfter(lm, lexicon, history), nodeOf(lexicon, word)));

/** Σ P over every word of the text, the unknown word and the end of the sentence. */
function total(lm: WordNgramLm, lexicon: WordLexicon, words: Iterable<string>, state: number): number {
  let sum = Math.exp(lm.logProb(state, NOT_A_WORD)) + Math.exp(lm.endLogProb(state));
  for (const word of words) sum += Math.exp(lm.logProb(state, nodeOf(lexicon, word)));
  return sum;
}

describe('word n-gram LM (interpolated Kneser-Ney)', () => {
  const lexicon = trainWordLexicon(SENTENCES, TOY);

  it('unigrams: raw counts, discount n1/(n1+2·n2), the rest spread over words, unknown and end', () => {
    // Tokens: ab 3, end 3, a 1, bc 1 → 8 in all, 4 seen; no count of 2, so D = 0.5.
    // The floor is uniform over ab, a, bc, the unknown word and the end: 1/5.
    const lm = trainWordNgramLm(SENTENCES, lexicon, { order: 1 });
    const spread = (0.5 * 4 * 0.2) / 8;
    expect(probability(lm, lexicon, [], 'ab')).toBeCloseTo(2.5 / 8 + spread, 12);
    expect(probability(lm, lexicon, [], 'a')).toBeCloseTo(0.5 / 8 + spread, 12);
    expect(Math.exp(lm.endLogProb(lm.start))).toBeCloseTo(2.5 / 8 + spread, 12);
    expect(Math.exp(lm.logProb(lm.start, NOT_A_WORD))).toBeCloseTo(spread, 12);
    expect(probability(lm, lexicon, ['a', 'bc'], 'ab')).toBe(probability(lm, lexicon, [], 'ab'));
  });

  it('bigrams: raw counts on top, continuation counts below, the sentence start kept apart', () => {
    // Bigrams: <s> ab 2, ab ab 1, ab </s> 2, <s> a 1, a bc 1, bc </s> 1 → D2 = 4/(4+2·2) = 0.5.
    // Unigram continuation counts (distinct words before): ab 2 (<s>, ab), end 2 (ab, bc), a 1,
    // bc 1 → 6 in all, 4 seen, D1 = 2/(2+2·2) = 1/3; floor 1/5, so the spread is (1/3)·4·(1/5)/6.
    const lm = trainWordNgramLm(SENTENCES, lexicon, { order: 2 });
    const spread = 2 / 45;
    const unigram = {
      ab: 5 / 18 + spread,
      end: 5 / 18 + spread,
      a: 1 / 9 + spread,
      bc: 1 / 9 + spread,
      unknown: spread,
    };
    expect(probability(lm, lexicon, [], 'ab')).toBeCloseTo((1.5 + 0.5 * 2 * unigram.ab) / 3, 12);
    expect(probability(lm, lexicon, [], 'bc')).toBeCloseTo((0.5 * 2 * unigram.bc) / 3, 12);
    const afterAb = stateAfter(lm, lexicon, ['ab']);
    expect(Math.exp(lm.endLogProb(afterAb))).toBeCloseTo((1.5 + 0.5 * 2 * unigram.end) / 3, 12);
    expect(probability(lm, lexicon, ['ab'], 'ab')).toBeCloseTo((0.5 + 0.5 * 2 * unigram.ab) / 3, 12);
    expect(Math.exp(lm.endLogProb(stateAfter(lm, lexicon, ['bc'])))).toBeCloseTo(0.5 + 0.5 * unigram.end, 12);
    // After the unknown word, a history never seen: the unigrams alone.
    const afterUnknown = lm.next(lm.start, NOT_A_WORD);
    expect(Math.exp(lm.logProb(afterUnknown, nodeOf(lexicon, 'a')))).toBeCloseTo(unigram.a, 12);
    expect(Math.exp(lm.logProb(afterUnknown, NOT_A_WORD))).toBeCloseTo(unigram.unknown, 12);
  });

  it('a spelling that only begins words is the unknown word, like one no word begins with', () => {
    const lm = trainWordNgramLm(SENTENCES, lexicon, { order: 2 });
    const b = nodeOf(lexicon, 'b'); // begins "bc", is no word
    expect(b).not.toBe(NOT_A_WORD);
    expect(lm.logProb(lm.start, b)).toBe(lm.logProb(lm.start, NOT_A_WORD));
    expect(lm.next(lm.start, b)).toBe(lm.next(lm.start, NOT_A_WORD));
  });

  it('a word of the text that the lexicon lacks is counted as the unknown word', () => {
    // The lexicon knows "ab" only: "bc" in the LM's text is the unknown word, which now has a count.
    const lm = trainWordNgramLm(['ab bc', 'ab bc'], trainWordLexicon(['ab'], TOY), { order: 2 });
    const small = trainWordLexicon(['ab'], TOY);
    const afterAb = lm.next(lm.start, nodeOf(small, 'ab'));
    expect(Math.exp(lm.logProb(afterAb, NOT_A_WORD))).toBeGreaterThan(0.5);
    expect(lm.next(afterAb, NOT_A_WORD)).toBe(lm.next(afterAb, nodeOf(small, 'b')));
  });

  it('the probabilities of every word, the unknown one and the end sum to 1, after any history', () => {
    const sentences = ['ab ba c', 'a b a b', 'c c ab', 'ba', 'b c a ab ba'];
    const toyLexicon = trainWordLexicon(sentences, TOY);
    const words = new Set(sentences.flatMap((s) => s.split(' ')));
    const vocabulary = [...words, 'cab', 'bb'];
    const random = seeded(5);
    for (const order of [1, 2, 3, 4]) {
      const lm = trainWordNgramLm(sentences, toyLexicon, { order });
      for (let i = 0; i < 50; i++) {
        const history = Array.from(
          { length: Math.floor(random() * 5) },
          () => vocabulary[Math.floor(random() * vocabulary.length)],
        );
        expect(total(lm, toyLexicon, words, stateAfter(lm, toyLexicon, history))).toBeCloseTo(1, 12);
      }
    }
  });

  it('the shipped text: the default order, normalised, and the words it read follow each other', () => {
    const dir = shippedModel('specstream-speech-recognizer');
    const vocabulary = JSON.parse(readFileSync(`${dir}/config.json`, 'utf8')).vocabulary as string[];
    const lines = readFileSync(`${dir}/lm-text.txt`, 'utf8').split('\n');
    const shippedLexicon = trainWordLexicon(lines, vocabulary);
    const lm = trainWordNgramLm(lines, shippedLexicon);
    expect(lm.order).toBe(WORD_LM_DEFAULT_ORDER);
    const words = new Set(lines.flatMap((line) => line.split(' ').filter((w) => w !== '')));
    expect(words.size).toBe(shippedLexicon.size);
    const random = seeded(9);
    for (let i = 0; i < 5; i++) {
      const line = lines[Math.floor(random() * lines.length)].split(' ');
      const state = stateAfter(lm, shippedLexicon, line.slice(0, Math.floor(random() * line.length)));
      expect(total(lm, shippedLexicon, words, state)).toBeCloseTo(1, 9);
    }
    // A word sequence of the text against the same words reordered.
    const logProb = (text: string) => {
      let state = lm.start;
      let sum = 0;
      for (const word of text.split(' ')) {
        sum += lm.logProb(state, nodeOf(shippedLexicon, word));
        state = lm.next(state, nodeOf(shippedLexicon, word));
      }
      return sum + lm.endLogProb(state);
    };
    expect(logProb('the installer has an option')).toBeGreaterThan(
      logProb('option an has installer the') + 5,
    );
  });

  it('rejects an order out of range', () => {
    expect(() => trainWordNgramLm(SENTENCES, lexicon, { order: 0 })).toThrow(InvalidArgumentError);
    expect(() => trainWordNgramLm(SENTENCES, lexicon, { order: 1.5 })).toThrow(/order must be an integer/);
    expect(() => trainWordNgramLm(SENTENCES, lexicon, { order: 40 })).toThrow(
      /order must be an integer in 1…/,
    );
  });
});
