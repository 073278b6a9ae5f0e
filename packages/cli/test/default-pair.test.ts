import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_DRAFT, DEFAULT_TARGET, EXIT } from '../src/index.js';
import { runCli } from './helpers.js';

const shipped =
  existsSync(join(DEFAULT_TARGET, 'config.json')) && existsSync(join(DEFAULT_DRAFT, 'config.json'));

// The pair in models/ is what `npm run generate` runs: no flags at all but a backend and a length.
describe.skipIf(!shipped)('the shipped pair, by default', () => {
  it('generates the default prompt speculatively, exactly as the target alone', async () => {
    const args = ['generate', '--backend', 'wasm', '--max-new-tokens', '16'];
    const speculative = await runCli(args);
    expect(speculative.code).toBe(EXIT.ok);
    expect(speculative.stdout.length).toBeGreaterThan(0);
    expect(speculative.stderr).toMatch(
      /^specstream: 16 tokens in .* \| α [\d.]+, [\d.]+ tokens per target pass/,
    );
    const plain = await runCli([...args, '--no-draft']);
    expect(plain.stdout).toBe(speculative.stdout);
  });
});
