import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { FIXTURES_DIR } from '../../../test-support/fixtures.js';
import { type CliIo, main } from '../src/index.js';

/**
 * Reference files made by HF transformers; shared/ sits beside the checkout, on CI too.
 * SPECSTREAM_FIXTURES names another set laid out the same way (test-support/fixtures.ts).
 */
export const FIXTURES = FIXTURES_DIR;
export const TOKENIZER_JSON = join(FIXTURES, 'tokenizer', 'tokenizer.json');
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Text in the style of the tokenizer's training data (Debian's licence texts). */
export const PROMPT = 'Permission is hereby granted, free of charge, to any person obtaining a copy';

/** `specstream generate PROMPT` on one backend and model, without a draft, then `extra`. */
export function plainGenerate(backend: string, model: string, ...extra: string[]): string[] {
  return ['generate', PROMPT, '--backend', backend, '--model', model, '--no-draft', ...extra];
}

export function fixtureConfig(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(FIXTURES, name, 'config.json'), 'utf8'));
}

const made: string[] = [];

/** Removes every folder modelFolder made. */
export function removeModelFolders(): void {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
}

export interface FolderOptions {
  /** Fields replacing the fixture's config.json fields (the config is then a copy). */
  config?: Record<string, unknown>;
  /** A tokenizer.json of its own (written as given), or false for none. Default: the shared fixture's. */
  tokenizer?: object | false;
  /** Leave config.json out. */
  noConfig?: boolean;
}

/** A model folder in the Hugging Face layout, from a fixture: links where the files are used as they are. */
export function modelFolder(fixture: string, options: FolderOptions = {}): string {
  const dir = mkdtempSync(join(tmpdir(), `specstream-cli-${fixture}-`));
  made.push(dir);
  symlinkSync(join(FIXTURES, fixture, 'model.safetensors'), join(dir, 'model.safetensors'));
  if (options.config !== undefined) {
    const config = { ...fixtureConfig(fixture), ...options.config };
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  } else if (!options.noConfig) {
    symlinkSync(join(FIXTURES, fixture, 'config.json'), join(dir, 'config.json'));
  }
  if (options.tokenizer === undefined) copyFileSync(TOKENIZER_JSON, join(dir, 'tokenizer.json'));
  else if (options.tokenizer !== false)
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(options.tokenizer));
  return dir;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  stdin?: string;
  /** Make stderr look like a terminal (the progress bar draws only there). */
  stderrTty?: boolean;
  /** Called with each stdout write, and the controller that stands for Ctrl-C. */
  onStdout?: (text: string, interrupt: AbortController) => void;
  /** The environment the command sees (default: empty, so no home and no cache files). */
  env?: NodeJS.ProcessEnv;
}

/** Runs the CLI in this process (no process start, no transpile): the way most tests call it. */
export async function runCli(args: readonly string[], options: RunOptions = {}): Promise<CliResult> {
  const interrupt = new AbortController();
  const stdout = new PassThrough();
  const stderr = Object.assign(new PassThrough(), { isTTY: options.stderrTty === true, columns: 100 });
  let out = '';
  let err = '';
  stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString('utf8');
    options.onStdout?.(chunk.toString('utf8'), interrupt);
  });
  stderr.on('data', (chunk: Buffer) => {
    err += chunk.toString('utf8');
  });
  const io: CliIo = {
    stdout,
    stderr,
    stdin: Readable.from(options.stdin === undefined ? [] : [Buffer.from(options.stdin)]),
    stdoutIsTty: false,
    stdinIsTty: options.stdin === undefined,
    stderrIsTty: options.stderrTty === true,
    env: options.env ?? {},
    interrupt: interrupt.signal,
  };
  const code = await main(args, io);
  // Unawaited writes may still be on their way through the PassThrough.
  await new Promise((resolve) => setImmediate(resolve));
  return { code, stdout: out, stderr: err };
}

export interface Spawned {
  child: ReturnType<typeof spawn>;
  done: Promise<CliResult>;
}

/** Runs the CLI's sources in a child process: for what needs a real process (stdin, signals). */
export function spawnCli(args: readonly string[], stdin?: string): Spawned {
  const child = spawn(
    process.execPath,
    ['--conditions=@specstream/source', '--import', 'tsx', 'packages/cli/src/bin.ts', ...args],
    { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8');
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  child.stdin.end(stdin);
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
  return { child, done };
}

/** stdout's JSON lines, parsed. */
export function jsonLines(stdout: string): Record<string, unknown>[] {
  return stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line));
}

/** A failure's stderr: exactly one line, the CLI's own, no stack trace. */
export function expectOneLine(stderr: string): string {
  const lines = stderr.split('\n').filter((line) => line !== '');
  if (lines.length !== 1) throw new Error(`expected one line on stderr, got ${lines.length}:\n${stderr}`);
  return lines[0];
}
