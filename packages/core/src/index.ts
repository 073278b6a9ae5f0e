export * from './decoder.js';
export * from './errors.js';
export { getLogger, type Logger, setLogger } from './log.js';
