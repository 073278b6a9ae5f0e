import { stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { loadSpeechSynthesizer, type SpeechSynthesizer } from '@specstream/models';
import { createTextFeed, speakText, type WavFileProgress, wavFileStream } from '@specstream/streaming';
import { CliError, EXIT } from '../exit-codes.js';
import { unsupportedOnError } from '../generate/folders.js';

/**
 * What `speak` and `generate --speak` share: the synthesizer folder's checks and load, and a
 * speaker that turns text written to it (all at once, or as an LM writes it) into a WAV file
 * through streaming's speakText and wavFileStream, timing the first audio.
 */

/** Fast checks before tfjs loads: the folder and its config.json (exit 3), the output's folder (exit 2). */
export async function checkSpeechPaths(dir: string, output: string): Promise<void> {
  const info = await stat(dir).catch(() => undefined);
  if (info === undefined) {
    throw new CliError(EXIT.missingModel, `synthesizer folder ${dir} does not exist (pass --model DIR)`);
  }
  if (!info.isDirectory()) throw new CliError(EXIT.missingModel, `synthesizer folder ${dir} is not a folder`);
  if (!(await stat(join(dir, 'config.json')).catch(() => undefined))?.isFile()) {
    throw new CliError(EXIT.missingModel, `synthesizer folder ${dir} has no config.json`);
  }
  const folder = dirname(output);
  if (!(await stat(folder).catch(() => undefined))?.isDirectory()) {
    throw new CliError(EXIT.usage, `the folder of ${output} (${folder}) does not exist`);
  }
}

/** A folder the synthesizer loader refuses (config, tensors) exits 4, as generate does for LMs. */
export function loadSpeech(dir: string): Promise<SpeechSynthesizer> {
  return unsupportedOnError(() => loadSpeechSynthesizer(dir), `synthesizer folder ${dir}: `);
}

export interface SpeechStats {
  output: string;
  sampleRate: number;
  audioSeconds: number;
  /** From the first text written to the first audio on disk; undefined when there was none. */
  firstAudioMs?: number;
  /** From the first text written to the file's completion. */
  elapsedMs: number;
  /** Why the speech stopped early (an interrupt, a model error); the file holds what was made. */
  stoppedBy?: unknown;
}

export interface Speaker {
  /** Text as it is written; '' is ignored. */
  write(text: string): void;
  /** No more text: resolves once the file is complete (or, after an interrupt, finalised). */
  finish(): Promise<SpeechStats>;
  /** Abandons the speech at once (the caller failed): states freed, the file finalised in the background. */
  cancel(): void;
}

/**
 * Starts speaking into `output`: text → speakText (normalised, synthesized, vocoded) →
 * wavFileStream. `interrupt` stops the synthesis at once, even of text that has ended; the file
 * keeps the audio made so far, its header finalised before `finish` resolves.
 */
export function startSpeaker(
  speech: SpeechSynthesizer,
  output: string,
  maxFrames: number,
  interrupt: AbortSignal,
): Speaker {
  const feed = createTextFeed();
  let firstText: number | undefined;
  let firstAudio: number | undefined;
  let last: WavFileProgress | undefined;
  const audio = feed.text.pipe(
    speakText(speech, { maxFrames, signal: interrupt }),
    wavFileStream(output, speech.synthesizer.sampleRate),
  );
  // Resolves (never rejects) once the file is closed: with the error that stopped it, if any.
  let subscription: { unsubscribe(): void } | undefined;
  const ended = new Promise<unknown>((resolve) => {
    subscription = audio.subscribe({
      next(progress) {
        if (!progress.done) firstAudio ??= performance.now();
        last = progress;
      },
      error: resolve,
      complete: () => resolve(undefined),
    });
  });
  return {
    write(text) {
      if (text === '') return;
      firstText ??= performance.now();
      feed.write(text);
    },
    async finish() {
      feed.end();
      const stoppedBy = await ended;
      const start = firstText ?? performance.now();
      return {
        output,
        sampleRate: speech.synthesizer.sampleRate,
        audioSeconds: last?.durationSeconds ?? 0,
        firstAudioMs: firstAudio === undefined ? undefined : firstAudio - start,
        elapsedMs: performance.now() - start,
        stoppedBy,
      };
    },
    cancel: () => subscription?.unsubscribe(),
  };
}

/** One line on stderr: what was written, how soon audio came and how fast it was made. */
export function speechLine(stats: SpeechStats, firstAudioAfter: string): string {
  const fixed = (x: number, digits: number) => (Number.isFinite(x) ? x.toFixed(digits) : '-');
  const parts = [
    `wrote ${stats.output}: ${fixed(stats.audioSeconds, 2)} s of audio at ${stats.sampleRate} Hz`,
  ];
  if (stats.firstAudioMs !== undefined)
    parts.push(`first audio ${fixed(stats.firstAudioMs, 0)} ms ${firstAudioAfter}`);
  if (stats.audioSeconds > 0) {
    parts.push(
      `real-time factor ${fixed(stats.elapsedMs / 1000 / stats.audioSeconds, 2)} (${fixed(stats.elapsedMs / 1000, 2)} s)`,
    );
  }
  return `specstream: ${parts.join(' | ')}\n`;
}
