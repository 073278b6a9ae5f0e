// The GPT-2 fallback (./gpt2.js) is left out on purpose: loadTokenizer imports it on demand,
// and re-exporting it here would load its half-megabyte rank table with the package.
export { createDetokenizer, type Detokenizer } from './detokenizer.js';
export { tokenizerFromJson } from './hf.js';
export { loadTokenizer } from './load.js';
export { type DecodeOptions, type EncodeOptions, type Tokenizer, TokenizerError } from './types.js';
