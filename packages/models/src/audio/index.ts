export { createBluesteinDft } from './bluestein.js';
export { type ComplexDft, createComplexDft } from './complex-dft.js';
export {
  framesToMelMajor,
  LOG_MEL_DYNAMIC_RANGE,
  logMelSpectrogram,
  maxOf,
  normalizeLogMel,
  rawLogMelFrames,
} from './log-mel.js';
export { LOG_MEL_FLOOR, periodicHann } from './log-mel-frame.js';
export { createLogMelStream, type LogMelStream } from './log-mel-stream.js';
export {
  hzToMelSlaney,
  type MelFilterBank,
  type MelFilterBankOptions,
  melFilterBank,
  melToHzSlaney,
  WHISPER_SAMPLE_RATE,
} from './mel-filter-bank.js';
export { createMixedRadixDft } from './mixed-radix-fft.js';
export { assertReflectable, type LogMelOptions, type OfflineLogMelOptions } from './options.js';
export { createRealDft, type RealDft } from './real-dft.js';
