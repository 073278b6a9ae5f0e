export { copyRows, type RowMove } from './kv-rows.js';
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
