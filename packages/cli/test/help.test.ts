import { BACKEND_NAMES } from '@specstream/core';
import { describe, expect, it } from 'vitest';
import { BACKEND_CHOICES } from '../src/commands/generate.js';
import { EXIT } from '../src/index.js';
import { expectOneLine, runCli } from './helpers.js';

describe('help', () => {
  it.each([
    [['--help'], /Usage: specstream \[options\] \[command\][\s\S]*generate[\s\S]*bench[\s\S]*Exit codes:/],
    [['generate', '--help'], /Usage: specstream generate[\s\S]*--draft <dir>[\s\S]*--no-draft[\s\S]*130/],
    [['bench', '--help'], /Usage: specstream bench[\s\S]*--backends/],
    [['help', 'generate'], /Usage: specstream generate/],
  ])('%j prints usage to stdout and exits 0', async (args, pattern) => {
    const result = await runCli(args);
    expect(result.code).toBe(EXIT.ok);
    expect(result.stdout).toMatch(pattern);
    expect(result.stderr).toBe('');
  });

  it('no command is a usage error (help on stderr)', async () => {
    const result = await runCli([]);
    expect(result.code).toBe(EXIT.usage);
    expect(result.stderr).toMatch(/Usage: specstream/);
  });

  it('offers exactly the backends core knows, and auto', () => {
    expect([...BACKEND_CHOICES].sort()).toEqual(['auto', ...BACKEND_NAMES].sort());
  });
});

describe('bad flags and values exit 2 with one line', () => {
  it.each([
    ['--k', '-1'],
    ['--k', '0'],
    ['--k', '65'],
    ['--k', '2.5'],
    ['--temperature', 'abc'],
    ['--temperature', '-1'],
    ['--temperature', ''],
    ['--top-p', '0'],
    ['--top-p', '1.5'],
    ['--top-k', '-3'],
    ['--seed', '0x10'],
    ['--max-new-tokens', '0'],
    ['--backend', 'nosuch'],
    ['--stop', ''],
  ])('generate %s %j', async (flag, value) => {
    const result = await runCli(['generate', 'hi', flag, value]);
    expect(result.code).toBe(EXIT.usage);
    expect(expectOneLine(result.stderr)).toMatch(/^error: option '--[a-z-]+ <\w+>' argument '.*' is invalid/);
    expect(result.stdout).toBe('');
  });

  it.each([
    [['generate', '--nope'], /unknown option '--nope'/],
    [['nope'], /unknown command 'nope'/],
    [['generate', 'a', 'b'], /too many arguments/],
    [['generate', 'hi', '--k'], /argument missing/],
    [['generate', 'hi', '--no-draft', '--prompt-lookup'], /cannot be used with/],
    [['generate', 'hi', '--no-draft', '--k', '3'], /--k needs a drafter/],
    [['generate', 'hi', '--no-draft', '--compare'], /--compare/],
  ])('%j', async (args, pattern) => {
    const result = await runCli(args);
    expect(result.code).toBe(EXIT.usage);
    expect(expectOneLine(result.stderr)).toMatch(pattern);
  });
});
