import { Command, CommanderError } from 'commander';
import { addBenchCommand } from './commands/bench.js';
import { addConvertCommand } from './commands/convert.js';
import { addGenerateCommand } from './commands/generate.js';
import { addServeCommand } from './commands/serve.js';
import { addSpeakCommand } from './commands/speak.js';
import { addTranscribeCommand } from './commands/transcribe.js';
import { CliError, EXIT, EXIT_CODES_HELP } from './exit-codes.js';
import type { CliIo } from './io.js';

/**
 * Runs one command line (without node and the script) and resolves to its exit code. Never
 * exits the process and never throws: every failure becomes a one-line message on stderr.
 */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  let code: number = EXIT.ok;
  const done = (c: number) => {
    code = c;
  };
  const program = new Command('specstream')
    .description('Speculative decoding and streaming generation on TensorFlow.js.')
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    })
    .addHelpText('after', `\n${EXIT_CODES_HELP}`);
  addGenerateCommand(program, io, done);
  addBenchCommand(program, io, done);
  addConvertCommand(program, io, done);
  addServeCommand(program, io, done);
  addSpeakCommand(program, io, done);
  addTranscribeCommand(program, io, done);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return code;
  } catch (error) {
    return report(error, io);
  }
}

function report(error: unknown, io: CliIo): number {
  if (error instanceof CommanderError) {
    // commander has printed its message (or the help) already; help asked for exits 0.
    return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
  }
  if (error instanceof CliError) {
    io.stderr.write(`specstream: ${error.message}\n`);
    return error.code;
  }
  if (io.env.SPECSTREAM_DEBUG) io.stderr.write(`${(error as Error)?.stack ?? String(error)}\n`);
  io.stderr.write(`specstream: ${oneLine(error)}\n`);
  return EXIT.failure;
}

/** The first line of an error's message: native and tfjs errors can run to paragraphs. */
export function oneLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0].trim() || (error instanceof Error ? error.name : 'unknown error');
}
