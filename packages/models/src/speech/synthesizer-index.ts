export { createIncrementalNormalizer, type IncrementalNormalizer } from './incremental-normalizer.js';
export { normalizeSpeechText, SPOKEN_PUNCTUATION, speechTranscript } from './normalize-text.js';
export {
  type SpeakOptions,
  type SpokenText,
  speechFrameBudget,
  synthesizeSpeech,
} from './synthesize-speech.js';
export {
  type LoadSpeechSynthesizerOptions,
  loadSpeechSynthesizer,
  type SpeechSynthesizer,
} from './synthesizer.js';
export {
  readSpeechSynthesizerConfig,
  SPEECH_SYNTHESIZER_MODEL_TYPE,
  type SpeechSynthesizerConfig,
  speechSynthesizerConfig,
} from './synthesizer-config.js';
export { synthesizerTensorNames } from './synthesizer-weights.js';
