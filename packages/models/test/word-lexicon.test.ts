import { describe, expect, it } from 'vitest';
import { trainCharNgramLm } from '../src/speech/char-ngram-lm.js';
import {
  NOT_A_WORD,
  trainWordLexicon,
  WORD_LEXICON_ROOT,
  type WordLexicon,
} from '../src/speech/word-lexicon.js';

const VOCABULARY = ['', ' ', "'", ...'abcdefghijklmnopqrstuvwxyz'];
const SENTENCES = [
  "The module's name is __main__; it's run as a script.",
  'Use a list, a tuple or a dict (e.g. {"a": 1}).',
  'Python 3.11 added tomllib  and   task groups!',
  '',
];

/** The node a spelling reaches, letter by letter. */
function spell(lexicon: WordLexicon, word: string): number {
  let node = WORD_LEXICON_ROOT;
  for (const character of word) node = lexicon.next(node, VOCABULARY.indexOf(character));
  return node;
}

/** The words as a regular expression splits them: runs of the labels' letters and apostrophes. */
const EXPECTED = new Set(SENTENCES.flatMap((s) => s.toLowerCase().match(/[a-z']+/g) ?? []));

describe('word lexicon', () => {
  const lexicon = trainWordLexicon(SENTENCES, VOCABULARY);

  it('holds exactly the words of the text, split as the character LM splits it', () => {
    expect(lexicon.size).toBe(EXPECTED.size);
    for (const word of EXPECTED) expect(lexicon.isWord(spell(lexicon, word)), word).toBe(true);
    expect(lexicon.space).toBe(VOCABULARY.indexOf(' '));
  });

  it('tells a proper prefix of words from a word, and leaves the words at the first letter no word has', () => {
    expect(EXPECTED.has('modul')).toBe(false);
    const prefix = spell(lexicon, 'modul');
    expect(prefix).not.toBe(NOT_A_WORD);
    expect(lexicon.isWord(prefix)).toBe(false);
    expect(lexicon.isWord(spell(lexicon, "module's"))).toBe(true);
    expect(lexicon.isWord(spell(lexicon, 'module'))).toBe(false);
    expect(spell(lexicon, 'scriptx')).toBe(NOT_A_WORD);
    expect(spell(lexicon, 'qz')).toBe(NOT_A_WORD);
    // Once out, always out until the next space.
    expect(lexicon.next(NOT_A_WORD, VOCABULARY.indexOf('a'))).toBe(NOT_A_WORD);
    expect(lexicon.isWord(NOT_A_WORD)).toBe(false);
    expect(lexicon.isWord(WORD_LEXICON_ROOT)).toBe(false);
  });

  it('is the words of the text a character LM is trained on, when the labels have a space', () => {
    const lm = trainCharNgramLm(SENTENCES, VOCABULARY, { order: 3 });
    expect(lm.words?.size).toBe(EXPECTED.size);
    expect(lm.words?.isWord(spell(lm.words, 'tomllib'))).toBe(true);
    const spaceless = trainCharNgramLm(['abc'], ['', 'a', 'b', 'c'], { order: 2 });
    expect(spaceless.words).toBeUndefined();
  });

  it('needs a space label', () => {
    expect(() => trainWordLexicon(['ab'], ['', 'a', 'b'])).toThrow(/needs a space label/);
  });
});
