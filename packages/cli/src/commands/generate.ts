import { type Command, Option } from 'commander';
import { DEFAULT_DRAFT, DEFAULT_MAX_NEW_TOKENS, DEFAULT_PROMPT, DEFAULT_TARGET } from '../defaults.js';
import { CliError, EXIT, EXIT_CODES_HELP } from '../exit-codes.js';
import type { CliIo } from '../io.js';
import { collect, integerIn, numberWhere } from '../parse.js';

/** core's BACKEND_NAMES plus 'auto', spelled out so that `--help` need not load tfjs (a test keeps them equal). */
export const BACKEND_CHOICES = ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'] as const;

export interface GenerateFlags {
  model: string;
  /** A folder, or false for --no-draft. */
  draft: string | false;
  promptLookup: boolean;
  /** Fixed k; adaptive when absent. */
  k?: number;
  temperature: number;
  topP?: number;
  topK?: number;
  seed?: number;
  maxNewTokens: number;
  stop: string[];
  ignoreEos: boolean;
  backend?: (typeof BACKEND_CHOICES)[number];
  json: boolean;
  compare: boolean;
}

/** `specstream generate`: options are parsed and checked here; the work (and tfjs) loads only when it runs. */
export function addGenerateCommand(program: Command, io: CliIo, done: (code: number) => void): void {
  program
    .command('generate')
    .description(
      'Generate text from a prompt with speculative decoding: a draft model (or prompt lookup) proposes ' +
        'tokens and the target verifies them, so the output is exactly what the target alone would produce. ' +
        'Text streams to stdout; a stats line goes to stderr.',
    )
    .argument(
      '[prompt]',
      `the prompt; read from stdin when absent and stdin is not a terminal; default "${DEFAULT_PROMPT}"`,
    )
    .option(
      '--model <dir>',
      'target model folder (Hugging Face layout: config.json, model.safetensors, tokenizer.json)',
      DEFAULT_TARGET,
    )
    .option('--draft <dir>', 'draft model folder (same tokenizer as the target)', DEFAULT_DRAFT)
    .option('--no-draft', 'decode with the target alone')
    .addOption(
      new Option(
        '--prompt-lookup',
        'draft by prompt lookup (n-grams of the text so far) instead of a draft model',
      )
        .default(false)
        .conflicts('draft'),
    )
    .option('--k <n>', 'tokens drafted per step, fixed (default: adaptive k)', integerIn(1, 64))
    .option(
      '--temperature <t>',
      'sampling temperature; 0 is greedy',
      numberWhere((t) => t >= 0, 'a number >= 0'),
      0,
    )
    .option(
      '--top-p <p>',
      'nucleus sampling mass',
      numberWhere((p) => p > 0 && p <= 1, 'in (0, 1]'),
    )
    .option('--top-k <n>', 'sample among the n most probable tokens; 0 is no limit', integerIn(0))
    .option(
      '--seed <n>',
      'sampler seed (repeats a sampled text with --no-draft or a fixed --k; adaptive k picks k from timings)',
      integerIn(0),
    )
    .option('--max-new-tokens <n>', 'tokens to generate at most', integerIn(1), DEFAULT_MAX_NEW_TOKENS)
    .option('--stop <text>', 'stop before this text (repeatable; may span tokens)', collect, [])
    .addOption(
      new Option(
        '--backend <name>',
        'tfjs backend (default: SPECSTREAM_BACKEND, else the fastest that starts)',
      ).choices(BACKEND_CHOICES),
    )
    .option('--ignore-eos', 'keep generating past the end-of-sequence token (for benchmarks)', false)
    .option('--json', 'one JSON line per token on stdout, then a summary line', false)
    .option('--compare', 'also decode with the target alone and print the measured speedup', false)
    .addHelpText('after', `\n${EXIT_CODES_HELP}`)
    .action(async (prompt: string | undefined, flags: GenerateFlags) => {
      checkFlagCombination(flags);
      const { runGenerate } = await import('../generate/run.js');
      done(await runGenerate(prompt, flags, io));
    });
}

/** What commander's own checks cannot say: flags that make no sense together. */
function checkFlagCombination(flags: GenerateFlags): void {
  const drafting = flags.draft !== false || flags.promptLookup;
  if (!drafting && flags.k !== undefined)
    throw new CliError(EXIT.usage, '--k needs a drafter; drop --no-draft');
  if (!drafting && flags.compare) {
    throw new CliError(EXIT.usage, '--compare compares against the target alone; drop --no-draft');
  }
}
