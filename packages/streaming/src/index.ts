export * from './audio/index.js';
export * from './ctc-transcription.js';
export { type EncodedChunk, type StreamingEncodeOptions, streamingEncode } from './encode.js';
export { type FramesOptions, frames } from './frames.js';
export { createLocalAgreement, type LocalAgreement } from './local-agreement.js';
export { logMelFrames } from './log-mel-frames.js';
export {
  createTextFeed,
  type SpeakTextOptions,
  speakText,
  type TextFeed,
  type WavFileProgress,
  wavFileStream,
} from './speak-text.js';
export { createStopMatcher } from './stop-strings.js';
export { type AudioChunk, type StreamingSynthesizeOptions, streamingSynthesize } from './synthesize.js';
export {
  type StreamChunk,
  type TextDecoderStream,
  type TokenChunk,
  type TokenStreamOptions,
  tokenStream,
  type UsageChunk,
} from './token-stream.js';
export {
  type StreamingTranscriptionOptions,
  streamingTranscription,
  type Transcriber,
  type TranscriptEvent,
} from './transcribe.js';
export { type WhisperTranscriberOptions, whisperTranscriber } from './whisper-transcriber.js';
