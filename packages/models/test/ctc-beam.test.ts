import { describe, expect, it } from 'vitest';
import { randomArray } from '../../../test-support/random-arrays.js';
import { charLmLabelsLogProb, trainCharNgramLm } from '../src/speech/char-ngram-lm.js';
import { CTC_GREEDY_START, ctcGreedyChunk } from '../src/speech/ctc.js';
import {
  type CtcBeamSettings,
  type CtcBeamState,
  ctcBeamBest,
  ctcBeamChunk,
  ctcBeamFinal,
  ctcBeamLabellings,
  ctcBeamStart,
  startCtcDecoding,
} from '../src/speech/ctc-beam.js';
import { WORD_LEXICON_ROOT } from '../src/speech/word-lexicon.js';

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function logSoftmax(row: Float32Array): number[] {
  const max = Math.max(...row);
  const logSum = max + Math.log(row.reduce((sum, x) => sum + Math.exp(x - max), 0));
  return Array.from(row, (x) => x - logSum);
}

/** Every labelling's probability: all vocab^frames paths enumerated, collapsed, summed. */
function bruteForce(logits: Float32Array, vocab: number): Map<string, number> {
  const frames = logits.length / vocab;
  const rows = Array.from({ length: frames }, (_, f) =>
    logSoftmax(logits.subarray(f * vocab, (f + 1) * vocab)),
  );
  const labellings = new Map<string, number>();
  for (let path = 0; path < vocab ** frames; path++) {
    const labels: number[] = [];
    let logProb = 0;
    let previous = 0;
    for (let f = 0, rest = path; f < frames; f++, rest = Math.floor(rest / vocab)) {
      const label = rest % vocab;
      logProb += rows[f][label];
      if (label !== 0 && label !== previous) labels.push(label);
      previous = label;
    }
    const key = labels.join(',');
    labellings.set(key, (labellings.get(key) ?? 0) + Math.exp(logProb));
  }
  return labellings;
}

function decode(
  settings: CtcBeamSettings,
  logits: Float32Array,
  vocab: number,
  chunks?: number[],
): CtcBeamState {
  let state = ctcBeamStart(settings);
  let at = 0;
  for (const frames of chunks ?? [logits.length / vocab]) {
    state = ctcBeamChunk(state, logits.subarray(at * vocab, (at + frames) * vocab), vocab);
    at += frames;
  }
  expect(state.frames).toBe(logits.length / vocab);
  return state;
}

/** Logits whose best label per frame leads by `margin`: often the blank, often repeated. */
function peakyLogits(frames: number, vocab: number, random: () => number, margin: number): Float32Array {
  const logits = randomArray(frames * vocab, random);
  let label = 0;
  for (let f = 0; f < frames; f++) {
    if (random() < 0.5) label = random() < 0.4 ? 0 : Math.floor(random() * vocab);
    logits[f * vocab + label] += margin;
  }
  return logits;
}

/** A toy recognizer's labels and a small LM on them (the LM reads id 0 as the end of sentence). */
const VOCABULARY = ['', ' ', 'a', 'b', 'c'];
const SENTENCES = ['ab ab', 'ab', 'a bc', 'cab ab', 'b ab a'];
const LM = trainCharNgramLm(SENTENCES, VOCABULARY, { order: 3 });
const TEXT = (labels: readonly number[]) => labels.map((l) => VOCABULARY[l]).join('');
/** The words of a labelling that are not words of the LM's sentences, counted from the text itself. */
const KNOWN = new Set(SENTENCES.flatMap((s) => s.split(' ')));
const OOV_WORDS = (labels: readonly number[]) =>
  TEXT(labels)
    .split(' ')
    .filter((w) => w !== '' && !KNOWN.has(w)).length;
/** log P of a labelling's words and then the end under the LM's word n-gram model, the words found by walking its lexicon. */
function WORD_LM_LOG_PROB(labels: readonly number[]): number {
  const [lexicon, wordLm] = [LM.words!, LM.wordLm!];
  let [state, sum] = [wordLm.start, 0];
  for (const word of TEXT(labels).split(' ')) {
    if (word === '') continue;
    const node = [...word].reduce((n, c) => lexicon.next(n, VOCABULARY.indexOf(c)), WORD_LEXICON_ROOT);
    sum += wordLm.logProb(state, node);
    state = wordLm.next(state, node);
  }
  return sum + wordLm.endLogProb(state);
}

/** Beam settings with the toy LM and every weight given: α, β, γ, δ. */
function fusedSettings(beamWidth: number, [alpha, beta, gamma, delta]: number[]) {
  return { beamWidth, lm: LM, lmWeight: alpha, lengthBonus: beta, oovPenalty: gamma, wordLmWeight: delta };
}

/** What the final labelling maximises, computed from the text: log P_ctc + α·log P_lm(with the end) + β·length − γ·OOV words + δ·log P_words(with the end). */
function fusedScore(
  [alpha, beta, gamma, delta]: number[],
  labels: readonly number[],
  logProb: number,
): number {
  return (
    logProb +
    alpha * charLmLabelsLogProb(LM, labels) +
    beta * labels.length -
    gamma * OOV_WORDS(labels) +
    delta * WORD_LM_LOG_PROB(labels)
  );
}

describe('CTC prefix beam search', () => {
  it.each([
    [1, 3, 4],
    [2, 4, 5],
    [3, 4, 6],
    [4, 3, 6],
    [5, 4, 6],
  ])(
    'without an LM, a wide beam finds the most probable labelling (seed %i, %i labels, %i frames)',
    (seed, vocab, frames) => {
      const random = seeded(seed);
      const logits = randomArray(frames * vocab, random, 2);
      const labellings = bruteForce(logits, vocab);
      const [bestKey, bestProb] = [...labellings].reduce((a, b) => (b[1] > a[1] ? b : a));
      const state = decode({ beamWidth: 10000 }, logits, vocab);
      const final = ctcBeamFinal(state);
      expect(final.labels.join(',')).toBe(bestKey);
      // Every labelling the beam holds has its exact probability: the beam lost no path.
      expect(state.hypotheses.length).toBe(labellings.size);
      const held = new Map(ctcBeamLabellings(state).map((l) => [l.labels.join(','), l.logProb]));
      for (const [key, probability] of labellings)
        expect(held.get(key)).toBeCloseTo(Math.log(probability), 9);
      expect(Math.exp(held.get(bestKey)!)).toBeCloseTo(bestProb, 12);
    },
  );

  it.each([1, 2, 3])('width 1 without an LM is greedy where the best path is clear (seed %i)', (seed) => {
    const random = seeded(seed);
    const vocab = 5;
    const logits = peakyLogits(200, vocab, random, 12);
    const greedy = ctcGreedyChunk(CTC_GREEDY_START, logits, vocab).emitted;
    expect(greedy.labels.length).toBeGreaterThan(20);
    for (const beamWidth of [1, 8]) {
      expect(ctcBeamFinal(decode({ beamWidth }, logits, vocab))).toEqual(greedy);
    }
    const decoding = startCtcDecoding('greedy', vocab);
    decoding.push(logits);
    expect(decoding.finish()).toEqual(greedy);
  });

  it.each([
    ['no LM', { beamWidth: 6 }],
    ['an LM', { beamWidth: 6, lm: LM, lmWeight: 0.8, lengthBonus: 0.5, oovPenalty: 0 }],
    ['an LM and an OOV penalty', { beamWidth: 6, lm: LM, lmWeight: 0.8, lengthBonus: 0.5, oovPenalty: 2 }],
    [
      'an LM, an OOV penalty and the word LM',
      { beamWidth: 6, lm: LM, lmWeight: 0.8, lengthBonus: 0.5, oovPenalty: 2, wordLmWeight: 0.6 },
    ],
  ])('decodes any split of the frames exactly as all at once (%s)', (_, settings: CtcBeamSettings) => {
    const random = seeded(11);
    const vocab = VOCABULARY.length;
    const frames = 90;
    const logits = peakyLogits(frames, vocab, random, 1.5);
    const whole = decode(settings, logits, vocab);
    const final = ctcBeamFinal(whole);
    expect(final.labels.length).toBeGreaterThan(10);
    // Each label is timed after the one before it.
    expect(final.frames.every((frame, i) => i === 0 || frame > final.frames[i - 1])).toBe(true);
    const ones = Array(frames).fill(1);
    for (const chunks of [[1, frames - 1], [7, 0, 30, 1, 52], ones]) {
      const split = decode(settings, logits, vocab, chunks);
      expect(split.hypotheses).toEqual(whole.hypotheses);
      expect(ctcBeamFinal(split)).toEqual(ctcBeamFinal(whole));
      expect(ctcBeamBest(split)).toEqual(ctcBeamBest(whole));
    }
  });

  it('LM weights of 0 (and no length bonus) ignore the LM', () => {
    const vocab = VOCABULARY.length;
    const logits = peakyLogits(60, vocab, seeded(5), 1);
    const plain = decode({ beamWidth: 4 }, logits, vocab);
    const ignored = decode(
      { beamWidth: 4, lm: LM, lmWeight: 0, lengthBonus: 0, oovPenalty: 0, wordLmWeight: 0 },
      logits,
      vocab,
    );
    expect(ctcBeamFinal(ignored)).toEqual(ctcBeamFinal(plain));
    expect(ignored.hypotheses.map((h) => h.score)).toEqual(plain.hypotheses.map((h) => h.score));
  });

  it.each([
    [0, 0, 9],
    [1.5, 0, 9],
    [1.5, 0, 4],
    [6, 0, 2],
    [1.5, 0.5, 4],
    [6, 0.8, 2],
  ])(
    'with an LM, the final labelling maximises log P_ctc + α·log P_lm(with the end) + β·length − γ·OOV words + δ·log P_words (γ %f, δ %f, seed %i)',
    (gamma, delta, seed) => {
      const vocab = VOCABULARY.length;
      const logits = peakyLogits(40, vocab, seeded(seed), 1);
      const weights = [1.5, 0.7, gamma, delta];
      const state = decode(fusedSettings(16, weights), logits, vocab);
      const held = ctcBeamLabellings(state);
      expect(held.length).toBe(16);
      const score = (l: (typeof held)[number]) => fusedScore(weights, l.labels, l.logProb);
      const best = held.reduce((a, b) => (score(b) > score(a) ? b : a));
      expect(ctcBeamFinal(state)).toEqual({ labels: best.labels, frames: best.frames });
      // Before the end of sentence, the beam is ranked by its scores.
      expect(held.map((l) => l.score)).toEqual([...held.map((l) => l.score)].sort((a, b) => b - a));
    },
  );

  it('the LM turns an acoustic near-tie toward what it has read', () => {
    // Four frames: "a", then "b" or "c" nearly alike (c slightly ahead), then blanks.
    const vocab = VOCABULARY.length;
    const row = (values: number[]) => values;
    const logits = Float32Array.from([
      ...row([0, -5, 5, -5, -5]),
      ...row([0, -5, -5, 4.9, 5]),
      ...row([5, -5, -5, -5, -5]),
    ]);
    expect(TEXT(ctcBeamFinal(decode({ beamWidth: 8 }, logits, vocab)).labels)).toBe('ac');
    const fused = decode({ beamWidth: 8, lm: LM, lmWeight: 1, lengthBonus: 0 }, logits, vocab);
    expect(TEXT(ctcBeamFinal(fused).labels)).toBe('ab');
    expect(ctcBeamFinal(fused).frames).toEqual([0, 1]);
  });

  it('the OOV penalty turns a labelling toward the words the LM has read, and prunes a misspelling as it starts', () => {
    // "c" then "a": acoustically "ca" (not a word of the text), or "cab" nearly as likely.
    const vocab = VOCABULARY.length;
    const logits = Float32Array.from([
      ...[0, -5, -5, -5, 5],
      ...[0, -5, 5, -5, -5],
      ...[5, -5, -5, 4.6, -5],
      ...[5, -5, -5, -5, -5],
    ]);
    const plain = { beamWidth: 8, lm: LM, lmWeight: 0, lengthBonus: 0, wordLmWeight: 0 };
    expect(TEXT(ctcBeamFinal(decode({ ...plain, oovPenalty: 0 }, logits, vocab)).labels)).toBe('ca');
    expect(TEXT(ctcBeamFinal(decode({ ...plain, oovPenalty: 2 }, logits, vocab)).labels)).toBe('cab');
    // "cb" leaves the words at its second letter: counted then, not only when it ends.
    const state = decode({ ...plain, beamWidth: 100, oovPenalty: 2 }, logits.subarray(0, 2 * vocab), vocab);
    const held = new Map(ctcBeamLabellings(state).map((l) => [TEXT(l.labels), l]));
    expect(held.get('cb')?.score).toBeCloseTo((held.get('cb')?.logProb ?? Number.NaN) - 2, 9);
    expect(held.get('ca')?.score).toBeCloseTo(held.get('ca')?.logProb ?? Number.NaN, 9);
    expect(held.get('c ')?.score).toBeCloseTo((held.get('c ')?.logProb ?? Number.NaN) - 2, 9);
  });

  it.each([
    [3, 0, 1],
    [3, 0, 2],
    [3, 0, 3],
    [1, 0.8, 1],
    [1, 0.8, 2],
    [1, 0.8, 3],
    [1, 0.8, 4],
  ])(
    'a wide beam finds the best-scoring labelling of all: γ·OOV words and δ·log P_words included (γ %f, δ %f, seed %i)',
    (gamma, delta, seed) => {
      const vocab = VOCABULARY.length;
      const logits = randomArray(6 * vocab, seeded(seed), 2);
      const weights = [0.5, 0.3, gamma, delta];
      const score = (key: string, probability: number) =>
        fusedScore(weights, key === '' ? [] : key.split(',').map(Number), Math.log(probability));
      const all = [...bruteForce(logits, vocab)].map(([key, p]) => ({ key, score: score(key, p) }));
      const best = all.reduce((a, b) => (b.score > a.score ? b : a));
      const state = decode(fusedSettings(100000, weights), logits, vocab);
      expect(ctcBeamFinal(state).labels.join(',')).toBe(best.key);
    },
  );

  it('the word LM turns a near-tie between two known words toward the sequence it has read', () => {
    // "ab " then "ab" or "bc": the LM's text has "ab ab" but never "ab bc"; "bc" slightly ahead.
    const vocab = VOCABULARY.length;
    // Columns: blank, space, a, b, c.
    const logits = Float32Array.from([
      ...[-5, -5, 5, -5, -5],
      ...[-5, -5, -5, 5, -5],
      ...[-5, 5, -5, -5, -5],
      ...[-5, -5, 4.9, 5, -5],
      ...[-5, -5, -5, 5, 5.1],
      ...[5, -5, -5, -5, -5],
    ]);
    const plain = { beamWidth: 16, lm: LM, lmWeight: 0, lengthBonus: 0, oovPenalty: 0 };
    expect(TEXT(ctcBeamFinal(decode({ ...plain, wordLmWeight: 0 }, logits, vocab)).labels)).toBe('ab bc');
    expect(TEXT(ctcBeamFinal(decode({ ...plain, wordLmWeight: 1 }, logits, vocab)).labels)).toBe('ab ab');
  });

  it('rejects a bad word LM weight, and one with an LM that has no word model', () => {
    expect(() => ctcBeamStart({ beamWidth: 2, lm: LM, wordLmWeight: -1 })).toThrow(
      /word LM weight must be finite and >= 0/,
    );
    const wordless = { ...LM, wordLm: undefined };
    expect(() => ctcBeamStart({ beamWidth: 2, lm: wordless, wordLmWeight: 1 })).toThrow(/word n-gram model/);
    expect(ctcBeamStart({ beamWidth: 2, lm: wordless }).settings.wordLmWeight).toBe(0);
  });

  it('rejects a bad OOV penalty, and one with an LM that has no words', () => {
    expect(() => ctcBeamStart({ beamWidth: 2, lm: LM, oovPenalty: -1 })).toThrow(
      /OOV penalty must be finite and >= 0/,
    );
    expect(() => ctcBeamStart({ beamWidth: 2, lm: LM, oovPenalty: Number.NaN })).toThrow(/OOV penalty/);
    const wordless = { ...LM, words: undefined };
    expect(() => ctcBeamStart({ beamWidth: 2, lm: wordless, oovPenalty: 1 })).toThrow(
      /knows the words of its text/,
    );
    expect(ctcBeamStart({ beamWidth: 2, lm: wordless }).settings.oovPenalty).toBe(0);
  });

  it('rejects a bad width and an LM of another vocabulary', () => {
    expect(() => ctcBeamStart({ beamWidth: 0 })).toThrow(/beam width must be a positive integer/);
    const state = ctcBeamStart({ beamWidth: 2, lm: LM });
    expect(() => ctcBeamChunk(state, new Float32Array(6), 6)).toThrow(/the LM has 5 labels/);
  });
});
