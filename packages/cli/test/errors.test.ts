import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTokenizer } from '@specstream/models';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_DRAFT, DEFAULT_TARGET, EXIT } from '../src/index.js';
import {
  expectOneLine,
  FIXTURES,
  fixtureConfig,
  modelFolder,
  PROMPT,
  REPO_ROOT,
  removeModelFolders,
  runCli,
  TOKENIZER_JSON,
} from './helpers.js';

afterAll(removeModelFolders);

const generate = (...args: string[]) => runCli(['generate', PROMPT, '--backend', 'cpu', ...args]);

/** The fixture tokenizer with the strings of two ids swapped: same size, different meaning. */
function swappedTokenizer(): object {
  const json = JSON.parse(readFileSync(TOKENIZER_JSON, 'utf8'));
  const vocab = json.model.vocab as Record<string, number>;
  // The two highest ids: ordinary merged tokens whatever the vocabulary's size.
  const [a, b] = Object.keys(vocab).sort((x, y) => vocab[y] - vocab[x]);
  [vocab[a], vocab[b]] = [vocab[b], vocab[a]];
  return json;
}

describe('model folders that cannot be used', () => {
  it('a missing target folder exits 3', async () => {
    const result = await generate('--model', join(FIXTURES, 'no-such-model'), '--no-draft');
    expect(result.code).toBe(EXIT.missingModel);
    expect(expectOneLine(result.stderr)).toMatch(
      /^specstream: target model folder .*no-such-model does not exist/,
    );
  });

  it('a missing draft folder exits 3', async () => {
    const result = await generate('--model', modelFolder('llama'), '--draft', join(FIXTURES, 'nope'));
    expect(result.code).toBe(EXIT.missingModel);
    expect(expectOneLine(result.stderr)).toMatch(/draft model folder .*nope does not exist/);
  });

  it('a folder without config.json exits 3', async () => {
    const result = await generate('--model', modelFolder('llama', { noConfig: true }), '--no-draft');
    expect(result.code).toBe(EXIT.missingModel);
    expect(expectOneLine(result.stderr)).toMatch(/has no config\.json/);
  });

  it('the default pair sits in models/ at the repository root, and a missing one says what to pass', async () => {
    expect(DEFAULT_TARGET).toBe(join(REPO_ROOT, 'models', 'specstream-docs-target'));
    expect(DEFAULT_DRAFT).toBe(join(REPO_ROOT, 'models', 'specstream-docs-draft'));
    const empty = mkdtempSync(join(tmpdir(), 'specstream-cli-empty-'));
    try {
      const target = await runCli(['generate', 'x', '--model', join(empty, 'target'), '--no-draft']);
      expect(target.code).toBe(EXIT.missingModel);
      expect(expectOneLine(target.stderr)).toMatch(/\(pass --model DIR\)$/);
      const draft = await runCli(['generate', 'x', '--model', modelFolder('llama'), '--draft', empty + '/d']);
      expect(expectOneLine(draft.stderr)).toMatch(/\(pass --draft DIR, --prompt-lookup or --no-draft\)$/);
    } finally {
      rmSync(empty, { recursive: true });
    }
  });

  it('a whisper folder exits 4', async () => {
    const result = await generate('--model', modelFolder('whisper'), '--no-draft');
    expect(result.code).toBe(EXIT.unsupportedModel);
    expect(expectOneLine(result.stderr)).toMatch(/holds a whisper model/);
  });

  it('an unknown model_type exits 4', async () => {
    const result = await generate(
      '--model',
      modelFolder('llama', { config: { model_type: 'bert' } }),
      '--no-draft',
    );
    expect(result.code).toBe(EXIT.unsupportedModel);
    expect(expectOneLine(result.stderr)).toMatch(/model_type "bert" is not supported/);
  });

  it('an unsupported architecture setting exits 4', async () => {
    const folder = modelFolder('llama', { config: { hidden_act: 'relu6' } });
    const result = await generate('--model', folder, '--no-draft');
    expect(result.code).toBe(EXIT.unsupportedModel);
    expect(expectOneLine(result.stderr)).toMatch(/hidden_act "relu6" is not supported/);
  });

  it('a tokenizer that gives ids past the model embeddings exits 4', async () => {
    const tokenizer = await loadTokenizer(modelFolder('llama'));
    const last = tokenizer.vocabSize - 1;
    const prompt = tokenizer.decode([last]);
    expect(tokenizer.encode(prompt)).toContain(last);
    const folder = modelFolder('llama', { config: { vocab_size: last } });
    const result = await runCli(['generate', prompt, '--backend', 'cpu', '--model', folder, '--no-draft']);
    expect(result.code).toBe(EXIT.unsupportedModel);
    expect(expectOneLine(result.stderr)).toMatch(
      new RegExp(`tokenizer gives id ${last}, past the model's ${last} embeddings`),
    );
  });

  it('a folder without a tokenizer exits 4', async () => {
    const result = await generate('--model', modelFolder('llama', { tokenizer: false }), '--no-draft');
    expect(result.code).toBe(EXIT.unsupportedModel);
    expect(expectOneLine(result.stderr)).toMatch(/no tokenizer\.json/);
  });
});

describe('a prompt longer than the context', () => {
  it('exits 5, whichever model of the pair has the shorter context', async () => {
    const tokenizer = await loadTokenizer(modelFolder('llama'));
    const context = Math.min(
      fixtureConfig('llama').max_position_embeddings as number,
      fixtureConfig('gpt2').n_positions as number,
    );
    let prompt = PROMPT;
    while (tokenizer.encode(prompt).length < context) prompt += ` ${PROMPT}`;
    for (const args of [['--no-draft'], ['--draft', modelFolder('gpt2')]]) {
      const result = await runCli([
        'generate',
        prompt,
        '--backend',
        'cpu',
        '--model',
        modelFolder('llama'),
        ...args,
      ]);
      expect(result.code).toBe(EXIT.promptTooLong);
      expect(expectOneLine(result.stderr)).toMatch(
        /the prompt is \d+ tokens; the (target|draft) model's context is \d+/,
      );
    }
  });
});

describe('a draft that does not fit the target', () => {
  it('a larger draft vocabulary exits 6', async () => {
    const vocab = fixtureConfig('llama').vocab_size as number;
    const draft = modelFolder('llama', { config: { vocab_size: vocab + 64 }, tokenizer: false });
    const result = await generate('--model', modelFolder('llama'), '--draft', draft);
    expect(result.code).toBe(EXIT.draftMismatch);
    expect(expectOneLine(result.stderr)).toMatch(/draft vocabulary \(\d+ ids\) is larger than the target's/);
  });

  it('a different tokenizer exits 6', async () => {
    const draft = modelFolder('qwen2', { tokenizer: swappedTokenizer() });
    const result = await generate('--model', modelFolder('llama'), '--draft', draft);
    expect(result.code).toBe(EXIT.draftMismatch);
    expect(expectOneLine(result.stderr)).toMatch(/vocabularies differ at id \d+/);
  });
});

describe('failures that are nobody’s flag', () => {
  it('a corrupt checkpoint exits 4 with one line', async () => {
    // config of one architecture, weights of another: the loader misses a tensor it needs.
    const folder = modelFolder('gpt2', { config: fixtureConfig('llama') });
    const result = await generate('--model', folder, '--no-draft');
    expect(result.code).toBe(EXIT.unsupportedModel);
    expect(expectOneLine(result.stderr)).toMatch(/needs tensor/);
  });
});
