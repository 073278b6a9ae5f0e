import type { Tokenizer } from './types.js';

export interface Detokenizer {
  /** Adds one generated id; returns the text it completes (often '', never half a character). */
  push(id: number): string;
  /** Returns whatever is still held back (an unfinished character decodes to U+FFFD) and resets. */
  flush(): string;
}

const REPLACEMENT = '\uFFFD';

// A UTF-8 character has at most 4 bytes and every token carries at least one, so after this
// many held-back tokens the text before the final U+FFFD is settled (earlier U+FFFDs come
// from invalid bytes). Emitting it then keeps the window, and the work per token, bounded
// even when a model emits long runs of invalid bytes or of tokens that decode to nothing.
const MAX_HELD_TOKENS = 8;

/**
 * Turns a stream of ids into text deltas whose concatenation (plus flush) is decode(all ids).
 *
 * Decoding a byte-level token alone is wrong in two ways: it may end inside a multi-byte
 * character (U+FFFD), and decoders such as SentencePiece's treat the first token of a
 * sequence differently. So each push decodes a short window: the tokens that produced the
 * last delta (as context) plus those not yet emitted, and emits the text beyond what the
 * context already accounts for, except a trailing U+FFFD, which an unfinished character
 * produces and which may still turn into that character. The window restarts at every
 * emission, so it never exceeds 2 * MAX_HELD_TOKENS ids however long the stream runs.
 */
export function createDetokenizer(tokenizer: Pick<Tokenizer, 'decode'>): Detokenizer {
  let window: number[] = [];
  let contextLength = 0;
  // Text of window[0, contextLength) that has been emitted, in this window's own decoding.
  let contextText = '';

  return {
    push(id: number): string {
      window.push(id);
      const text = tokenizer.decode(window);
      const unfinished = text.endsWith(REPLACEMENT) ? 1 : 0;
      const settled = text.length - unfinished;
      const mustEmit = window.length - contextLength >= MAX_HELD_TOKENS;
      if (!mustEmit && (unfinished === 1 || settled <= contextText.length)) return '';
      const delta = text.slice(contextText.length, settled);
      window = window.slice(contextLength);
      contextLength = window.length;
      const windowText = tokenizer.decode(window);
      contextText = unfinished && windowText.endsWith(REPLACEMENT) ? windowText.slice(0, -1) : windowText;
      return delta;
    },
    flush(): string {
      const delta = tokenizer.decode(window).slice(contextText.length);
      window = [];
      contextLength = 0;
      contextText = '';
      return delta;
    },
  };
}
