import { type Command, Option } from 'commander';
import { DEFAULT_DRAFT, DEFAULT_TARGET } from '../defaults.js';
import { EXIT_CODES_HELP } from '../exit-codes.js';
import type { CliIo } from '../io.js';
import { integerIn } from '../parse.js';
import { type BACKEND_CHOICES, backendOption, WEIGHT_CHOICES, type WeightChoice } from './generate.js';
import { DEFAULT_SPEECH_SYNTHESIZER } from './speech-defaults.js';
import { DEFAULT_RECOGNIZER } from './transcribe.js';

export interface ServeFlags {
  model: string;
  /** A folder, or false for --no-draft. */
  draft: string | false;
  host: string;
  port: number;
  maxBatch: number;
  maxQueue: number;
  apiKey?: string;
  modelId?: string;
  /** Fixed k; adaptive when absent. */
  k?: number;
  /** The draft's weight format (default: defaultDraftWeights()). */
  draftWeights?: WeightChoice;
  backend?: (typeof BACKEND_CHOICES)[number];
  /** --speech: serve the shipped speech recognizer and synthesizer. */
  speech?: boolean;
  /** Speech model folders (each also turns its endpoint on). */
  recognizer?: string;
  synthesizer?: string;
  /** Largest upload to /v1/audio/transcriptions, in MiB. */
  maxAudioMb: number;
  /** Audio requests waiting for a speech model before new ones get 429. */
  maxAudioQueue: number;
}

/** The speech folders `serve` loads: --recognizer/--synthesizer, else the shipped ones with --speech. */
export function speechFolders(flags: ServeFlags): { recognizer?: string; synthesizer?: string } {
  const shipped = flags.speech === true;
  return {
    recognizer: flags.recognizer ?? (shipped ? DEFAULT_RECOGNIZER : undefined),
    synthesizer: flags.synthesizer ?? (shipped ? DEFAULT_SPEECH_SYNTHESIZER : undefined),
  };
}

/** `specstream serve`: an OpenAI-compatible server (@specstream/server); the work loads only when it runs. */
export function addServeCommand(program: Command, io: CliIo, done: (code: number) => void): void {
  program
    .command('serve')
    .description(
      'Serve the model over an OpenAI-compatible HTTP API (POST /v1/completions, /v1/chat/completions, ' +
        'GET /v1/models, /health, /metrics) with continuous batching and speculative decoding; ' +
        'with --speech, also POST /v1/audio/transcriptions and /v1/audio/speech. ' +
        'Runs until Ctrl-C or SIGTERM.',
    )
    .option('--model <dir>', 'target model folder (Hugging Face layout)', DEFAULT_TARGET)
    .option('--draft <dir>', 'draft model folder (same tokenizer as the target)', DEFAULT_DRAFT)
    .option('--no-draft', 'decode with the target alone')
    .option('--host <address>', 'address to listen on (0.0.0.0 for every interface)', '127.0.0.1')
    .option('--port <n>', 'port to listen on (0 picks a free one)', integerIn(0, 65535), 8000)
    .option('--max-batch <n>', 'requests decoding at once', integerIn(1, 256), 16)
    .option('--max-queue <n>', 'requests waiting for a row before new ones get 429', integerIn(0), 64)
    .option(
      '--api-key <key>',
      'require "Authorization: Bearer <key>" on /v1/* (default: SPECSTREAM_API_KEY, else none)',
    )
    .option('--model-id <id>', "the model's name in the API (default: the target folder's name)")
    .option('--k <n>', 'tokens drafted per step, fixed (default: adaptive k)', integerIn(1, 64))
    .addOption(
      new Option(
        '--draft-weights <format>',
        "the draft model's weights (default: q4 where the backend runs it, wasm or webgpu; else f32)",
      ).choices(WEIGHT_CHOICES),
    )
    .option(
      '--speech',
      'also serve /v1/audio/transcriptions and /v1/audio/speech with the shipped speech models ' +
        '(models/specstream-speech-recognizer and -synthesizer)',
    )
    .option('--recognizer <dir>', 'speech recognizer folder for /v1/audio/transcriptions (implies it)')
    .option('--synthesizer <dir>', 'speech synthesizer folder for /v1/audio/speech (implies it)')
    .option(
      '--max-audio-mb <n>',
      'largest audio upload to /v1/audio/transcriptions, in MiB',
      integerIn(1, 1024),
      25,
    )
    .option(
      '--max-audio-queue <n>',
      'audio requests waiting for a speech model (one job runs per model) before new ones get 429',
      integerIn(0),
      16,
    )
    .addOption(backendOption())
    .addHelpText('after', `\n${EXIT_CODES_HELP}`)
    .action(async (flags: ServeFlags) => {
      const { runServe } = await import('./serve-run.js');
      done(await runServe(flags, io));
    });
}
