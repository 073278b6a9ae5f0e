export { createServer, type ServerOptions, type SpecstreamServer } from './app.js';
export { ApiError, type ApiErrorBody } from './errors.js';
export { copyRows, type RowMove } from './kv-rows.js';
export { ServerMetrics } from './metrics.js';
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
