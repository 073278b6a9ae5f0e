export * from './audio/index.js';
export * from './gguf/index.js';
export * from './load-model.js';
export * from './safetensors/index.js';
export * from './streaming-encoder/index.js';
export * from './synthesizer/index.js';
export * from './tokenizer/index.js';
export * from './whisper/index.js';
