export * from './decoder.js';
export * from './errors.js';
export { getLogger, setLogger, type Logger } from './log.js';
