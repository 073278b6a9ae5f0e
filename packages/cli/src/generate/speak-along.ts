import { resolve } from 'node:path';
import { speechFrameBudget } from '@specstream/models';
import type { GenerateFlags } from '../commands/generate.js';
import {
  checkSpeechPaths,
  loadSpeech,
  type SpeechStats,
  speechLine,
  startSpeaker,
} from '../commands/speaker.js';
import { EXIT } from '../exit-codes.js';
import { type CliIo, write } from '../io.js';
import { oneLine } from '../main.js';

/**
 * `generate --speak out.wav`: the speech synthesizer beside the LM. Each token's text goes to the
 * speaker as the target accepts it, so speech starts while the text is still being generated
 * (speakText settles it word by word); the WAV file grows as audio is made and its header is
 * finalised at the end.
 */
export interface SpeakAlong {
  /** A token's text, as the user sees it. */
  write(text: string): void;
  /** The text is complete: waits for the speech, prints its line; EXIT.failure if it failed. */
  finish(io: CliIo): Promise<number>;
  /** Stops the speech if it still runs (generation failed), then frees the synthesizer. */
  dispose(): void;
}

export interface SpeakAlongPaths {
  dir: string;
  output: string;
}

/** Before the backend starts and any model loads: the synthesizer folder and the output's folder. */
export async function checkSpeakAlong(flags: GenerateFlags): Promise<SpeakAlongPaths | undefined> {
  if (flags.speak === undefined) return undefined;
  const paths = { dir: resolve(flags.speechModel), output: resolve(flags.speak) };
  await checkSpeechPaths(paths.dir, paths.output);
  return paths;
}

/** Loads the synthesizer and starts the speaker (the backend is up). */
export async function startSpeakAlong(paths: SpeakAlongPaths, io: CliIo): Promise<SpeakAlong> {
  const speech = await loadSpeech(paths.dir);
  // The text's length is not known in advance: room for as much as the model can read.
  const { model } = speech.config;
  const speaker = startSpeaker(
    speech,
    paths.output,
    speechFrameBudget(model, model.maxTextTokens),
    io.interrupt,
  );
  return {
    write: (text) => speaker.write(text),
    async finish(cliIo) {
      const stats: SpeechStats = await speaker.finish();
      await write(cliIo.stderr, speechLine(stats, 'after the first text token'));
      if (stats.stoppedBy === undefined || cliIo.interrupt.aborted) return EXIT.ok;
      await write(cliIo.stderr, `specstream: speech stopped early: ${oneLine(stats.stoppedBy)}\n`);
      return EXIT.failure;
    },
    dispose() {
      speaker.cancel(); // a no-op after finish
      speech.dispose();
    },
  };
}
