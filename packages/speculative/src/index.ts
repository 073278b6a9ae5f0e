export { type AcceptInput, type AcceptResult, type AcceptRule, acceptDraft } from './accept.js';
export {
  type AdaptiveKOptions,
  type AdaptiveKPolicy,
  type AdaptiveKState,
  adaptiveK,
  checkAdaptiveKState,
} from './adaptive-k.js';
export type { DraftContext, Drafter, DraftSession, DraftSessionOptions, Proposal } from './drafter.js';
export { expectedTokens, fixedK, type IterationReport, type KPolicy } from './k-policy.js';
export {
  addMetrics,
  emptyMetrics,
  rates,
  type SpeculativeMetrics,
  type SpeculativeRates,
} from './metrics.js';
export { type DraftRowsInput, draftRows, type ModelDrafterOptions, modelDrafter } from './model-drafter.js';
export { type PairOptions, type SpeculativePair, speculativePair } from './pair.js';
export { type PromptLookupOptions, promptLookupDrafter } from './prompt-lookup.js';
export {
  type SpeculativeGenerateOptions,
  type SpeculativeRun,
  type SpeculativeTokenEvent,
  speculativeGenerate,
  type VerifyRowInput,
  verifyRow,
} from './speculative-generate.js';
export { checkVocabularies, type VocabularyCheck, type VocabularyTokenizer } from './vocabulary.js';
