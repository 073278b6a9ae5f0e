export {
  CTC_GREEDY_START,
  type CtcEmissions,
  type CtcGreedyState,
  type CtcTiming,
  type CtcWord,
  ctcGreedyChunk,
  ctcText,
  ctcWords,
  outputFrameEnd,
  outputFrameStart,
} from './ctc.js';
export { characterErrorRate, editDistance, wordErrorRate } from './error-rate.js';
export {
  type CtcTranscript,
  loadSpeechRecognizer,
  readSpeechRecognizerConfig,
  recognizeAudio,
  recognizeLogMel,
  recognizerLogits,
  type SpeechRecognizer,
  transcriptOf,
} from './recognizer.js';
export {
  SPEECH_RECOGNIZER_MODEL_TYPE,
  type SpeechRecognizerConfig,
  speechRecognizerConfig,
} from './recognizer-config.js';
export { recognizerTensorShapes } from './recognizer-weights.js';
