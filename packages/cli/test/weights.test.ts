import { WEIGHT_FORMATS, weightArena } from '@specstream/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WEIGHT_CHOICES } from '../src/commands/generate.js';
import { EXIT } from '../src/index.js';
import {
  expectOneLine,
  jsonLines,
  modelFolder,
  PROMPT,
  plainGenerate,
  removeModelFolders,
  runCli,
} from './helpers.js';

afterAll(removeModelFolders);

let target: string;
let draft: string;
beforeAll(() => {
  target = modelFolder('llama');
  draft = modelFolder('qwen2');
});

describe('--weights and --draft-weights', () => {
  it("offers exactly core's weight formats", async () => {
    expect([...WEIGHT_CHOICES].sort()).toEqual([...WEIGHT_FORMATS].sort());
    const help = await runCli(['generate', '--help']);
    const text = help.stdout.replace(/\s+/g, ' ');
    expect(text).toContain('--weights <format>');
    expect(text).toContain('(choices: "f32", "f16", "q8", "q4", default: "f32")');
    expect(text).toContain(
      '--draft-weights <format> the draft model\'s weights (default: --weights) (choices: "f32", "f16", "q8", "q4")',
    );
  });

  it.each([
    [['--weights', 'q5'], /^error: option '--weights <format>' argument 'q5' is invalid/],
    [['--weights', 'int8'], /argument 'int8' is invalid\. Allowed choices are f32, f16, q8, q4\.$/],
    [
      ['--draft', 'DRAFT', '--weights', 'f16', '--draft-weights', 'q8'],
      // f16 runs on webgpu only, q8 there too: webgpu it is, which cannot start here (no adapter).
      /^specstream: --weights f16 runs on the webgpu backend, which cannot start here: /,
    ],
    [['--draft-weights', 'Q8'], /^error: option '--draft-weights <format>' argument 'Q8' is invalid/],
    [
      ['--no-draft', '--draft-weights', 'q8'],
      /^specstream: --draft-weights needs a draft model; drop --no-draft$/,
    ],
    [['--prompt-lookup', '--draft-weights', 'q4'], /drop --prompt-lookup$/],
  ])('%j exits 2 with one line, before loading anything', async (flags, pattern) => {
    const args = flags.map((f) => (f === 'DRAFT' ? draft : f));
    const result = await runCli(['generate', PROMPT, '--model', target, ...args]);
    expect(result.code).toBe(EXIT.usage);
    expect(expectOneLine(result.stderr)).toMatch(pattern);
    expect(result.stdout).toBe('');
  });

  it.each([
    [
      ['--weights', 'q8'],
      /^specstream: --weights q8 on the cpu backend: q8 weights are not supported by the reference kernel set .*; pass --backend wasm or webgpu$/,
    ],
    [
      ['--draft-weights', 'q4'],
      /^specstream: --draft-weights q4 on the cpu backend: q4 weights are not supported by the reference kernel set/,
    ],
    [
      ['--weights', 'f16'],
      /^specstream: --weights f16 on the cpu backend: f16 weights are not supported by the reference kernel set .*; pass --backend webgpu$/,
    ],
  ])('%j on a backend without the kernel set for it exits 2 with core’s reason', async (flags, pattern) => {
    const result = await runCli([
      'generate',
      PROMPT,
      '--backend',
      'cpu',
      '--model',
      target,
      '--draft',
      draft,
      ...flags,
    ]);
    expect(result.code).toBe(EXIT.usage);
    expect(expectOneLine(result.stderr)).toMatch(pattern);
    expect(result.stdout).toBe('');
  });

  it('q8: wasm by default, greedy speculative text equals the q8 target alone’s, formats in the stats and summary', async () => {
    // No --backend: quantized weights make wasm the default.
    const args = [
      'generate',
      PROMPT,
      '--model',
      target,
      '--max-new-tokens',
      '24',
      '--ignore-eos',
      '--weights',
      'q8',
    ];
    const plain = await runCli([...args, '--no-draft', '--json']);
    expect(plain.code).toBe(EXIT.ok);
    expect(jsonLines(plain.stdout).at(-1)).toMatchObject({
      event: 'summary',
      weights: 'q8',
      draftWeights: null,
    });
    const speculative = await runCli([...args, '--draft', draft]);
    expect(speculative.code).toBe(EXIT.ok);
    expect(speculative.stdout).toBe(jsonLines(plain.stdout).at(-1)!.text);
    expect(speculative.stderr).toMatch(
      /^specstream: 24 tokens in .* \| α [\d.]+.*\(draft model, adaptive k\) \| q8 weights( \||$)/m,
    );
  });

  it.each([
    ['wasm', 'q4'],
    ['cpu', 'f32'],
  ])(
    'unasked, the draft of an f32 target keeps q4 weights where the backend runs them (%s: %s), exactly',
    async (backend, expected) => {
      const args = [
        'generate',
        PROMPT,
        '--backend',
        backend,
        '--model',
        target,
        '--max-new-tokens',
        '12',
        '--ignore-eos',
      ];
      const speculative = await runCli([...args, '--draft', draft, '--json']);
      expect(speculative.code).toBe(EXIT.ok);
      const summary = jsonLines(speculative.stdout).at(-1)!;
      expect(summary).toMatchObject({ weights: 'f32', draftWeights: expected });
      // The draft's format changes what it proposes, never the text: the target alone's.
      const plain = await runCli([...args, '--no-draft', '--json']);
      expect(summary.text).toBe(jsonLines(plain.stdout).at(-1)!.text);
    },
  );

  it('q4 target with an f32 draft', async () => {
    const args = [
      'generate',
      PROMPT,
      '--backend',
      'wasm',
      '--model',
      target,
      '--draft',
      draft,
      '--max-new-tokens',
      '8',
      '--weights',
      'q4',
      '--draft-weights',
      'f32',
    ];
    const result = await runCli([...args, '--json']);
    expect(result.code).toBe(EXIT.ok);
    expect(jsonLines(result.stdout).at(-1)).toMatchObject({ tokens: 8, weights: 'q4', draftWeights: 'f32' });
    const text = await runCli(args);
    expect(text.stderr).toMatch(/\| q4 weights, draft f32( \||$)/m);
  });

  it('the format reaches the load: the target holds fewer arena bytes in q8, fewer still in q4', async () => {
    const held: Record<string, number> = {};
    for (const weights of ['f32', 'q8', 'q4']) {
      const args = ['generate', PROMPT, '--backend', 'wasm', '--model', target, '--no-draft'];
      const before = weightArena()!.bytesInUse();
      const result = await runCli([...args, '--max-new-tokens', '2', '--weights', weights], {
        // While the model is loaded: at its first token.
        onStdout: () => {
          held[weights] ??= weightArena()!.bytesInUse() - before;
        },
      });
      expect(result.code).toBe(EXIT.ok);
      expect(weightArena()!.bytesInUse()).toBe(before);
    }
    expect(held.q8).toBeGreaterThan(0);
    expect(held.q8).toBeLessThan(held.f32);
    expect(held.q4).toBeLessThan(held.q8);
  });

  it('f32 (the default) says nothing about weights on the stats line', async () => {
    const result = await runCli(plainGenerate('wasm', target, '--max-new-tokens', '4'));
    expect(result.code).toBe(EXIT.ok);
    expect(result.stderr).not.toMatch(/weights/);
  });
});

describe('bench --weights: checked before the benchmarks start', () => {
  it.each([
    [
      ['--only', 'quant-model', '--weights', 'q5'],
      /argument 'q5' is invalid: the quant-model suite \(wasm\) measures f32, q8, q4/,
    ],
    [['--only', 'quant-model', '--weights', 'f16'], /argument 'f16' is invalid/],
    [['--only', 'quant-model', '--weights=f32,q3'], /argument 'f32,q3' is invalid/],
    [['--only', 'quant-model', '--weights'], /'--weights <list>' argument missing/],
    [['--weights', 'q8'], /quant-model suite, which runs only when named: add --only quant-model$/],
    [['--only', 'pair', '--weights', 'q8'], /add --only quant-model$/],
    [
      ['--only', 'quant-model', '--backends', 'cpu', '--weights', 'f32,q4'],
      /--weights q4: .* wasm backend only: add wasm to --backends$/,
    ],
  ])('%j exits 2 with one line', async (args, pattern) => {
    const result = await runCli(['bench', ...args]);
    expect(result.code).toBe(EXIT.usage);
    expect(expectOneLine(result.stderr)).toMatch(pattern);
    expect(result.stdout).toBe('');
  });
});
