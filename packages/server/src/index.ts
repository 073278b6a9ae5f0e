export { createServer, type ServerOptions, type SpecstreamServer } from './app.js';
export type { SpeechModelOptions } from './audio-models.js';
export { MAX_SPEECH_INPUT_CHARS } from './audio-params.js';
export { DEFAULT_MAX_AUDIO_BYTES } from './audio-routes.js';
export { PCM_SAMPLE_RATE } from './audio-speech.js';
export { ApiError, type ApiErrorBody } from './errors.js';
export { copyRows, type RowMove } from './kv-rows.js';
export { type AudioTask, ServerMetrics } from './metrics.js';
export { CHAT_STOPS, type ChatMessage, defaultChatPrompt } from './requests.js';
export {
  type EndReason,
  type GenerationRequest,
  type GenerationResult,
  QueueFullError,
  Scheduler,
  SchedulerClosedError,
  type SchedulerOptions,
  type StepReport,
} from './scheduler.js';
