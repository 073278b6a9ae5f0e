import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../src/index.js';
import {
  fixtureConfig,
  modelFolder,
  PROMPT,
  REPO_ROOT,
  removeModelFolders,
  runCli,
  spawnCli,
} from './helpers.js';

// What needs a real process: stdin, a real SIGINT, the bin launcher, the bench's child process.
afterAll(removeModelFolders);

let target: string;
beforeAll(() => {
  target = modelFolder('llama');
});

describe('the specstream process', () => {
  it('reads the prompt from stdin when none is given', async () => {
    const args = ['--backend', 'cpu', '--model', target, '--no-draft', '--max-new-tokens', '24'];
    const fromArgument = await runCli(['generate', PROMPT, ...args]);
    // A trailing newline from the shell is not part of the prompt.
    const fromStdin = await spawnCli(['generate', ...args], `${PROMPT}\n`).done;
    expect(fromStdin.code).toBe(EXIT.ok);
    expect(fromStdin.stdout).toBe(fromArgument.stdout);
    expect(fromStdin.stderr).toMatch(/^specstream: 24 tokens in/);
  });

  it('Ctrl-C mid-generation exits 130 and still prints the stats line', async () => {
    // Room for a long run, so that the signal surely lands while it is generating.
    const context = 4 * 1024 + (fixtureConfig('llama').max_position_embeddings as number);
    const roomy = modelFolder('llama', { config: { max_position_embeddings: context } });
    const { child, done } = spawnCli([
      'generate',
      PROMPT,
      '--backend',
      'cpu',
      '--model',
      roomy,
      '--draft',
      modelFolder('qwen2'),
      '--ignore-eos',
      '--max-new-tokens',
      String(4 * 1024),
    ]);
    child.stdout?.once('data', () => child.kill('SIGINT'));
    const result = await done;
    expect(result.code).toBe(EXIT.interrupted);
    expect(result.stderr).toMatch(
      /^specstream: interrupted after \d+ tokens in [\d.]+ s, [\d.]+ tokens\/s \| α [\d.]+/m,
    );
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('the bin runs the sources through tsx when asked (as it does before a build)', async () => {
    const child = spawn(process.execPath, ['packages/cli/bin/specstream.js', 'generate', '--help'], {
      cwd: REPO_ROOT,
      env: { ...process.env, SPECSTREAM_CLI_SOURCE: '1' },
    });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    const code = await new Promise((resolve) => child.on('close', resolve));
    expect(code).toBe(EXIT.ok);
    expect(stdout).toMatch(/Usage: specstream generate/);
  });

  it('bench forwards its arguments to scripts/bench.ts', async () => {
    // No suite named: the bench starts the backend asked for and runs nothing.
    const result = await runCli(['bench', '--backends', 'cpu', '--only', 'none']);
    expect(result.code).toBe(EXIT.ok);
    expect(result.stdout).toMatch(/== cpu/);
    const bad = await runCli(['bench', '--no-such-bench-flag']);
    expect(bad.code).not.toBe(EXIT.ok);
    expect(bad.stderr).toMatch(/no-such-bench-flag/);
  });
});
