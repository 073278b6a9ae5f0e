import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDetokenizer, loadTokenizer, type Tokenizer, TokenizerError } from '../src/tokenizer/index.js';
import { causalFixture, fixturePath, tokenizerFixture } from './fixtures.js';

const TOKENIZER_DIR = fixturePath('tokenizer/');
/** Size and special tokens as tokenizer.json itself lists them. */
const { vocabSize: VOCAB, specialTokens } = tokenizerFixture();
const ENDOFTEXT = specialTokens.get('<|endoftext|>')!;
const REPLACEMENT = '\uFFFD';

interface ReferenceEntry {
  text: string;
  ids: number[];
  decoded: string;
}
const reference: ReferenceEntry[] = JSON.parse(readFileSync(fixturePath('tokenizer/reference.json'), 'utf8'));

/** Feeds ids one by one; returns every delta and the flushed remainder. */
function stream(tokenizer: Pick<Tokenizer, 'decode'>, ids: readonly number[]) {
  const detokenizer = createDetokenizer(tokenizer);
  const deltas = ids.map((id) => detokenizer.push(id));
  return { deltas, rest: detokenizer.flush() };
}

const isHighSurrogate = (code: number) => code >= 0xd800 && code <= 0xdbff;
const isLowSurrogate = (code: number) => code >= 0xdc00 && code <= 0xdfff;

/** Streams `ids` (through `streamVia`, e.g. a measuring wrapper) and checks the deltas against decode(ids). */
function expectCleanStream(tokenizer: Tokenizer, ids: readonly number[], streamVia: Tokenizer = tokenizer) {
  const full = tokenizer.decode(ids);
  const { deltas, rest } = stream(streamVia, ids);
  expect(deltas.join('') + rest).toBe(full);
  for (const delta of [...deltas, rest]) {
    if (!full.includes(REPLACEMENT)) expect(delta).not.toContain(REPLACEMENT);
    if (delta.length === 0) continue;
    expect(isLowSurrogate(delta.charCodeAt(0))).toBe(false);
    expect(isHighSurrogate(delta.charCodeAt(delta.length - 1))).toBe(false);
  }
  return deltas;
}

/** Counts the ids decode() is asked for at once, to show the detokenizer's work stays bounded. */
function measuring(tokenizer: Tokenizer) {
  const stats = { longest: 0 };
  const wrapped: Tokenizer = {
    ...tokenizer,
    decode: (ids, options) => {
      stats.longest = Math.max(stats.longest, ids.length);
      return tokenizer.decode(ids, options);
    },
  };
  return { wrapped, stats };
}

let tokenizer: Tokenizer;
beforeAll(async () => {
  tokenizer = await loadTokenizer(TOKENIZER_DIR);
});

describe('tokenizer.json through @huggingface/tokenizers', () => {
  it('encodes every reference text to the ids transformers produced, and decodes them back', () => {
    expect(reference.length).toBeGreaterThan(0);
    for (const { text, ids, decoded } of reference) {
      expect(tokenizer.encode(text)).toEqual(ids);
      expect(tokenizer.decode(ids)).toBe(decoded);
    }
  });

  it('reports the vocabulary, the end-of-text token and token strings', () => {
    expect(ENDOFTEXT).toBeDefined();
    expect(tokenizer.vocabSize).toBe(VOCAB);
    expect(tokenizer.eosTokenId).toBe(ENDOFTEXT);
    expect(tokenizer.idToToken?.(ENDOFTEXT)).toBe('<|endoftext|>');
    expect(tokenizer.decode([40, ENDOFTEXT], { skipSpecialTokens: true })).toBe(tokenizer.decode([40]));
  });

  it('does not clean up spaces before punctuation (transformers >= 4.45 default), so decoding is lossless', () => {
    const text = 'a , b . c ?';
    expect(tokenizer.decode(tokenizer.encode(text))).toBe(text);
  });

  it('rejects ids outside the vocabulary', () => {
    expect(() => tokenizer.decode([1, VOCAB])).toThrow(TokenizerError);
    expect(() => tokenizer.decode([1, VOCAB])).toThrow(`token id ${VOCAB} is not in the vocabulary`);
  });
});

describe('streaming detokenizer', () => {
  it('streams every reference entry to exactly its decoded text', () => {
    for (const { ids, decoded } of reference) {
      expectCleanStream(tokenizer, ids);
      const { deltas, rest } = stream(tokenizer, ids);
      expect(deltas.join('') + rest).toBe(decoded);
    }
  });

  it('streams multi-byte text (accents, dash, CJK, emoji) without U+FFFD or split surrogates', () => {
    for (const text of ['naïve café — 日本語 🎉', '🎉🎉 x🚀y', 'é', '👩‍👩‍👧 family', 'ümlaut\nüber\tñ']) {
      const ids = tokenizer.encode(text);
      expect(tokenizer.decode(ids)).toBe(text);
      expect(expectCleanStream(tokenizer, ids).join('')).toBe(text);
    }
  });

  it('holds back a character whose two bytes come in two tokens (the hard case)', () => {
    const ids = tokenizer.encode('naïve');
    // Precondition: some prefix of the ids ends halfway through 'ï' (C3 AF), so decoding it yields U+FFFD.
    const split = ids.findIndex((_, i) => tokenizer.decode(ids.slice(0, i + 1)).endsWith(REPLACEMENT));
    expect(split).toBeGreaterThanOrEqual(0);
    expect(tokenizer.decode(ids.slice(0, split + 1))).toBe(`na${REPLACEMENT}`);
    expect(tokenizer.decode(ids.slice(0, split + 2))).toBe('naï');
    expect(tokenizer.decode(ids)).not.toContain(REPLACEMENT);

    const { deltas, rest } = stream(tokenizer, ids);
    expect(deltas[split]).toBe('');
    expect(deltas[split + 1]).toBe('ï');
    expect(deltas.join('') + rest).toBe('naïve');
  });

  it('handles characters spread over three and four tokens', () => {
    for (const char of ['東', '🚀']) {
      const ids = tokenizer.encode(char);
      expect(ids.length).toBe(new TextEncoder().encode(char).length); // one token per byte
      const { deltas, rest } = stream(tokenizer, ids);
      expect(deltas).toEqual([...Array(ids.length - 1).fill(''), char]);
      expect(rest).toBe('');
    }
  });

  it('decodes a window of bounded size however long the stream is', () => {
    const text = 'naïve café — 日本語 🎉. '.repeat(40);
    const ids = tokenizer.encode(text);
    expect(ids.length).toBeGreaterThan(500);
    const { wrapped, stats } = measuring(tokenizer);
    expect(expectCleanStream(tokenizer, ids, wrapped).join('')).toBe(text);
    expect(stats.longest).toBeLessThanOrEqual(16);
  });

  it('stays exact and bounded through runs of invalid bytes, even when one precedes a split character', () => {
    const byteToken = (char: string) => {
      const id = Array.from({ length: tokenizer.vocabSize }, (_, i) => i).find(
        (i) => tokenizer.idToToken?.(i) === char,
      );
      expect(id).toBeDefined();
      return id!;
    };
    // Byte-level BPE spells byte 0x80 as U+0122 'Ģ', 0xC3 as 'Ã' and 0xA9 as '©'.
    const continuation = byteToken('\u0122');
    const [lead, trail] = [byteToken('Ã'), byteToken('©')];
    expect(tokenizer.decode([lead, trail])).toBe('é');
    const cases = [
      Array(20).fill(continuation),
      [...Array(7).fill(continuation), lead, trail, ...tokenizer.encode(' ok')],
      [...Array(15).fill(continuation), lead, trail],
      [...tokenizer.encode('x'), lead, ...Array(12).fill(continuation), lead],
    ];
    for (const ids of cases) {
      const { wrapped, stats } = measuring(tokenizer);
      expectCleanStream(tokenizer, ids, wrapped);
      expect(stats.longest).toBeLessThanOrEqual(16);
    }
  });

  it('can be reused after flush', () => {
    const detokenizer = createDetokenizer(tokenizer);
    const first = tokenizer.encode('héllo');
    const second = tokenizer.encode('wörld');
    const run = (ids: number[]) => ids.map((id) => detokenizer.push(id)).join('') + detokenizer.flush();
    expect(run(first)).toBe('héllo');
    expect(run(second)).toBe('wörld');
    expect(detokenizer.flush()).toBe('');
  });
});

describe('GPT-2 fallback through gpt-tokenizer', () => {
  let tmp: string;
  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'specstream-tokenizer-'));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  async function gpt2Folder(name: string, config: object) {
    const dir = join(tmp, name);
    await mkdir(dir);
    await writeFile(join(dir, 'config.json'), JSON.stringify(config));
    return dir;
  }

  it('encodes and decodes with GPT-2 ids when a gpt2 folder has no tokenizer.json', async () => {
    const gpt2 = await loadTokenizer(await gpt2Folder('gpt2', { model_type: 'gpt2', vocab_size: 50257 }));
    // Well-known GPT-2 ids: "Hello" 15496, " world" 995, "<|endoftext|>" 50256.
    expect(gpt2.encode('Hello world')).toEqual([15496, 995]);
    expect(gpt2.decode([15496, 995])).toBe('Hello world');
    expect(gpt2.encode('<|endoftext|>')).toEqual([50256]);
    expect(gpt2.vocabSize).toBe(50257);
    expect(gpt2.eosTokenId).toBe(50256);
    expect(gpt2.idToToken?.(995)).toBe('Ġworld');
    expect(gpt2.decode([15496, 50256], { skipSpecialTokens: true })).toBe('Hello');
  });

  it('decodes prefixes that end mid-character as U+FFFD, independently of earlier calls', async () => {
    const gpt2 = await loadTokenizer(await gpt2Folder('gpt2-pure', { model_type: 'gpt2' }));
    const ids = gpt2.encode(' 日本語 🎉');
    const split = ids.findIndex((_, i) => gpt2.decode(ids.slice(0, i + 1)).endsWith(REPLACEMENT));
    expect(split).toBeGreaterThanOrEqual(0);
    // gpt-tokenizer's own decode would carry the unfinished bytes into this unrelated call.
    expect(gpt2.decode(gpt2.encode('Hello'))).toBe('Hello');
    expect(expectCleanStream(gpt2, ids).join('')).toBe(' 日本語 🎉');
  });

  it('refuses the fallback for a gpt2 model whose vocabulary is smaller than GPT-2s', async () => {
    const gpt2Fixture = fixturePath('gpt2/');
    const { vocabSize } = causalFixture('gpt2');
    expect(vocabSize).toBeLessThan(50257);
    await expect(loadTokenizer(gpt2Fixture)).rejects.toThrow(
      `config.json has vocab_size ${vocabSize}, too small for GPT-2's 50257`,
    );
  });

  it('explains a folder with neither tokenizer.json nor GPT-2 files', async () => {
    const dir = await gpt2Folder('llama-like', { model_type: 'llama' });
    await expect(loadTokenizer(dir)).rejects.toThrow(TokenizerError);
    await expect(loadTokenizer(dir)).rejects.toThrow(/no tokenizer\.json, and not a GPT-2 folder/);
  });
});
