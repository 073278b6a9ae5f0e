export {
  CHAR_LM_DEFAULT_ORDER,
  CHAR_LM_END,
  type CharNgramLm,
  type CharNgramLmOptions,
  charLmSentenceLogProb,
  loadCharNgramLm,
  trainCharNgramLm,
} from './char-ngram-lm.js';
export {
  CTC_GREEDY_START,
  type CtcEmissions,
  type CtcGreedyState,
  type CtcTiming,
  type CtcWord,
  clampWordTimes,
  ctcGreedyChunk,
  ctcText,
  ctcWords,
  outputFrameEnd,
  outputFrameStart,
} from './ctc.js';
export {
  CTC_BEAM_LENGTH_BONUS,
  CTC_BEAM_LM_WEIGHT,
  CTC_BEAM_OOV_PENALTY,
  CTC_BEAM_WIDTH,
  CTC_BEAM_WORD_LM_WEIGHT,
  type CtcBeamLabelling,
  type CtcBeamSettings,
  type CtcBeamState,
  type CtcDecoder,
  type CtcDecoding,
  ctcBeamBest,
  ctcBeamChunk,
  ctcBeamFinal,
  ctcBeamLabellings,
  ctcBeamStart,
  startCtcDecoding,
} from './ctc-beam.js';
export { characterErrorRate, editDistance, wordErrorRate } from './error-rate.js';
export {
  type CtcTranscript,
  type LoadSpeechRecognizerOptions,
  loadSpeechRecognizer,
  loadSpeechRecognizerLm,
  type RecognizeAudioOptions,
  type RecognizeOptions,
  readSpeechRecognizerConfig,
  recognizeAudio,
  recognizeLogMel,
  recognizerLogits,
  type SpeechRecognizer,
  transcriptOf,
} from './recognizer.js';
export {
  DEFAULT_RECOGNIZER_LM_TEXT,
  SPEECH_RECOGNIZER_MODEL_TYPE,
  type SpeechRecognizerConfig,
  speechRecognizerConfig,
} from './recognizer-config.js';
export { recognizerTensorShapes } from './recognizer-weights.js';
export {
  RECOGNIZER_TAIL_PADDING_SECONDS,
  TAIL_PADDING_PEAK,
  tailPadding,
  withTailPadding,
} from './tail-padding.js';
export {
  NOT_A_WORD,
  trainWordLexicon,
  WORD_LEXICON_ROOT,
  type WordLexicon,
} from './word-lexicon.js';
export {
  trainWordNgramLm,
  WORD_LM_DEFAULT_ORDER,
  type WordNgramLm,
  type WordNgramLmOptions,
} from './word-ngram-lm.js';
