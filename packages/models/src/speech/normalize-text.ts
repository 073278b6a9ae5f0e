/**
 * The text normaliser of tools/speech/text.py, ported step for step: `normalizeSpeechText` (text.py's normalize) gives the
 * *spoken* form the speech models read (lowercase ASCII words, numbers written out, symbols
 * named, apostrophes inside words kept, the punctuation . , ? ! kept for the pauses it shapes)
 * and `speechTranscript` (text.py's transcript) drops that punctuation. A test compares both with
 * tools/speech/normalization-examples.json, which the Python writes.
 *
 * Where JavaScript's regular expressions differ from Python's `re` on str, the Python meaning
 * is spelled out: `\d` is any Unicode decimal digit (\p{Nd}), `\b` and `\w` count Unicode
 * letters and numbers, `\s` and str.strip() are Python's whitespace, and a character is
 * dropped as "combining" by its canonical combining class, not by its category.
 */

const ONES = [
  'zero',
  'one',
  'two',
  'three',
  'four',
  'five',
  'six',
  'seven',
  'eight',
  'nine',
  'ten',
  'eleven',
  'twelve',
  'thirteen',
  'fourteen',
  'fifteen',
  'sixteen',
  'seventeen',
  'eighteen',
  'nineteen',
];
const TENS = ['', '', 'twenty', 'thirty', 'forty', 'fifty', 'sixty', 'seventy', 'eighty', 'ninety'];
/** In text.py's order: each replacement sees the text the ones before it left. */
const SYMBOLS: ReadonlyArray<readonly [string, string]> = [
  ['&', ' and '],
  ['%', ' percent '],
  ['+', ' plus '],
  ['=', ' equals '],
  ['@', ' at '],
];
/** The punctuation the spoken form keeps. */
export const SPOKEN_PUNCTUATION = '.,?!';

/** Python's str.isspace() characters (JavaScript's \s lacks U+001C–U+001F and U+0085, adds U+FEFF). */
const PY_SPACE = '\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_SPACES = new RegExp(`[${PY_SPACE}]+`, 'gu');
const PY_STRIP = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'gu');

const THOUSANDS_COMMA = /(?<=\p{Nd}),(?=\p{Nd}{3}(?![\p{L}\p{N}_]))/gu;
const DECIMAL_POINT = /(?<=\p{Nd})\.(?=\p{Nd})/gu;
const DIGIT_RUN = /\p{Nd}+/gu;
const INNER_APOSTROPHE = /(?<=[a-z])'(?=[a-z])/g;
const UNSPOKEN = /[^a-z\0.,?!]+/gu;
const PUNCTUATION_RUN = /\s*([.,?!])[\s.,?!]*/g;
const SPACE_RUN = /\s+/g;
const LEADING = /^[ .,?!]+/;

/** The spoken form of `text` (text.py's normalize). */
export function normalizeSpeechText(text: string): string {
  return spokenRun(text).replace(LEADING, '').replace(/ +$/, '');
}

/** The spoken form without its punctuation: what the recogniser is trained to write (text.py's transcript). */
export function speechTranscript(spoken: string): string {
  return spoken
    .replace(/[.,?!]/g, ' ')
    .replace(PY_SPACES, ' ')
    .replace(PY_STRIP, '');
}

/**
 * normalizeSpeechText() before its final strip: every step of text.py's normalize but
 * `strip().lstrip(".,?! ")`. After step 6 the only whitespace left is the ASCII space, so the
 * strip is the removal of leading [ .,?!] and trailing spaces (what normalizeSpeechText does).
 * Exported for the incremental normaliser, which strips only the ends of the whole text.
 */
export function spokenRun(text: string): string {
  let t = dropCombining(text.normalize('NFKD')).toLowerCase();
  t = t.replace(THOUSANDS_COMMA, ''); // 1,000 -> 1000
  t = t.replace(DECIMAL_POINT, ' point ');
  t = t.replace(DIGIT_RUN, (digits) => ` ${numberWords(digits)} `);
  for (const [symbol, words] of SYMBOLS) t = t.replaceAll(symbol, words);
  t = t.replace(INNER_APOSTROPHE, '\0'); // apostrophes inside words survive
  t = t.replace(UNSPOKEN, ' ').replaceAll('\0', "'");
  t = t.replace(PUNCTUATION_RUN, '$1 '); // one mark, then a space
  return t.replace(SPACE_RUN, ' ');
}

/** A run of decimal digits: a cardinal up to 999999 (no leading ASCII zero), else digit by digit. */
function numberWords(digits: string): string {
  const chars = [...digits];
  // text.py compares digits[0] with "0": another script's zero does not count as a leading zero.
  if (chars.length > 6 || (chars.length > 1 && chars[0] === '0')) {
    return chars.map((c) => ONES[digitValue(c)]).join(' ');
  }
  const n = chars.reduce((value, c) => value * 10 + digitValue(c), 0);
  if (n >= 1000) {
    const thousands = [...belowThousand(Math.floor(n / 1000)), 'thousand'];
    return [...thousands, ...(n % 1000 ? belowThousand(n % 1000) : [])].join(' ');
  }
  return belowThousand(n).join(' ');
}

function belowThousand(n: number): string[] {
  const words: string[] = [];
  if (n >= 100) {
    words.push(ONES[Math.floor(n / 100)], 'hundred');
    n %= 100;
    if (n) words.push('and');
  }
  if (n >= 20) {
    words.push(TENS[Math.floor(n / 10)]);
    if (n % 10) words.push(ONES[n % 10]);
  } else if (n || words.length === 0) {
    words.push(ONES[n]);
  }
  return words;
}

const DECIMAL_DIGIT = /^\p{Nd}$/u;

/**
 * The value of a decimal digit of any script (Python's int() reads them all). Unicode encodes
 * every script's digits as a contiguous run from 0 to 9, so the value is the distance from the
 * start of the run, mod 10 (runs of 10 may follow each other).
 */
function digitValue(c: string): number {
  const code = c.codePointAt(0)!;
  if (code < 0x80) return code - 0x30;
  let start = code;
  while (DECIMAL_DIGIT.test(String.fromCodePoint(start - 1))) start--;
  return (code - start) % 10;
}

/** unicodedata.combining(c) != 0: the character is dropped (accents off NFKD's base letters). */
function dropCombining(text: string): string {
  // ASCII has no combining characters: most text takes this path.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the ASCII range is what is meant
  if (/^[\x00-\x7f]*$/.test(text)) return text;
  let out = '';
  for (const c of text) if (!hasCombiningClass(c)) out += c;
  return out;
}

const MARK = /^\p{M}$/u;
const combiningClassCache = new Map<string, boolean>();

/**
 * Whether a character's canonical combining class is non-zero. JavaScript cannot read the class,
 * but NFD reorders adjacent marks by it, so two probes decide: after U+0345 (class 240, the
 * highest) a mark of class 1–239 moves in front of it; before U+0334 (class 1, the lowest) a
 * mark of class 2–240 lets it move in front. A class-0 character moves nothing (it blocks the
 * reordering). Every character of non-zero class is a mark, so only marks are probed.
 */
function hasCombiningClass(c: string): boolean {
  if (!MARK.test(c)) return false;
  let known = combiningClassCache.get(c);
  if (known === undefined) {
    const after = `a\u0345${c}`;
    const before = `a${c}\u0334`;
    known = after.normalize('NFD') !== after || before.normalize('NFD') !== before;
    combiningClassCache.set(c, known);
  }
  return known;
}
