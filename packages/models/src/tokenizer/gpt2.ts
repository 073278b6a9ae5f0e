import ranks from 'gpt-tokenizer/bpeRanks/r50k_base';
import { ALL_SPECIAL_TOKENS, encode, vocabularySize } from 'gpt-tokenizer/encoding/r50k_base';
import { type DecodeOptions, type EncodeOptions, type Tokenizer, TokenizerError } from './types.js';

export const GPT2_VOCAB_SIZE = 50257;
export const GPT2_END_OF_TEXT = 50256;
const END_OF_TEXT = '<|endoftext|>';

/**
 * GPT-2's tokenizer (tiktoken's r50k_base) for model folders that ship no tokenizer.json.
 *
 * Encoding uses gpt-tokenizer. Decoding does not: its decode() keeps the bytes of an
 * unfinished character in a TextDecoder shared by all calls, so decoding a prefix that ends
 * mid-character silently drops them and then leaks them into the next, unrelated decode.
 * The streaming detokenizer depends on decode(prefix) being a pure function, so we join the
 * tokens' bytes from the same rank table and decode them with HF's U+FFFD convention.
 */
export function createGpt2Tokenizer(): Tokenizer {
  if (vocabularySize !== GPT2_VOCAB_SIZE) {
    throw new TokenizerError(
      `gpt-tokenizer's r50k_base has ${vocabularySize} tokens, expected ${GPT2_VOCAB_SIZE}`,
    );
  }
  return {
    vocabSize: GPT2_VOCAB_SIZE,
    eosTokenId: GPT2_END_OF_TEXT,
    // As in HF's GPT-2 tokenizer, "<|endoftext|>" written in the text is the special token.
    encode: (text: string, _options?: EncodeOptions) => encode(text, { allowedSpecial: ALL_SPECIAL_TOKENS }),
    decode: (ids: readonly number[], options: DecodeOptions = {}) => decodeGpt2(ids, options),
    idToToken: (id) => (isGpt2Id(id) ? byteLevelToken(id) : undefined),
  };
}

function isGpt2Id(id: number): boolean {
  return Number.isInteger(id) && id >= 0 && id < GPT2_VOCAB_SIZE;
}

const utf8 = new TextEncoder();
const tokenBytesCache: Uint8Array[] = [];

function tokenBytes(id: number): Uint8Array {
  if (!isGpt2Id(id)) throw new TokenizerError(`GPT-2 token id ${id} is outside 0..${GPT2_VOCAB_SIZE - 1}`);
  let bytes = tokenBytesCache[id];
  if (!bytes) {
    const entry = id === GPT2_END_OF_TEXT ? END_OF_TEXT : ranks[id];
    if (entry === undefined) throw new TokenizerError(`GPT-2 token id ${id} has no bytes in r50k_base`);
    bytes = typeof entry === 'string' ? utf8.encode(entry) : Uint8Array.from(entry);
    tokenBytesCache[id] = bytes;
  }
  return bytes;
}

function decodeGpt2(ids: readonly number[], options: DecodeOptions): string {
  const kept = options.skipSpecialTokens ? ids.filter((id) => id !== GPT2_END_OF_TEXT) : ids;
  const parts = kept.map(tokenBytes);
  const joined = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    joined.set(part, offset);
    offset += part.length;
  }
  return new TextDecoder().decode(joined);
}

/** The token as HF's GPT-2 vocab.json spells it: bytes mapped to printable characters ("Ġworld"). */
function byteLevelToken(id: number): string {
  if (id === GPT2_END_OF_TEXT) return END_OF_TEXT;
  return String.fromCodePoint(...Array.from(tokenBytes(id), (byte) => byteToChar()[byte]));
}

let byteToCharTable: number[] | undefined;

/** GPT-2 keeps printable Latin-1 bytes as themselves and moves the others to U+0100 onwards, in order. */
function byteToChar(): number[] {
  if (!byteToCharTable) {
    const printable = (byte: number) =>
      (byte >= 0x21 && byte <= 0x7e) || (byte >= 0xa1 && byte <= 0xff && byte !== 0xad);
    let next = 0x100;
    byteToCharTable = Array.from({ length: 256 }, (_, byte) => (printable(byte) ? byte : next++));
  }
  return byteToCharTable;
}
