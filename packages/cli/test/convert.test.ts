import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '@specstream/core';
import { GGUF_EXPORT_TYPES, loadCausalLm, openGguf } from '@specstream/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GGUF_TYPE_CHOICES } from '../src/commands/convert.js';
import { EXIT } from '../src/index.js';
import {
  expectOneLine,
  FIXTURES,
  fixtureConfig,
  modelFolder,
  removeModelFolders,
  runCli,
  TOKENIZER_JSON,
} from './helpers.js';

let out: string;
beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  out = mkdtempSync(join(tmpdir(), 'specstream-cli-convert-'));
});
afterAll(() => {
  removeModelFolders();
  rmSync(out, { recursive: true, force: true });
});

const convert = (...args: string[]) => runCli(['convert', ...args]);

describe('convert', () => {
  it('offers exactly the types the exporter writes', () => {
    expect([...GGUF_TYPE_CHOICES]).toEqual([...GGUF_EXPORT_TYPES]);
  });

  it.each(GGUF_TYPE_CHOICES)('writes a --type %s GGUF file that loadModel reads back', async (type) => {
    const path = join(out, `llama-${type}.gguf`);
    const result = await convert(modelFolder('llama'), path, '--type', type);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(EXIT.ok);
    expect(result.stdout).toMatch(new RegExp(`^wrote .*llama-${type}\\.gguf: llama, ${type}, \\d+ tensors`));
    const file = await openGguf(path);
    expect(file.metadata.get('general.architecture')?.value).toBe('llama');
    expect(file.metadata.get('llama.block_count')?.value).toBe(fixtureConfig('llama').num_hidden_layers);
    await file.close();
    const model = await loadCausalLm(path);
    expect(model.vocabSize).toBe(fixtureConfig('llama').vocab_size);
    model.dispose();
    // Nothing but the output is left beside it.
    expect(readdirSync(out).filter((f) => f.includes('partial'))).toEqual([]);
  });

  it('defaults to f16, and --tokenizer embeds a tokenizer for a folder without one', async () => {
    const path = join(out, 'qwen2-default.gguf');
    const folder = modelFolder('qwen2', { tokenizer: false });
    const result = await convert(folder, path, '--tokenizer', TOKENIZER_JSON);
    expect(result.code).toBe(EXIT.ok);
    expect(result.stdout).toMatch(/qwen2, f16/);
  });

  it('refuses to overwrite without --force', async () => {
    const path = join(out, 'exists.gguf');
    writeFileSync(path, 'not yet');
    const refused = await convert(modelFolder('llama'), path);
    expect(refused.code).toBe(EXIT.usage);
    expect(expectOneLine(refused.stderr)).toMatch(/exists\.gguf exists \(pass --force to overwrite it\)$/);
    const forced = await convert(modelFolder('llama'), path, '--force');
    expect(forced.code).toBe(EXIT.ok);
  });
});

describe('convert: bad arguments and folders', () => {
  it.each([
    [
      ['--type', 'q5_k'],
      /^error: option '--type <type>' argument 'q5_k' is invalid. Allowed choices are f32, f16, q8_0, q4_0\./,
    ],
    [['--qqqqqq'], /^error: unknown option '--qqqqqq'$/],
  ])('%j exits 2 with one line', async (flags, pattern) => {
    const result = await convert(modelFolder('llama'), join(out, 'x.gguf'), ...flags);
    expect(result.code).toBe(EXIT.usage);
    expect(expectOneLine(result.stderr)).toMatch(pattern);
    expect(existsSync(join(out, 'x.gguf'))).toBe(false);
  });

  it('a missing argument exits 2', async () => {
    const result = await convert(modelFolder('llama'));
    expect(result.code).toBe(EXIT.usage);
    expect(expectOneLine(result.stderr)).toMatch(/missing required argument 'out'/);
  });

  it('an output folder that does not exist, or a missing --tokenizer file, exits 2', async () => {
    const noDir = await convert(modelFolder('llama'), join(out, 'nope', 'x.gguf'));
    expect(noDir.code).toBe(EXIT.usage);
    expect(expectOneLine(noDir.stderr)).toMatch(/the folder of .*x\.gguf .* does not exist/);
    const noTokenizer = await convert(
      modelFolder('llama'),
      join(out, 'y.gguf'),
      '--tokenizer',
      join(out, 'nope.json'),
    );
    expect(noTokenizer.code).toBe(EXIT.usage);
    expect(expectOneLine(noTokenizer.stderr)).toMatch(/--tokenizer .*nope\.json does not exist/);
  });

  it('a missing folder or config.json exits 3', async () => {
    const missing = await convert(join(FIXTURES, 'no-such-model'), join(out, 'm.gguf'));
    expect(missing.code).toBe(EXIT.missingModel);
    expect(expectOneLine(missing.stderr)).toMatch(
      /^specstream: model folder .*no-such-model does not exist$/,
    );
    const noConfig = await convert(modelFolder('llama', { noConfig: true }), join(out, 'm.gguf'));
    expect(noConfig.code).toBe(EXIT.missingModel);
    expect(expectOneLine(noConfig.stderr)).toMatch(/has no config\.json$/);
  });

  it.each([
    ['gpt2', { config: { activation_function: 'relu' } }, /GPT-2 activation "relu" has no GGUF equivalent/],
    [
      'whisper',
      {},
      /model_type "whisper" cannot be exported to GGUF; supported: llama, mistral, qwen2, gpt2/,
    ],
    ['llama', { tokenizer: false }, /tokenizer\.json does not exist: a GGUF file carries its tokenizer/],
    ['llama', { config: { hidden_act: 'relu' } }, /hidden_act "relu" is not supported/],
  ] as const)(
    'a %s folder it cannot convert (%j) exits 4 and leaves no file',
    async (fixture, options, pattern) => {
      const path = join(out, `unsupported-${fixture}.gguf`);
      const result = await convert(modelFolder(fixture, options), path);
      expect(result.code).toBe(EXIT.unsupportedModel);
      expect(expectOneLine(result.stderr)).toMatch(pattern);
      expect(existsSync(path)).toBe(false);
      expect(readdirSync(out).filter((f) => f.includes('partial'))).toEqual([]);
    },
  );
});
