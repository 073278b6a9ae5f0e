export { DEFAULT_DRAFT, DEFAULT_MAX_NEW_TOKENS, DEFAULT_PROMPT, DEFAULT_TARGET } from './defaults.js';
export { CliError, EXIT, EXIT_CODES_HELP, type ExitCode } from './exit-codes.js';
export type { CliIo } from './io.js';
export { main } from './main.js';
