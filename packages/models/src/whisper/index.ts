export { type WhisperConfig, whisperConfig } from './config.js';
export { createWhisperDecoder, type WhisperDecoder, type WhisperDecoderState } from './decoder.js';
export { createWhisperEncoder, type WhisperEncoder, type WhisperEncoderState } from './encoder.js';
export { type WhisperGreedyOptions, whisperGreedy } from './greedy.js';
export { type LoadWhisperOptions, loadWhisper, type Whisper } from './load.js';
export { readWhisperWeights } from './weights.js';
