import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTokenizer } from '@specstream/models';
import { checkAdaptiveKState } from '@specstream/speculative';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../src/index.js';
import { jsonLines, modelFolder, PROMPT, removeModelFolders, runCli } from './helpers.js';

afterAll(removeModelFolders);

// Short runs on the cpu backend: the fixtures are tiny, so each generation takes well under a second.
const TOKENS = '40';
let target: string;
const drafts: Record<string, string> = {};
beforeAll(() => {
  target = modelFolder('llama');
  // The target as its own draft (every token accepted) and two different models (rejections too).
  for (const name of ['llama', 'qwen2', 'gpt2']) drafts[name] = modelFolder(name);
});

/** The command with its test defaults, then `args`, seeing `env` (default: none). */
const generateIn = (env: NodeJS.ProcessEnv, ...args: string[]) =>
  runCli(['generate', PROMPT, '--backend', 'cpu', '--model', target, '--max-new-tokens', TOKENS, ...args], {
    env,
  });
const generate = (...args: string[]) => generateIn({}, ...args);

interface TokenLine {
  event: 'token';
  id: number;
  text: string;
  index: number;
  drafted: boolean;
}

describe('generate', () => {
  it('greedy text with any draft, fixed or adaptive k, or prompt lookup equals the target alone (exact)', async () => {
    const plain = await generate('--no-draft');
    expect(plain.code).toBe(EXIT.ok);
    expect(plain.stdout.length).toBeGreaterThan(0);
    expect(plain.stderr).toMatch(/^specstream: 40 tokens in [\d.]+ s, [\d.]+ tokens\/s \| target alone/);
    for (const draft of Object.values(drafts)) {
      for (const k of [[], ['--k', '3']]) {
        const result = await generate('--draft', draft, ...k);
        expect(result.code).toBe(EXIT.ok);
        expect(result.stdout).toBe(plain.stdout);
        expect(result.stderr).toMatch(
          /tokens\/s \| α [\d.]+, [\d.]+ tokens per target pass, mean k [\d.]+ \(draft model/,
        );
      }
    }
    const lookup = await generate('--prompt-lookup');
    expect(lookup.stdout).toBe(plain.stdout);
    expect(lookup.stderr).toMatch(/α [\d.]+.*\(prompt lookup, adaptive k\)/);
  });

  it('--json: one event per token whose ids decode to the text, then a summary with the rates', async () => {
    // Past an end-of-sequence token, accepted drafts would be counted but not emitted.
    const plain = await generate('--draft', drafts.qwen2, '--ignore-eos');
    const result = await generate('--draft', drafts.qwen2, '--ignore-eos', '--json');
    expect(result.code).toBe(EXIT.ok);
    const lines = jsonLines(result.stdout);
    const tokens = lines.slice(0, -1) as unknown as TokenLine[];
    const summary = lines.at(-1)!;
    expect(tokens.every((t) => t.event === 'token' && typeof t.drafted === 'boolean')).toBe(true);
    expect(tokens.map((t) => t.index)).toEqual(tokens.map((_, i) => i));
    expect(tokens.length).toBe(Number(TOKENS));
    const tokenizer = await loadTokenizer(target);
    const text = tokens.map((t) => t.text).join('');
    expect(
      tokenizer.decode(
        tokens.map((t) => t.id),
        { skipSpecialTokens: true },
      ),
    ).toBe(text);
    expect(text).toBe(plain.stdout);
    expect(summary).toMatchObject({ event: 'summary', text, tokens: tokens.length, interrupted: false });
    for (const key of ['tokensPerSecond', 'acceptanceRate', 'tokensPerPass', 'meanK']) {
      expect(typeof summary[key]).toBe('number');
    }
    // A token marked drafted is a drafted token the target accepted: the run's accepted count.
    expect(tokens.filter((t) => t.drafted).length).toBe(summary.acceptedTokens);
  });

  it('adaptive k starts from what the last run with the same setting learned (--k-state)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'specstream-k-state-'));
    try {
      const file = join(dir, 'k.json');
      const summaryOf = (stdout: string) => jsonLines(stdout).at(-1)!;
      const entries = () =>
        (JSON.parse(readFileSync(file, 'utf8')) as { entries: Record<string, { state: unknown }> }).entries;
      const run = (...args: string[]) => generate('--draft', drafts.qwen2, '--ignore-eos', '--json', ...args);

      const first = await run('--k-state', file);
      expect(first.code).toBe(EXIT.ok);
      expect(summaryOf(first.stdout).kState).toBe('fresh');
      const [key, ...others] = Object.keys(entries());
      expect(others).toEqual([]);
      const state = checkAdaptiveKState(entries()[key].state as never);
      expect(state.timings.length).toBeGreaterThan(0);
      expect(JSON.parse(key)).toMatchObject({ drafter: drafts.qwen2, weights: 'f32/f32', backend: 'cpu' });

      // Greedy output does not depend on k: the restored run is still the target's text.
      const second = await run('--k-state', file);
      expect(summaryOf(second.stdout).kState).toBe('restored');
      expect(summaryOf(second.stdout).text).toBe(summaryOf(first.stdout).text);

      // Another setting (prompt lookup) has its own entry; --k-state none leaves the file alone.
      const lookup = await generate('--prompt-lookup', '--json', '--k-state', file);
      expect(summaryOf(lookup.stdout).kState).toBe('fresh');
      expect(Object.keys(entries())).toHaveLength(2);
      const before = readFileSync(file, 'utf8');
      expect(summaryOf((await run('--k-state', 'none')).stdout).kState).toBeNull();
      expect(readFileSync(file, 'utf8')).toBe(before);

      // The environment names the file too: SPECSTREAM_K_STATE, else the XDG cache folder.
      const named = await generateIn(
        { SPECSTREAM_K_STATE: file },
        '--draft',
        drafts.qwen2,
        '--ignore-eos',
        '--json',
      );
      expect(summaryOf(named.stdout).kState).toBe('restored');
      const cached = await generateIn({ XDG_CACHE_HOME: dir }, '--draft', drafts.qwen2, '--json');
      expect(summaryOf(cached.stdout).kState).toBe('fresh');
      expect(
        Object.keys(JSON.parse(readFileSync(join(dir, 'specstream', 'adaptive-k.json'), 'utf8')).entries),
      ).toHaveLength(1);

      // A damaged file or entry is named on stderr, not used, and rewritten whole.
      writeFileSync(file, 'not json');
      const damaged = await run('--k-state', file);
      expect(damaged.code).toBe(EXIT.ok);
      expect(damaged.stderr).toContain(`adaptive k's state file ${file} is not used (it is not JSON`);
      expect(summaryOf(damaged.stdout).kState).toBe('fresh');
      const [rewritten] = Object.values(entries());
      (rewritten.state as { version: number }).version = 2;
      writeFileSync(file, JSON.stringify({ version: 1, entries: { [key]: rewritten } }));
      const badEntry = await run('--k-state', file);
      expect(badEntry.stderr).toMatch(
        /its entry for this setting is damaged \(adaptiveK state: version must be 1, got 2\)/,
      );
      expect(summaryOf(badEntry.stdout).kState).toBe('fresh');
      expect(checkAdaptiveKState(entries()[key].state as never).version).toBe(1);

      // A file that cannot be written is a warning, not a failure.
      const unwritable = await run('--k-state', join(file, 'below-a-file.json'));
      expect(unwritable.code).toBe(EXIT.ok);
      expect(unwritable.stderr).toContain("cannot save adaptive k's state to");

      // It belongs to adaptive k: with a fixed k or no drafter it is a usage error.
      expect((await generate('--draft', drafts.qwen2, '--k', '2', '--k-state', file)).code).toBe(EXIT.usage);
      expect((await generate('--no-draft', '--k-state', file)).code).toBe(EXIT.usage);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--stop ends the text before a stop string that spans tokens', async () => {
    const lines = jsonLines((await generate('--no-draft', '--json')).stdout).slice(
      0,
      -1,
    ) as unknown as TokenLine[];
    const text = lines.map((t) => t.text).join('');
    // From the second character of one token's text to the first character of a later token's.
    const starts = lines.map((_, i) => lines.slice(0, i).reduce((n, t) => n + t.text.length, 0));
    const from = lines.findIndex((t, i) => i >= 2 && t.text.length >= 2);
    const to = lines.findIndex((t, i) => i > from && t.text.length >= 1);
    expect(from).toBeGreaterThan(0);
    expect(to).toBeGreaterThan(from);
    const stop = text.slice(starts[from] + 1, starts[to] + 1);
    const expected = text.slice(0, text.indexOf(stop));
    for (const draft of [['--no-draft'], ['--draft', drafts.gpt2]]) {
      const result = await generate(...draft, '--stop', 'never appears in this text', '--stop', stop);
      expect(result.code).toBe(EXIT.ok);
      expect(result.stdout).toBe(expected);
    }
  });

  it('--compare prints the measured speedup against the target alone', async () => {
    const result = await generate('--draft', drafts.llama, '--compare');
    expect(result.code).toBe(EXIT.ok);
    expect(result.stderr).toMatch(
      /compare: target alone [\d.]+ tokens\/s, speculative [\d.]+ tokens\/s \(both warm\): speedup [\d.]+x \(same tokens\)/,
    );
    const json = await generate('--draft', drafts.llama, '--compare', '--json');
    const summary = jsonLines(json.stdout).at(-1)!;
    expect(summary.compare).toMatchObject({ sameText: true, speedup: expect.any(Number) });
  });

  it('sampling with a seed repeats itself, alone or with a fixed k', async () => {
    // Adaptive k chooses k from measured times, and k decides how the random stream is used: only
    // the distribution of its text is fixed, not the text.
    const flags = ['--temperature', '0.9', '--top-p', '0.95', '--top-k', '50', '--seed', '7'];
    for (const draft of [['--no-draft'], ['--draft', drafts.qwen2, '--k', '3']]) {
      const a = await generate(...draft, ...flags);
      const b = await generate(...draft, ...flags);
      expect(a.code).toBe(EXIT.ok);
      expect(a.stdout).toBe(b.stdout);
    }
  });

  it('stops at the end-of-sequence token unless --ignore-eos', async () => {
    const eos = (await loadTokenizer(target)).eosTokenId;
    const lines = jsonLines((await generate('--no-draft', '--json', '--max-new-tokens', '200')).stdout);
    const ids = (lines.slice(0, -1) as unknown as TokenLine[]).map((t) => t.id);
    // Random weights may or may not produce it; when they do, it ends the text.
    if (eos !== undefined && ids.includes(eos)) expect(ids.indexOf(eos)).toBe(ids.length - 1);
    const ignoring = jsonLines(
      (await generate('--no-draft', '--json', '--max-new-tokens', '200', '--ignore-eos')).stdout,
    );
    expect(ignoring.at(-1)).toMatchObject({ finishReason: 'length' });
  });

  it('draws a progress bar while weights load only when stderr is a terminal', async () => {
    const args = ['generate', PROMPT, '--backend', 'cpu', '--model', target, '--draft', drafts.qwen2];
    const terminal = await runCli([...args, '--max-new-tokens', '2'], { stderrTty: true });
    expect(terminal.code).toBe(EXIT.ok);
    expect(terminal.stderr).toMatch(/loading target \[[^\]]*\] \d+%/);
    expect(terminal.stderr).toMatch(/loading draft \[[^\]]*\] \d+%/);
    const piped = await runCli([...args, '--max-new-tokens', '2']);
    expect(piped.stderr).not.toMatch(/loading/);
  });

  it('Ctrl-C (the interrupt signal) stops within one step, prints the stats line and exits 130', async () => {
    let seen = 0;
    const result = await runCli(
      [
        'generate',
        PROMPT,
        '--backend',
        'cpu',
        '--model',
        target,
        '--draft',
        drafts.qwen2,
        '--json',
        '--ignore-eos',
        '--max-new-tokens',
        '200',
      ],
      {
        onStdout: (_, interrupt) => {
          if (++seen === 3) interrupt.abort();
        },
      },
    );
    expect(result.code).toBe(EXIT.interrupted);
    expect(result.stderr).toMatch(
      /^specstream: interrupted after \d+ tokens in [\d.]+ s, [\d.]+ tokens\/s \| α/,
    );
    const lines = jsonLines(result.stdout);
    // One speculative step emits at most k + 1 tokens after the abort lands.
    expect(lines.length - 1).toBeLessThan(200);
    expect(lines.at(-1)).toMatchObject({ event: 'summary', interrupted: true });
  });
});
