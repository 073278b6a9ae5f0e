import { SpecstreamError } from '@specstream/core';

export interface EncodeOptions {
  /** Add the tokenizer's BOS/EOS/template tokens (default true, as in HF). */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens such as `<|endoftext|>` (default false, as in HF). */
  skipSpecialTokens?: boolean;
}

/** The few operations generation needs, over whichever library does the work. */
export interface Tokenizer {
  encode(text: string, options?: EncodeOptions): number[];
  /** Bytes that do not form complete UTF-8 characters decode to U+FFFD. */
  decode(ids: readonly number[], options?: DecodeOptions): string;
  /** One more than the largest token id, i.e. the embedding rows the ids can address. */
  readonly vocabSize: number;
  idToToken?(id: number): string | undefined;
  readonly eosTokenId?: number;
}

export class TokenizerError extends SpecstreamError {
  override readonly name = 'TokenizerError';
}
