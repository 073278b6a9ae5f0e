import { resolve } from 'node:path';
import { initBackend } from '@specstream/core';
import { speechFrameBudget } from '@specstream/models';
import { CliError, EXIT } from '../exit-codes.js';
import { type CliIo, readAll, write } from '../io.js';
import type { SpeakFlags } from './speak.js';
import { checkSpeechPaths, loadSpeech, speechLine, startSpeaker } from './speaker.js';

/**
 * `specstream speak`: reads the text, checks the folder and the output (fast, before tfjs
 * loads), loads the synthesizer and speaks the text into the WAV file. Resolves to the exit code.
 */
export async function runSpeak(textArg: string | undefined, flags: SpeakFlags, io: CliIo): Promise<number> {
  const text = await readText(textArg, io);
  const dir = resolve(flags.model);
  const output = resolve(flags.output);
  await checkSpeechPaths(dir, output);
  await initBackend({ backend: flags.backend });
  const speech = await loadSpeech(dir);
  try {
    if (io.interrupt.aborted) {
      await write(io.stderr, 'specstream: interrupted while loading the synthesizer\n');
      return EXIT.interrupted;
    }
    const symbols = speech.textToIds(text).length;
    if (symbols === 0) throw new CliError(EXIT.usage, 'nothing to speak: the text has no letters or digits');
    const { maxTextTokens } = speech.synthesizer;
    if (symbols > maxTextTokens) {
      throw new CliError(
        EXIT.usage,
        `the text is ${symbols} symbols long once normalised; the model takes at most ${maxTextTokens}`,
      );
    }
    const speaker = startSpeaker(
      speech,
      output,
      speechFrameBudget(speech.config.model, symbols),
      io.interrupt,
    );
    speaker.write(text);
    const stats = await speaker.finish();
    await write(io.stderr, speechLine(stats, 'after the text'));
    if (stats.stoppedBy === undefined) return EXIT.ok;
    if (io.interrupt.aborted) return EXIT.interrupted;
    throw stats.stoppedBy;
  } finally {
    speech.dispose();
  }
}

/** The argument, else stdin (also for -) unless it is a terminal. */
async function readText(textArg: string | undefined, io: CliIo): Promise<string> {
  if (textArg !== undefined && textArg !== '-') return textArg;
  if (io.stdinIsTty && textArg === undefined) {
    throw new CliError(EXIT.usage, 'no text: pass it as an argument or on stdin');
  }
  return readAll(io.stdin);
}
