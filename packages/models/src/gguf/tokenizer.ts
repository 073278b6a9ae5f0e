// Byte-level BPE tokenizers between tokenizer.json and GGUF's tokenizer.ggml.* metadata.
// GGUF keeps what llama.cpp needs: the token strings (byte-level spelling, "Ġthe"), a type
// per token, the merges as "a b" strings, the special ids, and the name of a pre-tokenizer
// that llama.cpp implements (its regex is not stored). Both directions only accept what
// they can express exactly, so a tokenizer that goes through GGUF encodes as it did.
import { tokenizerFromJson } from '../tokenizer/hf.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { GgufValueType, TokenType } from './constants.js';
import { GgufError } from './errors.js';
import { entry, type GgufArray, type GgufMetadata } from './metadata.js';

// The pre-tokenizer regexes of tokenizer.json files that llama.cpp knows by name.
const GPT2_BYTE_LEVEL = 'gpt-2';
const SPLIT_REGEXES: Readonly<Record<string, string>> = {
  qwen2:
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  'llama-bpe':
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
};

type Json = Record<string, unknown>;

interface AddedToken {
  id: number;
  content: string;
  special?: boolean;
}

/** The llama.cpp pre-tokenizer name whose behaviour equals tokenizer.json's pre_tokenizer. */
function preTokenizerName(json: Json, source: string): string {
  const pre = json.pre_tokenizer as Json | null | undefined;
  if (pre?.type === 'ByteLevel' && pre.use_regex !== false && pre.add_prefix_space !== true)
    return GPT2_BYTE_LEVEL;
  if (pre?.type === 'Sequence' && Array.isArray(pre.pretokenizers) && pre.pretokenizers.length === 2) {
    const [split, byteLevel] = pre.pretokenizers as Json[];
    const regex = (split.pattern as Json | undefined)?.Regex;
    const name = Object.keys(SPLIT_REGEXES).find((key) => SPLIT_REGEXES[key] === regex);
    if (
      name &&
      split.type === 'Split' &&
      split.behavior === 'Isolated' &&
      split.invert !== true &&
      byteLevel.type === 'ByteLevel' &&
      byteLevel.use_regex === false &&
      byteLevel.add_prefix_space !== true
    ) {
      return name;
    }
  }
  throw new GgufError(
    source,
    `its pre_tokenizer (${JSON.stringify(pre)?.slice(0, 200)}) is not one that llama.cpp implements by name; supported: GPT-2 ByteLevel, or the qwen2 / llama-bpe Split regexes`,
  );
}

function preTokenizerJson(name: string, source: string): Json {
  if (name === GPT2_BYTE_LEVEL)
    return { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const regex = SPLIT_REGEXES[name];
  if (!regex) {
    throw new GgufError(
      source,
      `tokenizer.ggml.pre '${name}' is not supported; supported: ${[GPT2_BYTE_LEVEL, ...Object.keys(SPLIT_REGEXES)].join(', ')}`,
    );
  }
  return {
    type: 'Sequence',
    pretokenizers: [
      { type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    ],
  };
}

const COMMON_EOS_TOKENS = ['<|endoftext|>', '</s>', '<|end_of_text|>', '<eos>'];

function tokenContent(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  const content = (value as { content?: unknown } | null | undefined)?.content;
  return typeof content === 'string' ? content : undefined;
}

export interface TokenizerSources {
  /** Parsed tokenizer.json. */
  tokenizerJson: Json;
  /** Parsed tokenizer_config.json, or {}. */
  tokenizerConfig: Json;
  /** The model's config.json (for vocab_size and fallback special ids). */
  modelConfig: Json;
  /** Labels errors. */
  source: string;
}

/**
 * tokenizer.ggml.* entries for a byte-level BPE tokenizer.json. The token list has the model's
 * vocab_size entries; ids the tokenizer does not use are padded as "[PAD<id>]" of type UNUSED,
 * as llama.cpp's converter does. Special ids follow what loadTokenizer uses: tokenizer_config's
 * bos/eos/pad/unk tokens, else the common end-of-text names, else config.json's ids.
 */
export function tokenizerMetadata({
  tokenizerJson,
  tokenizerConfig,
  modelConfig,
  source,
}: TokenizerSources): GgufMetadata {
  const model = tokenizerJson.model as Json | undefined;
  if (model?.type !== 'BPE') {
    throw new GgufError(
      source,
      `the tokenizer model is ${String(model?.type)}; only byte-level BPE can be exported`,
    );
  }
  if (model.byte_fallback === true || model.continuing_subword_prefix || model.end_of_word_suffix) {
    throw new GgufError(source, 'BPE with byte_fallback or word prefixes/suffixes is not byte-level BPE');
  }
  if (tokenizerJson.normalizer !== null && tokenizerJson.normalizer !== undefined) {
    throw new GgufError(
      source,
      `its normalizer (${JSON.stringify(tokenizerJson.normalizer)}) has no GGUF equivalent`,
    );
  }
  const pre = preTokenizerName(tokenizerJson, source);
  const vocab = model.vocab as Record<string, number>;
  const added = (tokenizerJson.added_tokens ?? []) as AddedToken[];
  const byId = new Map<number, { text: string; type: number }>();
  for (const [text, id] of Object.entries(vocab)) byId.set(id, { text, type: TokenType.NORMAL });
  for (const token of added) {
    byId.set(token.id, {
      text: token.content,
      type: token.special === false ? TokenType.USER_DEFINED : TokenType.CONTROL,
    });
  }
  const largest = Math.max(-1, ...byId.keys());
  const configVocab = typeof modelConfig.vocab_size === 'number' ? modelConfig.vocab_size : largest + 1;
  if (largest >= configVocab) {
    throw new GgufError(
      source,
      `the tokenizer has id ${largest}, but the model's vocab_size is ${configVocab}`,
    );
  }
  const tokens: string[] = [];
  const types: number[] = [];
  for (let id = 0; id < configVocab; id++) {
    const token = byId.get(id);
    tokens.push(token?.text ?? `[PAD${id}]`);
    types.push(token?.type ?? TokenType.UNUSED);
  }
  if (new Set(tokens).size !== tokens.length) {
    throw new GgufError(source, 'two token ids share one string; llama.cpp needs them distinct');
  }
  const merges = (model.merges as (string | [string, string])[]).map((merge) => {
    const [a, b] = typeof merge === 'string' ? splitMerge(merge) : merge;
    if (a.includes(' ') || b.includes(' ')) {
      throw new GgufError(
        source,
        `merge ${JSON.stringify(merge)} has a space inside a part; GGUF joins the parts with one`,
      );
    }
    return `${a} ${b}`;
  });

  const idOf = (name: 'bos' | 'eos' | 'pad' | 'unk'): number | undefined => {
    if (name === 'unk') {
      // The BPE model's own unk token: tokenizer_config's is only a label for it.
      const unk = typeof model.unk_token === 'string' ? tokens.indexOf(model.unk_token) : -1;
      return unk >= 0 ? unk : undefined;
    }
    const content = tokenContent(tokenizerConfig[`${name}_token`]);
    if (content !== undefined) return tokens.indexOf(content) >= 0 ? tokens.indexOf(content) : undefined;
    if (name === 'eos' || name === 'bos') {
      for (const common of COMMON_EOS_TOKENS) if (tokens.includes(common)) return tokens.indexOf(common);
    }
    const fromConfig = modelConfig[`${name === 'pad' ? 'pad' : name}_token_id`];
    return typeof fromConfig === 'number' && fromConfig >= 0 && fromConfig < configVocab
      ? fromConfig
      : undefined;
  };
  const metadata: GgufMetadata = new Map([
    ['tokenizer.ggml.model', entry.string('gpt2')],
    ['tokenizer.ggml.pre', entry.string(pre)],
    ['tokenizer.ggml.tokens', entry.strings(tokens)],
    ['tokenizer.ggml.token_type', entry.int32s(types)],
    ['tokenizer.ggml.merges', entry.strings(merges)],
  ]);
  for (const [name, key] of [
    ['bos', 'bos_token_id'],
    ['eos', 'eos_token_id'],
    ['unk', 'unknown_token_id'],
    ['pad', 'padding_token_id'],
  ] as const) {
    const id = idOf(name);
    if (id !== undefined) metadata.set(`tokenizer.ggml.${key}`, entry.uint32(id));
  }
  // transformers adds a BOS only where the post-processor's template says so.
  const bosId = addsBos(tokenizerJson, vocab, added);
  metadata.set('tokenizer.ggml.add_bos_token', entry.bool(bosId !== undefined));
  if (bosId !== undefined) metadata.set('tokenizer.ggml.bos_token_id', entry.uint32(bosId));
  metadata.set('tokenizer.ggml.add_eos_token', entry.bool(false));
  return metadata;
}

function splitMerge(merge: string): [string, string] {
  const at = merge.indexOf(' ', 1);
  return [merge.slice(0, at), merge.slice(at + 1)];
}

/** The id a TemplateProcessing post-processor puts before every sequence, if any. */
function addsBos(json: Json, vocab: Record<string, number>, added: AddedToken[]): number | undefined {
  const post = json.post_processor as Json | null | undefined;
  if (!post || post.type === 'ByteLevel') return undefined;
  const processors = post.type === 'Sequence' ? ((post.processors as Json[]) ?? []) : [post];
  const template = processors.find((p) => p.type === 'TemplateProcessing');
  if (!template) return undefined;
  const first = (template.single as Json[] | undefined)?.[0]?.SpecialToken as Json | undefined;
  if (!first) return undefined;
  const content = first.id as string;
  return added.find((t) => t.content === content)?.id ?? vocab[content];
}

function stringsOf(metadata: GgufMetadata, key: string, source: string): string[] {
  const value = metadata.get(key);
  const array = value?.value as GgufArray | undefined;
  if (value?.type !== GgufValueType.ARRAY || array?.itemType !== GgufValueType.STRING) {
    throw new GgufError(source, `${key} is missing or not an array of strings`);
  }
  return array.values as string[];
}

function idOf(metadata: GgufMetadata, key: string, count: number): number | undefined {
  const value = metadata.get(key)?.value;
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value < count
    ? value
    : undefined;
}

/**
 * The project's Tokenizer for GGUF tokenizer metadata (model "gpt2": byte-level BPE), through
 * the same tokenizer.json path as a Hugging Face folder. Tokens of type UNUSED spelled
 * "[PAD<id>]" are padding and are left out of the vocabulary.
 */
export function tokenizerFromGguf(metadata: GgufMetadata, source: string): Tokenizer {
  const model = metadata.get('tokenizer.ggml.model')?.value;
  if (model !== 'gpt2') {
    throw new GgufError(
      source,
      `tokenizer.ggml.model is ${JSON.stringify(model)}; only "gpt2" (byte-level BPE) is supported`,
    );
  }
  const pre = metadata.get('tokenizer.ggml.pre')?.value;
  const preTokenizer = preTokenizerJson(typeof pre === 'string' ? pre : 'default', source);
  const tokens = stringsOf(metadata, 'tokenizer.ggml.tokens', source);
  const merges = stringsOf(metadata, 'tokenizer.ggml.merges', source).map(splitMerge);
  const typeEntry = metadata.get('tokenizer.ggml.token_type')?.value as GgufArray | undefined;
  const types = (typeEntry?.values as number[] | undefined) ?? [];
  if (typeEntry && types.length < tokens.length) {
    throw new GgufError(
      source,
      `tokenizer.ggml.token_type has ${types.length} entries for ${tokens.length} tokens`,
    );
  }
  const vocab: Record<string, number> = {};
  const added: Json[] = [];
  for (const [id, text] of tokens.entries()) {
    const type = types[id] ?? TokenType.NORMAL;
    if (type === TokenType.UNUSED && /^\[PAD\d+\]$/.test(text)) continue;
    vocab[text] = id;
    if (type === TokenType.CONTROL || type === TokenType.USER_DEFINED) {
      const special = type === TokenType.CONTROL;
      added.push({
        id,
        content: text,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: !special,
        special,
      });
    }
  }
  const bos = idOf(metadata, 'tokenizer.ggml.bos_token_id', tokens.length);
  const eos = idOf(metadata, 'tokenizer.ggml.eos_token_id', tokens.length);
  const unk = idOf(metadata, 'tokenizer.ggml.unknown_token_id', tokens.length);
  const addBos = metadata.get('tokenizer.ggml.add_bos_token')?.value === true && bos !== undefined;
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: preTokenizer,
    post_processor: addBos
      ? {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: tokens[bos], type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [
            { SpecialToken: { id: tokens[bos], type_id: 0 } },
            { Sequence: { id: 'A', type_id: 0 } },
            { SpecialToken: { id: tokens[bos], type_id: 1 } },
            { Sequence: { id: 'B', type_id: 1 } },
          ],
          special_tokens: { [tokens[bos]]: { id: tokens[bos], ids: [bos], tokens: [tokens[bos]] } },
        }
      : null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: unk === undefined ? null : tokens[unk],
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
  const config: Record<string, unknown> = {};
  if (eos !== undefined) config.eos_token = tokens[eos];
  return tokenizerFromJson(json, config, source);
}
