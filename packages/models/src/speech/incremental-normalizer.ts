import { spokenRun } from './normalize-text.js';

/**
 * normalizeSpeechText() over text that arrives in pieces (an LM's output as it is generated): each push
 * returns the spoken text that no later piece can change, and the pieces returned, joined,
 * equal normalizeSpeechText(all the text) exactly.
 *
 * Text is settled up to the last place where ASCII whitespace is followed by an ASCII letter.
 * Every step of the normaliser is local around such a cut, so spokenRun(A + B) =
 * spokenRun(A) + spokenRun(B): NFKD and the combining-mark removal work per character here
 * (the letter is a starter), the digit, comma and point rules need digits on both sides, the
 * apostrophe rule letters on both sides, and the runs of spaces and punctuation end at the
 * letter. What is left is the normaliser's final strip: the leading [ .,?!] of the whole text (stripped
 * from the first pieces until a letter is out) and its trailing spaces (stripped at the end;
 * a settled piece ends with a space that the letter after it keeps). A number or a word split
 * across pieces is therefore never settled half-way.
 */
export interface IncrementalNormalizer {
  /** Adds raw text; returns the spoken text it settles (often ''). */
  push(text: string): string;
  /** No more text: the spoken rest. The normaliser starts over after it. */
  end(): string;
}

const LEADING = /^[ .,?!]+/;
const TRAILING = / +$/;

export function createIncrementalNormalizer(): IncrementalNormalizer {
  let pending = '';
  let started = false;

  const spoken = (raw: string, last: boolean): string => {
    let piece = spokenRun(raw);
    if (!started) {
      piece = piece.replace(LEADING, '');
      started = piece !== '';
    }
    return last ? piece.replace(TRAILING, '') : piece;
  };

  return {
    push(text) {
      pending += text;
      const cut = lastCut(pending);
      if (cut <= 0) return '';
      const settled = pending.slice(0, cut);
      pending = pending.slice(cut);
      return spoken(settled, false);
    },
    end() {
      const rest = spoken(pending, true);
      pending = '';
      started = false;
      return rest;
    },
  };
}

/** The last index whose character is an ASCII letter after ASCII whitespace; -1 if none. */
function lastCut(text: string): number {
  for (let i = text.length - 1; i > 0; i--) {
    if (isAsciiLetter(text.charCodeAt(i)) && isAsciiSpace(text.charCodeAt(i - 1))) return i;
  }
  return -1;
}

function isAsciiLetter(code: number): boolean {
  return (code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a);
}

/** Python's ASCII whitespace: tab, newline, vertical tab, form feed, carriage return, 0x1c–0x1f, space. */
function isAsciiSpace(code: number): boolean {
  return (code >= 0x09 && code <= 0x0d) || (code >= 0x1c && code <= 0x20);
}
