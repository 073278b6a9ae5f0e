import { readFileSync } from 'node:fs';
import { InvalidArgumentError } from '@specstream/core';
import { describe, expect, it } from 'vitest';
import { shippedModel } from '../../../test-support/shipped-models.js';
import {
  CHAR_LM_DEFAULT_ORDER,
  CHAR_LM_END,
  type CharNgramLm,
  charLmSentenceLogProb,
  loadCharNgramLm,
  trainCharNgramLm,
} from '../src/speech/char-ngram-lm.js';
import { speechTranscript } from '../src/speech/normalize-text.js';
import { WORD_LM_DEFAULT_ORDER } from '../src/speech/word-ngram-lm.js';

const RECOGNIZER = `${shippedModel('specstream-speech-recognizer')}/`;
const SHIPPED_VOCABULARY = JSON.parse(readFileSync(`${RECOGNIZER}config.json`, 'utf8'))
  .vocabulary as string[];
const SHIPPED_TEXT = `${RECOGNIZER}lm-text.txt`;

/** A toy recognizer's labels: blank, space, a, b (the LM reads id 0 as the end of sentence). */
const TOY = ['', ' ', 'a', 'b'];
const [END, SPACE, A, B] = [CHAR_LM_END, 1, 2, 3];

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** The state after `labels` from the sentence start. */
function stateAfter(lm: CharNgramLm, labels: number[]): number {
  return labels.reduce((state, label) => lm.next(state, label), lm.start);
}

const probability = (lm: CharNgramLm, history: number[], next: number) =>
  Math.exp(lm.logProbs(stateAfter(lm, history))[next]);

function expectNormalised(lm: CharNgramLm, state: number): void {
  const logs = lm.logProbs(state);
  expect(logs.length).toBe(lm.vocabulary.length);
  expect(logs.every(Number.isFinite)).toBe(true);
  const total = logs.reduce((sum, log) => sum + Math.exp(log), 0);
  expect(total).toBeCloseTo(1, 12);
}

describe('character n-gram LM (interpolated Kneser-Ney)', () => {
  it('unigrams: raw counts, discount n1/(n1+2·n2), the rest spread uniformly', () => {
    // Corpus "ab", "b": a 1, b 2, end 2 → D = 1/(1+2·2) = 0.2, 5 in all, 3 seen.
    const lm = trainCharNgramLm(['ab', 'b'], TOY, { order: 1 });
    const spread = (0.2 * 3) / 5 / 4;
    expect(probability(lm, [], A)).toBeCloseTo(0.8 / 5 + spread, 12);
    expect(probability(lm, [], B)).toBeCloseTo(1.8 / 5 + spread, 12);
    expect(probability(lm, [], END)).toBeCloseTo(1.8 / 5 + spread, 12);
    expect(probability(lm, [], SPACE)).toBeCloseTo(spread, 12);
    expect(probability(lm, [A, B, A], B)).toBe(probability(lm, [], B));
  });

  it('bigrams: raw counts on top, continuation counts below, the sentence start kept apart', () => {
    // Corpus "ab", "b". Bigrams: <s>a 1, ab 1, b</s> 2, <s>b 1 → D2 = 3/(3+2·1) = 0.6.
    // Unigram continuation counts (distinct left neighbours): a 1, b 2 (a, <s>), end 1 (b)
    // → D1 = 2/(2+2·1) = 0.5, 4 in all, 3 seen.
    const lm = trainCharNgramLm(['ab', 'b'], TOY, { order: 2 });
    const spread = (0.5 * 3) / 4 / 4;
    const unigram = {
      [A]: 0.5 / 4 + spread,
      [B]: 1.5 / 4 + spread,
      [END]: 0.5 / 4 + spread,
      [SPACE]: spread,
    };
    expect(probability(lm, [A], B)).toBeCloseTo(0.4 + 0.6 * unigram[B], 12);
    expect(probability(lm, [A], A)).toBeCloseTo(0.6 * unigram[A], 12);
    expect(probability(lm, [], A)).toBeCloseTo(0.4 / 2 + ((0.6 * 2) / 2) * unigram[A], 12);
    expect(probability(lm, [B], END)).toBeCloseTo(1.4 / 2 + ((0.6 * 1) / 2) * unigram[END], 12);
    // A history never seen backs off to the unigrams entirely.
    expect(probability(lm, [A, SPACE], B)).toBeCloseTo(unigram[B], 12);
  });

  it('normalises lines: lowercase, other characters break words, spaces collapse and trim', () => {
    const clean = trainCharNgramLm(['ab b', 'ba'], TOY, { order: 3 });
    const messy = trainCharNgramLm(['  AB,\tb! ', '', 'BA'], TOY, { order: 3 });
    for (const history of [[], [A], [A, B], [A, B, SPACE], [B]]) {
      expect(messy.logProbs(stateAfter(messy, history))).toEqual(clean.logProbs(stateAfter(clean, history)));
    }
  });

  it('the probabilities of every next label and the end sum to 1, after any history', () => {
    const toy = trainCharNgramLm(['ab ba', 'abba', 'b', 'a b a b'], TOY, { order: 4 });
    const random = seeded(7);
    for (let i = 0; i < 200; i++) {
      const history = Array.from({ length: Math.floor(random() * 6) }, () => 1 + Math.floor(random() * 3));
      expectNormalised(toy, stateAfter(toy, history));
    }
  });

  it('the shipped text trains the default order; normalised on seen and unseen histories', async () => {
    const lm = await loadCharNgramLm(SHIPPED_TEXT, SHIPPED_VOCABULARY);
    expect(lm.order).toBe(CHAR_LM_DEFAULT_ORDER);
    const random = seeded(3);
    const lines = readFileSync(SHIPPED_TEXT, 'utf8').split('\n');
    const ids = (text: string) => [...text].map((c) => SHIPPED_VOCABULARY.indexOf(c));
    for (let i = 0; i < 100; i++) {
      const line = lines[Math.floor(random() * lines.length)];
      expectNormalised(lm, stateAfter(lm, ids(line.slice(0, Math.floor(random() * line.length)))));
      const noise = Array.from({ length: 8 }, () => 1 + Math.floor(random() * 28));
      expectNormalised(lm, stateAfter(lm, noise));
    }
    // The point of it: the spelling the model got wrong is far less likely than the right one.
    expect(charLmSentenceLogProb(lm, 'in addition to environment variables')).toBeGreaterThan(
      charLmSentenceLogProb(lm, 'in addition to invironment variables') + 3,
    );
  });

  it("the shipped text holds none of the held-out sentences, and only the recognizer's letters", () => {
    const lines = readFileSync(SHIPPED_TEXT, 'utf8').split('\n').slice(0, -1);
    const heldout = JSON.parse(
      readFileSync(shippedModel('speech-heldout-sentences.json'), 'utf8'),
    ) as string[];
    const shipped = new Set(lines);
    const leaked = heldout.map(speechTranscript).filter((t) => shipped.has(t));
    expect(leaked).toEqual([]);
    // Sorted, each line once (tools/speech/text.py --lm-text), in the recognizer's vocabulary.
    expect(shipped.size).toBe(lines.length);
    expect(lines.every((line, i) => i === 0 || lines[i - 1] < line)).toBe(true);
    const letters = new Set(SHIPPED_VOCABULARY.filter((v) => v !== ''));
    expect(lines.every((line) => line !== '' && [...line].every((c) => letters.has(c)))).toBe(true);
  });

  it('trains a word LM beside it, of the default order, unless its word order is 0', () => {
    const lm = trainCharNgramLm(['ab b', 'ba'], TOY, { order: 3 });
    expect(lm.wordLm?.order).toBe(WORD_LM_DEFAULT_ORDER);
    expect(trainCharNgramLm(['ab b', 'ba'], TOY, { order: 3, wordOrder: 2 }).wordLm?.order).toBe(2);
    expect(trainCharNgramLm(['ab b', 'ba'], TOY, { order: 3, wordOrder: 0 }).wordLm).toBeUndefined();
    // Labels without a space have no words, so no word LM either.
    expect(trainCharNgramLm(['ab', 'ba'], ['', 'a', 'b']).wordLm).toBeUndefined();
  });

  it('rejects an order out of range and labels of more than one character', () => {
    expect(() => trainCharNgramLm(['ab'], TOY, { order: 0 })).toThrow(InvalidArgumentError);
    expect(() => trainCharNgramLm(['ab'], TOY, { order: 2.5 })).toThrow(/order must be an integer/);
    expect(() => trainCharNgramLm(['ab'], TOY, { order: 40 })).toThrow(/order must be an integer in 1…/);
    expect(() => trainCharNgramLm(['ab'], ['', 'a', 'bb'])).toThrow(/label 2 is "bb"/);
  });
});
