import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createIncrementalNormalizer } from '../src/speech/incremental-normalizer.js';
import { normalizeSpeechText, speechTranscript } from '../src/speech/normalize-text.js';

/** Written by `python3 tools/speech/text.py --examples tools/speech/normalization-examples.json`. */
const EXAMPLES_FILE = fileURLToPath(
  new URL('../../../tools/speech/normalization-examples.json', import.meta.url),
);
const examples = JSON.parse(readFileSync(EXAMPLES_FILE, 'utf8')) as Array<{
  input: string;
  spoken: string;
  transcript: string;
}>;

/** Seeded xorshift in [0, 1). */
function random(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

/** The text in pieces (cut at UTF-16 units: a surrogate pair may be split too), through one normaliser. */
function normalizeInPieces(text: string, cuts: number[]): string[] {
  const normalizer = createIncrementalNormalizer();
  const pieces: string[] = [];
  let at = 0;
  for (const cut of [...cuts, text.length]) {
    pieces.push(normalizer.push(text.slice(at, cut)));
    at = cut;
  }
  pieces.push(normalizer.end());
  return pieces;
}

function randomCuts(text: string, next: () => number): number[] {
  const cuts: number[] = [];
  for (let at = Math.floor(next() * 6); at < text.length; at += 1 + Math.floor(next() * 8)) cuts.push(at);
  return cuts;
}

describe('normalizeSpeechText and speechTranscript (tools/speech/text.py)', () => {
  it.each(examples.map((e) => [e.input, e] as const))('%j', (_, example) => {
    expect(normalizeSpeechText(example.input)).toBe(example.spoken);
    expect(speechTranscript(example.spoken)).toBe(example.transcript);
  });
});

describe('createIncrementalNormalizer', () => {
  const texts = [
    ...examples.map((e) => e.input),
    // Several examples in one text: cuts between sentences, numbers and punctuation runs.
    examples.map((e) => e.input).join(' '),
    examples.map((e) => e.input).join(''),
  ];

  it('every cut in two gives pieces that join to the normalised whole', () => {
    for (const text of texts.slice(0, examples.length)) {
      for (let cut = 0; cut <= text.length; cut++) {
        expect(normalizeInPieces(text, [cut]).join(''), `${JSON.stringify(text)} cut at ${cut}`).toBe(
          normalizeSpeechText(text),
        );
      }
    }
  });

  it('random splits give pieces that join to the normalised whole', () => {
    const next = random(22);
    for (const text of texts) {
      for (let trial = 0; trial < 20; trial++) {
        const cuts = randomCuts(text, next);
        expect(normalizeInPieces(text, cuts).join(''), `${JSON.stringify(text)} cut at ${cuts}`).toBe(
          normalizeSpeechText(text),
        );
      }
    }
  });

  it('settles text at word boundaries only: a number or word split across pieces waits for its end', () => {
    const normalizer = createIncrementalNormalizer();
    expect(normalizer.push('It costs 1,2')).toBe('it '); // "costs" may yet go on
    expect(normalizer.push('34')).toBe('');
    expect(normalizer.push(' dol')).toBe('costs one thousand two hundred and thirty four ');
    expect(normalizer.push('lars.')).toBe('');
    expect(normalizer.end()).toBe('dollars.');
    // It starts over after end().
    expect(normalizer.push('... Again ')).toBe('');
    expect(normalizer.push('and')).toBe('again ');
    expect(normalizer.end()).toBe('and');
  });

  it('settles a long text as it goes, not only at the end', () => {
    const text = examples.map((e) => e.input).join(' ');
    const pieces = normalizeInPieces(text, randomCuts(text, random(5)));
    const settledBeforeEnd = pieces.slice(0, -1).join('').length;
    expect(settledBeforeEnd).toBeGreaterThan(normalizeSpeechText(text).length * 0.8);
  });
});
