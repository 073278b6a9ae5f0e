/**
 * The CLI's exit codes. Each failure the user can fix has its own code and a one-line message,
 * so scripts can tell a typo from a model folder that is missing or does not fit.
 */
export const EXIT = {
  ok: 0,
  /** Anything not listed below: a bug, a failing backend, a corrupt checkpoint. */
  failure: 1,
  /** A bad flag, flag value or argument (commander's own errors included). */
  usage: 2,
  /** A model folder (or its config.json) does not exist. */
  missingModel: 3,
  /** A model folder this CLI cannot generate with: unknown model_type, whisper, no usable tokenizer. */
  unsupportedModel: 4,
  /** The prompt does not fit the model's context. */
  promptTooLong: 5,
  /** The draft's vocabulary does not fit the target's. */
  draftMismatch: 6,
  /** Stopped by Ctrl-C (SIGINT): 128 + 2, as shells report it. */
  interrupted: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** An error the user can act on: printed as one line, no stack, and exits with `code`. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    readonly code: ExitCode,
    message: string,
  ) {
    super(message);
  }
}

/** The exit-code table for `--help` and the README. */
export const EXIT_CODES_HELP = `Exit codes:
  0    success
  1    unexpected failure (backend, corrupt checkpoint, bug)
  2    bad flag, flag value or argument
  3    model folder or its config.json missing
  4    unsupported model folder (model_type, whisper, no tokenizer, missing tensors)
  5    prompt longer than the model's context
  6    draft vocabulary does not fit the target's
  130  interrupted (Ctrl-C); the stats line is still printed`;
