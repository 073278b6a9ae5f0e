import { afterAll, describe, expect, test } from 'vitest';
import { EXIT } from '../src/index.js';
import { modelFolder, removeModelFolders, runCli } from './helpers.js';

afterAll(removeModelFolders);

describe('specstream serve', () => {
  test('serves completions with a draft until interrupted', async () => {
    const target = modelFolder('llama');
    const draft = modelFolder('llama');
    let answer:
      | { status: number; body: { usage?: object; choices: { finish_reason: string }[] } }
      | undefined;
    let models: unknown;
    const result = await runCli(
      [
        'serve',
        '--model',
        target,
        '--draft',
        draft,
        '--port',
        '0',
        '--backend',
        'wasm',
        '--max-batch',
        '2',
      ].concat(['--model-id', 'fixture']),
      {
        onStdout: (text, interrupt) => {
          const url = /at (http:\/\/\S+)/.exec(text)?.[1];
          if (url === undefined) return;
          void (async () => {
            try {
              const response = await fetch(`${url}/v1/completions`, {
                method: 'POST',
                headers: { 'content-type': 'application/json' },
                body: JSON.stringify({
                  model: 'fixture',
                  prompt: [1, 2, 3, 4],
                  max_tokens: 5,
                  temperature: 0,
                }),
              });
              answer = {
                status: response.status,
                body: (await response.json()) as { usage?: object; choices: { finish_reason: string }[] },
              };
              models = await (await fetch(`${url}/v1/models`)).json();
            } finally {
              interrupt.abort();
            }
          })();
        },
      },
    );
    expect(result.stderr).toMatch(/server stopped/);
    expect(result.code).toBe(EXIT.ok);
    // On wasm an unasked draft runs in q4 (defaultDraftWeights), as `generate`'s does.
    expect(result.stdout).toMatch(
      /^specstream: serving fixture at http:\/\/127\.0\.0\.1:\d+ \(draft \S+ in q4,/,
    );
    expect(answer?.status).toBe(200);
    expect(answer?.body.usage).toMatchObject({ prompt_tokens: 4 });
    expect(answer?.body.choices[0].finish_reason).toMatch(/^(length|stop)$/);
    expect(models).toMatchObject({ data: [{ id: 'fixture' }] });
  });

  test.each([
    [['--max-batch', '0'], /--max-batch/],
    [['--port', '70000'], /--port/],
    [['--max-queue', '-1'], /--max-queue/],
    [['--backend', 'abacus'], /--backend/],
    [['--draft-weights', 'q5'], /--draft-weights/],
  ])('%j is a usage error', async (flags, message) => {
    const result = await runCli(['serve', ...flags]);
    expect(result.code).toBe(EXIT.usage);
    expect(result.stderr).toMatch(message);
  });

  test('a missing model folder exits 3 before anything loads', async () => {
    const result = await runCli(['serve', '--model', '/nonexistent/model', '--no-draft']);
    expect(result.code).toBe(EXIT.missingModel);
  });

  test('help names the options', async () => {
    const result = await runCli(['serve', '--help']);
    expect(result.code).toBe(EXIT.ok);
    for (const flag of [
      '--model',
      '--draft',
      '--host',
      '--port',
      '--max-batch',
      '--max-queue',
      '--api-key',
    ]) {
      expect(result.stdout).toContain(flag);
    }
  });
});
