import * as hfTokenizers from '@huggingface/tokenizers';
import { type DecodeOptions, type EncodeOptions, type Tokenizer, TokenizerError } from './types.js';

// The package's .d.ts files import each other without file extensions, which NodeNext
// resolution cannot follow, so its classes arrive typed as `any`. This is the part we use,
// as declared in its types/core/Tokenizer.d.ts.
interface HfTokenizer {
  encode(text: string, options: { add_special_tokens: boolean }): { ids: number[] };
  decode(ids: number[], options: { skip_special_tokens: boolean }): string;
  id_to_token(id: number): string | undefined;
  token_to_id(token: string): number | undefined;
  get_vocab(withAddedTokens: boolean): Map<string, number>;
}
const HfTokenizer = hfTokenizers.Tokenizer as new (tokenizerJson: object, config: object) => HfTokenizer;

// Tried in order when tokenizer_config.json names no eos_token: the end markers of the
// GPT-2/Qwen, Llama 2/Mistral, Llama 3 and Gemma families.
const COMMON_EOS_TOKENS = ['<|endoftext|>', '</s>', '<|end_of_text|>', '<eos>'];

/**
 * Wraps @huggingface/tokenizers around a parsed tokenizer.json (and tokenizer_config.json).
 * `source` only labels error messages.
 */
export function tokenizerFromJson(
  tokenizerJson: object,
  tokenizerConfig: Record<string, unknown> = {},
  source = 'tokenizer.json',
): Tokenizer {
  // transformers stopped cleaning spaces around punctuation by default (v4.45); the library
  // still defaults to cleaning, which would make decode(encode(" x .")) lossy.
  const config = { clean_up_tokenization_spaces: false, ...tokenizerConfig };
  const inner = new HfTokenizer(tokenizerJson, config);
  const vocabSize = Math.max(-1, ...inner.get_vocab(true).values()) + 1;

  const checkIds = (ids: readonly number[]) => {
    const bad = ids.find((id) => !Number.isInteger(id) || inner.id_to_token(id) === undefined);
    if (bad !== undefined) throw new TokenizerError(`${source}: token id ${bad} is not in the vocabulary`);
  };

  return {
    vocabSize,
    eosTokenId: eosTokenIdOf(inner, tokenizerConfig),
    idToToken: (id) => inner.id_to_token(id),
    encode(text: string, options: EncodeOptions = {}) {
      const { ids } = inner.encode(text, { add_special_tokens: options.addSpecialTokens ?? true });
      // Models without an unk token map unknown pieces to undefined instead of failing.
      if (ids.some((id) => id === undefined)) {
        throw new TokenizerError(
          `${source}: cannot encode ${JSON.stringify(text)}: no token (and no unk token)`,
        );
      }
      return ids;
    },
    decode(ids: readonly number[], options: DecodeOptions = {}) {
      // The library rejects an empty list, but "no tokens" is just "no text".
      if (ids.length === 0) return '';
      checkIds(ids);
      return inner.decode([...ids], { skip_special_tokens: options.skipSpecialTokens ?? false });
    },
  };
}

function eosTokenIdOf(inner: HfTokenizer, config: Record<string, unknown>): number | undefined {
  const eos = config.eos_token;
  // tokenizer_config.json writes it either as a string or as a serialized AddedToken.
  const content = typeof eos === 'string' ? eos : (eos as { content?: unknown } | null | undefined)?.content;
  if (typeof content === 'string') return inner.token_to_id(content);
  for (const token of COMMON_EOS_TOKENS) {
    const id = inner.token_to_id(token);
    if (id !== undefined) return id;
  }
  return undefined;
}
