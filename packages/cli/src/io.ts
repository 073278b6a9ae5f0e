import type { Readable, Writable } from 'node:stream';

/**
 * Everything the commands touch outside themselves. The bin passes the process's own;
 * tests pass in-memory streams and their own interrupt signal.
 */
export interface CliIo {
  stdout: Writable;
  stderr: Writable;
  stdin: Readable;
  /** On a terminal the text gets a final newline, so the shell prompt does not follow it. */
  stdoutIsTty: boolean;
  /** A prompt is read from stdin only when it is not a terminal. */
  stdinIsTty: boolean;
  /** The progress bar draws only on a terminal. */
  stderrIsTty: boolean;
  env: NodeJS.ProcessEnv;
  /** Aborted on Ctrl-C: generation stops within one step and the stats line is still printed. */
  interrupt: AbortSignal;
}

/** Writes and resolves once the stream has taken the data (so nothing is lost at exit). */
export function write(stream: Writable, text: string): Promise<void> {
  if (text === '') return Promise.resolve();
  return new Promise((resolve, reject) => {
    stream.write(text, (error) => (error ? reject(error) : resolve()));
  });
}

export async function readAll(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString('utf8');
}
