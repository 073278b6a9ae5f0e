export { type FramesOptions, frames } from './frames.js';
export { createStopMatcher } from './stop-strings.js';
export {
  type StreamChunk,
  type TextDecoderStream,
  type TokenChunk,
  type TokenStreamOptions,
  tokenStream,
  type UsageChunk,
} from './token-stream.js';
