import { type Command, Option } from 'commander';
import { DEFAULT_DRAFT, DEFAULT_MAX_NEW_TOKENS, DEFAULT_PROMPT, DEFAULT_TARGET } from '../defaults.js';
import { CliError, EXIT, EXIT_CODES_HELP } from '../exit-codes.js';
import type { CliIo } from '../io.js';
import { collect, integerIn, numberWhere } from '../parse.js';
import { DEFAULT_SPEECH_SYNTHESIZER } from './speech-defaults.js';

/** core's BACKEND_NAMES plus 'auto', spelled out so that `--help` need not load tfjs (a test keeps them equal). */
export const BACKEND_CHOICES = ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'] as const;

/** `--backend <name>`, as every command that runs a model takes it. */
export function backendOption(): Option {
  return new Option(
    '--backend <name>',
    'tfjs backend (default: SPECSTREAM_BACKEND, else the fastest that starts)',
  ).choices(BACKEND_CHOICES);
}

/**
 * How a model keeps its linear weights: core's WEIGHT_FORMATS, spelled out for the same reason
 * (a test keeps them equal). q8 and q4 are blocks of 32 weights with one scale each (GGUF Q8_0
 * and Q4_0), run by the wasm kernel set; f16 is run by the webgpu set.
 */
export const WEIGHT_CHOICES = ['f32', 'f16', 'q8', 'q4'] as const;
export type WeightChoice = (typeof WEIGHT_CHOICES)[number];

export interface GenerateFlags {
  model: string;
  /** A folder, or false for --no-draft. */
  draft: string | false;
  promptLookup: boolean;
  /** Fixed k; adaptive when absent. */
  k?: number;
  /** Where adaptive k's state is kept between runs ('none': nowhere). */
  kState?: string;
  temperature: number;
  topP?: number;
  topK?: number;
  seed?: number;
  maxNewTokens: number;
  stop: string[];
  ignoreEos: boolean;
  backend?: (typeof BACKEND_CHOICES)[number];
  /** The target's weight format (and the draft's unless draftWeights is given). */
  weights: WeightChoice;
  draftWeights?: WeightChoice;
  json: boolean;
  compare: boolean;
  /** --speak: a WAV file the text is spoken into as it is generated. */
  speak?: string;
  speechModel: string;
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
      '--k-state <file>',
      'where adaptive k keeps what it learned (acceptance, step timings) per model pair, weights, ' +
        'backend and threads, so the next run skips its probes; "none" starts fresh every run ' +
        '(default: SPECSTREAM_K_STATE, else $XDG_CACHE_HOME or ~/.cache, /specstream/adaptive-k.json)',
    )
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
    .addOption(backendOption())
    .addOption(
      new Option(
        '--weights <format>',
        'how the models keep their weights: f32; f16 (on the webgpu backend); q8 or q4 (blocks of 32 ' +
          "with one scale each, as GGUF Q8_0/Q4_0: 1/4 and 1/7 of f32's bytes; on the wasm or webgpu backend). " +
          'The format makes its backend the default unless --backend or SPECSTREAM_BACKEND names another',
      )
        .choices(WEIGHT_CHOICES)
        .default('f32'),
    )
    .addOption(
      new Option('--draft-weights <format>', "the draft model's weights (default: --weights)").choices(
        WEIGHT_CHOICES,
      ),
    )
    .option('--ignore-eos', 'keep generating past the end-of-sequence token (for benchmarks)', false)
    .option('--json', 'one JSON line per token on stdout, then a summary line', false)
    .option('--compare', 'also decode with the target alone and print the measured speedup', false)
    .option('--speak <file.wav>', 'also speak the text into this WAV file while it is generated')
    .option('--speech-model <dir>', 'speech synthesizer folder for --speak', DEFAULT_SPEECH_SYNTHESIZER)
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
  if (flags.kState !== undefined && (!drafting || flags.k !== undefined)) {
    throw new CliError(
      EXIT.usage,
      `--k-state is adaptive k's; drop ${flags.k !== undefined ? '--k' : '--no-draft'}`,
    );
  }
  if (flags.kState === '') throw new CliError(EXIT.usage, '--k-state needs a file name, or none');
  if (!drafting && flags.compare) {
    throw new CliError(EXIT.usage, '--compare compares against the target alone; drop --no-draft');
  }
  if (flags.draftWeights !== undefined && (flags.draft === false || flags.promptLookup)) {
    throw new CliError(
      EXIT.usage,
      `--draft-weights needs a draft model; drop ${flags.promptLookup ? '--prompt-lookup' : '--no-draft'}`,
    );
  }
}
