import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { InvalidArgumentError, initBackend } from '@specstream/core';
import {
  type CtcDecoder,
  loadCharNgramLm,
  loadSpeechRecognizer,
  loadSpeechRecognizerLm,
  type SpeechRecognizerConfig,
} from '@specstream/models';
import {
  type AudioSource,
  type CtcTranscriptEvent,
  ctcTranscription,
  pcmReadableSource,
  resample,
  wavFileSource,
} from '@specstream/streaming';
import { CliError, EXIT } from '../exit-codes.js';
import { unsupportedOnError } from '../generate/folders.js';
import { type CliIo, write } from '../io.js';
import { DEFAULT_STDIN_RATE, NO_LM, type TranscribeFlags } from './transcribe.js';

/** ctcTranscription's events (rxjs is no dependency of this package). */
type TranscriptEvents = ReturnType<ReturnType<typeof ctcTranscription>>;

/** Audio to transcribe and what to call it in messages. */
interface Input extends AudioSource {
  name: string;
}

/**
 * `specstream transcribe`: checks the folder and the input (fast, before tfjs loads), loads the
 * recognizer, streams the audio through it. Resolves to the exit code.
 */
export async function runTranscribe(input: string, flags: TranscribeFlags, io: CliIo): Promise<number> {
  const dir = resolve(flags.model);
  await checkRecognizerFolder(dir);
  await checkLmFlag(flags);
  const audio = await openInput(input, flags, io);
  await initBackend({ backend: flags.backend });
  const recognizer = await unsupportedOnError(() => loadSpeechRecognizer(dir), `recognizer folder ${dir}: `);
  try {
    if (io.interrupt.aborted) {
      await write(io.stderr, 'specstream: interrupted while loading the recognizer\n');
      return EXIT.interrupted;
    }
    const { sampleRate } = recognizer.config;
    const chunkFrames = chunkFramesOf(flags.chunkMs, recognizer.config);
    const decoder = await decoderOf(flags, dir, recognizer.config);
    const samples =
      audio.sampleRate === sampleRate
        ? audio.samples
        : audio.samples.pipe(resample(audio.sampleRate, sampleRate));
    return await printTranscript(
      samples.pipe(
        ctcTranscription(recognizer, { chunkFrames, decoder, tailPaddingSeconds: flags.tailPadding }),
      ),
      audio.name,
      flags,
      io,
    );
  } finally {
    recognizer.dispose();
  }
}

async function checkRecognizerFolder(dir: string): Promise<void> {
  const info = await stat(dir).catch(() => undefined);
  if (info === undefined) {
    throw new CliError(EXIT.missingModel, `recognizer folder ${dir} does not exist (pass --model DIR)`);
  }
  if (!info.isDirectory()) throw new CliError(EXIT.missingModel, `recognizer folder ${dir} is not a folder`);
  if (!(await stat(join(dir, 'config.json')).catch(() => undefined))?.isFile()) {
    throw new CliError(EXIT.missingModel, `recognizer folder ${dir} has no config.json`);
  }
}

/** An --lm file must exist (checked before tfjs loads); with --beam 0 there is no beam search to use it. */
async function checkLmFlag(flags: TranscribeFlags): Promise<void> {
  if (flags.oovPenalty !== undefined && (flags.beam === 0 || flags.lm === NO_LM)) {
    throw new CliError(
      EXIT.usage,
      "--oov-penalty needs a beam search with an LM: it counts the words that are not in the LM's text",
    );
  }
  if (flags.wordLmWeight !== undefined && (flags.beam === 0 || flags.lm === NO_LM)) {
    throw new CliError(
      EXIT.usage,
      "--word-lm-weight needs a beam search with an LM: the word LM is trained on the LM's text",
    );
  }
  if (flags.lm === undefined || flags.lm === NO_LM) return;
  if (flags.beam === 0) {
    throw new CliError(EXIT.usage, '--lm needs a beam search: --beam 0 decodes greedily, without an LM');
  }
  if (!(await stat(flags.lm).catch(() => undefined))?.isFile()) {
    throw new CliError(EXIT.usage, `LM text file ${flags.lm} does not exist`);
  }
}

/** --beam and --lm as a decoder: the LM is trained here, on the file or the folder's LM text. */
async function decoderOf(
  flags: TranscribeFlags,
  dir: string,
  config: SpeechRecognizerConfig,
): Promise<CtcDecoder> {
  if (flags.beam === 0) return 'greedy';
  if (flags.lm === NO_LM) return { beamWidth: flags.beam };
  const lm = await unsupportedOnError(
    () =>
      flags.lm === undefined
        ? loadSpeechRecognizerLm(dir, config)
        : loadCharNgramLm(resolve(flags.lm), config.vocabulary),
    `character LM for recognizer folder ${dir}: `,
  );
  for (const [flag, value] of [
    ['--oov-penalty', flags.oovPenalty],
    ['--word-lm-weight', flags.wordLmWeight],
  ] as const) {
    if (lm === undefined && value !== undefined) {
      throw new CliError(
        EXIT.usage,
        `${flag} needs an LM, and recognizer folder ${dir} has no LM text (pass --lm FILE)`,
      );
    }
  }
  return { beamWidth: flags.beam, lm, oovPenalty: flags.oovPenalty, wordLmWeight: flags.wordLmWeight };
}

/** A WAV file, decoded whole (so a bad one fails before the model loads), or raw PCM from stdin. */
async function openInput(input: string, flags: TranscribeFlags, io: CliIo): Promise<Input> {
  if (input === '-') {
    const source = pcmReadableSource(io.stdin, {
      format: flags.format ?? 's16le',
      sampleRate: flags.rate ?? DEFAULT_STDIN_RATE,
    });
    return { ...source, name: 'stdin' };
  }
  if (flags.rate !== undefined || flags.format !== undefined) {
    throw new CliError(
      EXIT.usage,
      `--rate and --format describe raw PCM on stdin (input -); the WAV file ${input} has its own header`,
    );
  }
  const info = await stat(input).catch(() => undefined);
  if (info === undefined) throw new CliError(EXIT.usage, `input file ${input} does not exist`);
  if (!info.isFile()) throw new CliError(EXIT.usage, `input ${input} is not a file`);
  try {
    return { ...(await wavFileSource(input)), name: input };
  } catch (error) {
    if (error instanceof InvalidArgumentError) throw new CliError(EXIT.usage, error.message);
    throw error;
  }
}

/** --chunk-ms in log-mel frames of the model's hop (10 ms for the shipped model). */
function chunkFramesOf(chunkMs: number, config: SpeechRecognizerConfig): number {
  const frames = (chunkMs * config.sampleRate) / (1000 * config.hop);
  if (!Number.isInteger(frames)) {
    const frameMs = (1000 * config.hop) / config.sampleRate;
    throw new CliError(
      EXIT.usage,
      `--chunk-ms ${chunkMs} is not a whole number of the model's ${frameMs} ms frames`,
    );
  }
  return frames;
}

/**
 * Subscribes to the events and prints them: NDJSON on stdout with --json; otherwise the growing
 * text on stderr (a terminal only) and the final text on stdout. Ctrl-C unsubscribes (freeing
 * the encoder's tensors), prints the text so far and exits 130.
 */
function printTranscript(
  events: TranscriptEvents,
  inputName: string,
  flags: TranscribeFlags,
  io: CliIo,
): Promise<number> {
  const started = performance.now();
  const status = statusLine(io);
  let writes = Promise.resolve();
  // Writes in order, each once the stream took the one before (events arrive faster than a pipe drains).
  const emit = (stream: CliIo['stdout'], text: string) => {
    writes = writes.then(() => write(stream, text));
  };
  return new Promise<number>((done, fail) => {
    let text = '';
    let subscription: ReturnType<TranscriptEvents['subscribe']> | undefined;
    let settled = false;
    const settle = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      io.interrupt.removeEventListener('abort', onInterrupt);
      writes.then(outcome, fail);
    };
    const elapsedMs = () => round(performance.now() - started, 1);
    function onInterrupt() {
      subscription?.unsubscribe();
      emit(io.stderr, status.clear());
      if (!flags.json) emit(io.stdout, `${text}\n`);
      emit(io.stderr, 'specstream: interrupted\n');
      settle(() => done(EXIT.interrupted));
    }
    io.interrupt.addEventListener('abort', onInterrupt, { once: true });
    subscription = events.subscribe({
      next(event: CtcTranscriptEvent) {
        text = event.text;
        if (flags.json) {
          const timed = event.type === 'partial' ? { ...event, latencyMs: round(event.latencyMs, 1) } : event;
          emit(io.stdout, `${JSON.stringify({ ...timed, elapsedMs: elapsedMs() })}\n`);
        } else if (event.type === 'partial') {
          emit(io.stderr, status.show(event.text));
        } else {
          emit(io.stderr, status.clear());
          emit(io.stdout, `${event.text}\n`);
        }
      },
      error(error: unknown) {
        emit(io.stderr, status.clear());
        // Bad audio (cut inside a sample, too short for a frame, NaN) is the input's fault.
        const failure =
          error instanceof InvalidArgumentError
            ? new CliError(EXIT.usage, `${inputName}: ${error.message}`)
            : error;
        settle(() => fail(failure));
      },
      complete: () => settle(() => done(EXIT.ok)),
    });
    if (io.interrupt.aborted) onInterrupt();
  });
}

/** The growing text on one terminal line of stderr, its tail when it is longer than the line. */
function statusLine(io: CliIo): { show(text: string): string; clear(): string } {
  let drawn = false;
  const width = Math.max(20, ((io.stderr as { columns?: number }).columns ?? 80) - 1);
  return {
    show(text) {
      if (!io.stderrIsTty) return '';
      drawn = true;
      return `\r\x1b[K${text.length > width ? `…${text.slice(text.length - width + 1)}` : text}`;
    },
    clear() {
      if (!drawn) return '';
      drawn = false;
      return '\r\x1b[K';
    },
  };
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}
