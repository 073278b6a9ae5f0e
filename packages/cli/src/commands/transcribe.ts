import { fileURLToPath } from 'node:url';
import { type Command, Option } from 'commander';
import { EXIT_CODES_HELP } from '../exit-codes.js';
import type { CliIo } from '../io.js';
import { integerIn, multipleOf, numberWhere } from '../parse.js';
import { type BACKEND_CHOICES, backendOption } from './generate.js';

/**
 * The shipped recognizer at the repository root; src/commands and dist/commands are both two
 * levels below packages/cli, so the same relative path serves the sources and the build.
 */
export const DEFAULT_RECOGNIZER = fileURLToPath(
  new URL('../../../../models/specstream-speech-recognizer', import.meta.url),
);

/** streaming's PcmFormat values, spelled out so that `--help` need not load the streaming package (the stdin tests read both). */
export const PCM_FORMAT_CHOICES = ['s16le', 'f32le'] as const;

export const DEFAULT_CHUNK_MS = 320;
/**
 * CTC prefix beam search with the recognizer's character and word LMs: on the speech bench's
 * held-out sentences, word error rate 5.3% against greedy decoding's 16% (trained voices; 25%
 * against 53% in a voice never trained on), for a few ms of decoding per second of audio. models'
 * CTC_BEAM_WIDTH, written out so that `--help` need not load the models package (a test checks
 * they agree).
 */
export const DEFAULT_BEAM = 32;
/**
 * Seconds of faint noise after the audio, so the causal encoder emits the last word (on the
 * tuning sentences the held-out voice's WER falls from 25.9% to 22.8% with it). models'
 * RECOGNIZER_TAIL_PADDING_SECONDS, written out for `--help` (a test checks they agree).
 */
export const DEFAULT_TAIL_PADDING_SECONDS = 0.3;
/** `--lm none`: a beam search on the acoustic scores alone. */
export const NO_LM = 'none';
export const DEFAULT_STDIN_RATE = 16000;

export interface TranscribeFlags {
  model: string;
  chunkMs: number;
  json: boolean;
  backend?: (typeof BACKEND_CHOICES)[number];
  /** Raw PCM on stdin only: its rate and encoding (defaults 16000, s16le applied when reading stdin). */
  rate?: number;
  format?: (typeof PCM_FORMAT_CHOICES)[number];
  /** Beam width; 0: greedy decoding. */
  beam: number;
  /** A text file to train the character LM on, or NO_LM; default: the recognizer folder's LM text, if any. */
  lm?: string;
  /** γ per word not in the LM's text; default: the models package's CTC_BEAM_OOV_PENALTY. */
  oovPenalty?: number;
  /** δ, the word LM's weight; default: the models package's CTC_BEAM_WORD_LM_WEIGHT. */
  wordLmWeight?: number;
  /** Seconds of faint noise after the audio; default: the models package's RECOGNIZER_TAIL_PADDING_SECONDS. */
  tailPadding?: number;
}

/** `specstream transcribe`: options are parsed here; the work (and tfjs) loads only when it runs. */
export function addTranscribeCommand(program: Command, io: CliIo, done: (code: number) => void): void {
  program
    .command('transcribe')
    .description(
      'Transcribe speech with the streaming CTC recognizer: the text grows on stderr while the audio ' +
        'is read (on a terminal), and the final text goes to stdout. Audio is encoded a chunk at a time ' +
        'as it arrives, so a pipe from a microphone (e.g. `arecord -f S16_LE -r 16000 -c 1 -t raw`) works.',
    )
    .argument(
      '<input>',
      'a WAV file (PCM or float, any rate: resampled to 16 kHz, channels averaged), or - for raw PCM on ' +
        `stdin: s16le, ${DEFAULT_STDIN_RATE} Hz, mono unless --format/--rate say otherwise`,
    )
    .option(
      '--model <dir>',
      'recognizer folder (config.json with model_type specstream-ctc, and model.safetensors or the weight files its "ensemble" lists)',
      DEFAULT_RECOGNIZER,
    )
    .option(
      '--chunk-ms <ms>',
      'audio per encoder call, a positive multiple of 10 ms (the log-mel hop): lower gives text sooner, higher is cheaper',
      multipleOf(10),
      DEFAULT_CHUNK_MS,
    )
    .option(
      '--beam <width>',
      'CTC prefix beam search of this width, with the character LM (--lm) when there is one; 0: greedy ' +
        "decoding (each frame's best label: no LM, and the partial text never changes once shown)",
      integerIn(0, 1024),
      DEFAULT_BEAM,
    )
    .option(
      '--lm <file|none>',
      "text the beam search's character and word LMs are trained on at start (one sentence per line; ~0.9 s for " +
        "1.2 MB); default: the recognizer folder's lm-text.txt (config.json may name another), if it has " +
        `one; ${NO_LM}: no LM`,
    )
    .option(
      '--oov-penalty <γ>',
      "log-score the beam search takes per word that is not in the LM's text (checked as it is " +
        'spelled); 0 lets new words through as freely as known ones (default: the tuned one)',
      numberWhere((n) => n >= 0, 'a number >= 0'),
    )
    .option(
      '--word-lm-weight <δ>',
      'weight of the word trigram LM trained beside the character LM on the same text, which scores ' +
        'each word the beam spells given the two before it; 0: the character LM alone (default: the tuned one)',
      numberWhere((n) => n >= 0, 'a number >= 0'),
    )
    .option(
      '--tail-padding <seconds>',
      'faint noise fed to the recognizer after the audio ends, so that a word cut off by the end of ' +
        `the audio is still emitted; 0: none (default: ${DEFAULT_TAIL_PADDING_SECONDS})`,
      numberWhere((n) => n >= 0 && n <= 10, 'a number of seconds from 0 to 10'),
    )
    .option(
      '--json',
      'NDJSON on stdout: one {"type":"partial",text,audioSeconds,latencyMs,elapsedMs} per encoder call, then ' +
        '{"type":"final",text,words:[{word,start,end}],audioSeconds,elapsedMs} (times in seconds of audio)',
      false,
    )
    .option(
      '--rate <hz>',
      `sample rate of raw PCM on stdin (default ${DEFAULT_STDIN_RATE})`,
      integerIn(1, 192000),
    )
    .addOption(
      new Option('--format <format>', 'sample encoding of raw PCM on stdin (default s16le)').choices(
        PCM_FORMAT_CHOICES,
      ),
    )
    .addOption(backendOption())
    .addHelpText('after', `\n${EXIT_CODES_HELP}`)
    .action(async (input: string, flags: TranscribeFlags) => {
      const { runTranscribe } = await import('./transcribe-run.js');
      done(await runTranscribe(input, flags, io));
    });
}
