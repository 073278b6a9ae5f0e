import type { CausalLm } from '@specstream/core';
import type { Tokenizer } from '@specstream/models';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { defaultChatPrompt, type SpecstreamServer } from '../src/index.js';
import {
  eventually,
  failure,
  greedyAlone,
  loadShippedPair,
  MODEL_ID,
  startServer,
  TEXTS,
} from './helpers.js';

let target: CausalLm;
let draft: CausalLm;
let tokenizer: Tokenizer;
let server: SpecstreamServer;
let url: string;
let client: OpenAI;

beforeAll(async () => {
  ({ target, draft, tokenizer } = await loadShippedPair());
  ({ server, url, client } = await startServer({ target, draft, tokenizer, maxBatch: 4 }));
});
afterAll(async () => {
  await server?.close();
  target?.dispose();
  draft?.dispose();
});

async function postRaw(path: string, body: string, headers: Record<string, string> = {}) {
  const response = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
  return {
    status: response.status,
    headers: response.headers,
    body: (await response.json()) as { error: Record<string, unknown> },
  };
}

describe('endpoints', () => {
  test('GET /health, /v1/models and /metrics', async () => {
    const health = await (await fetch(`${url}/health`)).json();
    expect(health).toMatchObject({ status: 'ok', model: MODEL_ID });
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual([MODEL_ID]);
    const metrics = await fetch(`${url}/metrics`);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await metrics.text();
    for (const name of [
      'specstream_queue_length',
      'specstream_active_rows',
      'specstream_tokens_per_second',
      'specstream_acceptance_rate',
      'specstream_time_to_first_token_seconds_bucket',
      'specstream_inter_token_seconds_bucket',
    ]) {
      expect(text).toContain(name);
    }
  });

  test('a greedy completion, streamed and not, is the target alone; usage counts tokens', async () => {
    const prompt = TEXTS[0];
    const expected = await greedyAlone(target, tokenizer, tokenizer.encode(prompt), 24);
    const plain = await client.completions.create({
      model: MODEL_ID,
      prompt,
      max_tokens: 24,
      temperature: 0,
    });
    expect(plain.choices[0].text).toBe(expected.text);
    expect(plain.object).toBe('text_completion');
    expect(plain.choices[0].finish_reason).toBe(expected.tokens.length === 24 ? 'length' : 'stop');
    expect(plain.usage).toEqual({
      prompt_tokens: tokenizer.encode(prompt).length,
      completion_tokens: expected.tokens.length,
      total_tokens: tokenizer.encode(prompt).length + expected.tokens.length,
    });

    const stream = await client.completions.create({
      model: MODEL_ID,
      prompt,
      max_tokens: 24,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let finish: string | null = null;
    let usage: unknown;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      if (chunk.usage) usage = chunk.usage;
      for (const choice of chunk.choices) {
        text += choice.text;
        finish = choice.finish_reason ?? finish;
      }
    }
    expect(chunks).toBeGreaterThan(2);
    expect(text).toBe(expected.text);
    expect(finish).toBe(plain.choices[0].finish_reason);
    expect(usage).toEqual(plain.usage);
  });

  test('token-id prompts are taken as they are', async () => {
    const ids = tokenizer.encode(TEXTS[1]);
    const expected = await greedyAlone(target, tokenizer, ids, 12);
    const out = await client.completions.create({
      model: MODEL_ID,
      prompt: ids,
      max_tokens: 12,
      temperature: 0,
    });
    expect(out.choices[0].text).toBe(expected.text);
  });

  test('chat: the default template, streamed and not', async () => {
    const messages = [
      { role: 'system' as const, content: 'You answer questions about Python.' },
      { role: 'user' as const, content: 'What does list.append do?' },
    ];
    const prompt = tokenizer.encode(defaultChatPrompt(messages));
    const expected = await greedyAlone(target, tokenizer, prompt, 20);
    const cut = expected.text.indexOf('\nUser:');
    const want = cut >= 0 ? expected.text.slice(0, cut) : expected.text;
    const plain = await client.chat.completions.create({
      model: MODEL_ID,
      messages,
      max_tokens: 20,
      temperature: 0,
    });
    expect(plain.object).toBe('chat.completion');
    expect(plain.choices[0].message).toMatchObject({ role: 'assistant', content: want });
    const stream = await client.chat.completions.create({
      model: MODEL_ID,
      messages,
      max_tokens: 20,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let role: string | undefined;
    let usage: unknown;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const choice of chunk.choices) {
        role ??= choice.delta.role;
        text += choice.delta.content ?? '';
      }
    }
    expect(role).toBe('assistant');
    expect(text).toBe(want);
    expect(usage).toEqual(plain.usage);
  });

  test('stop strings end the text before them, across tokens, streamed and not', async () => {
    const prompt = TEXTS[2];
    const expected = await greedyAlone(target, tokenizer, tokenizer.encode(prompt), 40);
    // A stop string from the middle of the greedy text (it may span tokens).
    const at = Math.floor(expected.text.length / 2);
    const stop = expected.text.slice(at, at + 5);
    const want = expected.text.slice(0, expected.text.indexOf(stop));
    const plain = await client.completions.create({
      model: MODEL_ID,
      prompt,
      max_tokens: 40,
      temperature: 0,
      stop: ['never appears §§', stop],
    });
    expect(plain.choices[0].text).toBe(want);
    expect(plain.choices[0].finish_reason).toBe('stop');
    expect(plain.usage!.completion_tokens).toBeLessThan(expected.tokens.length);
    const stream = await client.completions.create({
      model: MODEL_ID,
      prompt,
      max_tokens: 40,
      temperature: 0,
      stop,
      stream: true,
    });
    let text = '';
    for await (const chunk of stream) text += chunk.choices.map((c) => c.text).join('');
    expect(text).toBe(want);
  });

  test('sampling with a seed and a fixed k repeats; temperature and top_p are taken', async () => {
    const { server: fixed, client: c } = await startServer({ target, draft, tokenizer, k: 2 });
    try {
      const ask = () =>
        c.completions.create({
          model: MODEL_ID,
          prompt: TEXTS[3],
          max_tokens: 16,
          temperature: 0.9,
          top_p: 0.95,
          seed: 7,
        });
      const [a, b] = [await ask(), await ask()];
      expect(a.choices[0].text).toBe(b.choices[0].text);
      expect(a.usage!.completion_tokens).toBeGreaterThan(0);
    } finally {
      await fixed.close();
    }
  });

  test('a client that aborts mid-stream frees its row within a step', async () => {
    const controller = new AbortController();
    const stream = await client.completions.create(
      { model: MODEL_ID, prompt: TEXTS[0], max_tokens: 1500, temperature: 0, stream: true },
      { signal: controller.signal },
    );
    let chunks = 0;
    // The client's stream ends (or throws) once aborted; either way the connection is closed.
    await (async () => {
      for await (const _ of stream) {
        if (++chunks === 3) controller.abort();
      }
    })().catch(() => undefined);
    expect(chunks).toBe(3);
    expect(await eventually(() => server.scheduler.activeRows === 0 && server.scheduler.heldRows === 0)).toBe(
      true,
    );
  });
});

describe('bad input', () => {
  test('malformed JSON, a body that is not an object, the wrong content type', async () => {
    const broken = await postRaw('/v1/completions', '{"model": "x", "prompt": ');
    expect(broken.status).toBe(400);
    expect(broken.body.error).toMatchObject({
      type: 'invalid_request_error',
      code: 'invalid_json',
      param: null,
    });
    expect(typeof broken.body.error.message).toBe('string');
    const list = await postRaw('/v1/completions', '[1, 2]');
    expect(list.status).toBe(400);
    expect(list.body.error.code).toBe('invalid_body');
    const form = await postRaw('/v1/completions', 'a=b', {
      'content-type': 'application/x-www-form-urlencoded',
    });
    expect(form.status).toBe(415);
    expect(form.body.error.code).toBe('unsupported_media_type');
  });

  test('wrong types and values are refused with the parameter named', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ prompt: 'x', temperature: 'hot' }, 'temperature'],
      [{ prompt: 'x', temperature: 3 }, 'temperature'],
      [{ prompt: 'x', top_p: 0 }, 'top_p'],
      [{ prompt: 'x', max_tokens: 1.5 }, 'max_tokens'],
      [{ prompt: 'x', max_tokens: 0 }, 'max_tokens'],
      [{ prompt: 'x', stop: 3 }, 'stop'],
      [{ prompt: 'x', stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop'],
      [{ prompt: 'x', seed: 'one' }, 'seed'],
      [{ prompt: 'x', stream: 'yes' }, 'stream'],
      [{ prompt: 'x', n: 2 }, 'n'],
      [{ prompt: 'x', logprobs: 3 }, 'logprobs'],
      [{ prompt: ['a', 'b'] }, 'prompt'],
      [{ prompt: 42 }, 'prompt'],
      [{ prompt: [1, -2] }, 'prompt[1]'],
      [{}, 'prompt'],
      [{ prompt: 'x', stream_options: { include_usage: true } }, 'stream_options'],
    ];
    for (const [fields, param] of cases) {
      const error = await failure(client.completions.create({ model: MODEL_ID, ...fields } as never));
      expect(error.status, JSON.stringify(fields)).toBe(400);
      expect(error.param, JSON.stringify(fields)).toBe(param);
      expect(error.type).toBe('invalid_request_error');
    }
    const chat: [Record<string, unknown>, string][] = [
      [{ messages: 'hi' }, 'messages'],
      [{ messages: [] }, 'messages'],
      [{ messages: [{ role: 'wizard', content: 'x' }] }, 'messages[0].role'],
      [{ messages: [{ role: 'user', content: 5 }] }, 'messages[0].content'],
      [
        { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: {} }] }] },
        'messages[0].content[0]',
      ],
    ];
    for (const [fields, param] of chat) {
      const error = await failure(client.chat.completions.create({ model: MODEL_ID, ...fields } as never));
      expect(error.status, JSON.stringify(fields)).toBe(400);
      expect(error.param, JSON.stringify(fields)).toBe(param);
    }
    const model = await failure(client.completions.create({ model: 'gpt-4', prompt: 'x' }));
    expect(model.status).toBe(404);
    expect(model.code).toBe('model_not_found');
  });

  test('unknown fields are ignored', async () => {
    const out = await client.completions.create({
      model: MODEL_ID,
      prompt: 'Python',
      max_tokens: 2,
      temperature: 0,
      user: 'someone',
      frequency_penalty: 0,
      whatever: { nested: true },
    } as never);
    expect(out.choices).toHaveLength(1);
  });

  test('a prompt longer than the context, and max_tokens past it', async () => {
    const long = 'list '.repeat(2100);
    const tooLong = await failure(
      client.completions.create({ model: MODEL_ID, prompt: long, max_tokens: 1 }),
    );
    expect(tooLong.status).toBe(400);
    expect(tooLong.code).toBe('context_length_exceeded');
    expect(tooLong.param).toBe('prompt');
    const past = await failure(
      client.completions.create({ model: MODEL_ID, prompt: 'Python', max_tokens: 2048 }),
    );
    expect(past.code).toBe('context_length_exceeded');
    expect(past.param).toBe('max_tokens');
  });

  test('a body over the limit is refused with 413', async () => {
    const big = await postRaw(
      '/v1/completions',
      JSON.stringify({ model: MODEL_ID, prompt: 'x'.repeat(1100 * 1024) }),
    );
    expect(big.status).toBe(413);
    expect(big.body.error).toMatchObject({ type: 'invalid_request_error', code: 'request_too_large' });
  });

  test('a full queue answers 429 with Retry-After', async () => {
    const {
      server: small,
      client: c,
      url: smallUrl,
    } = await startServer({
      target,
      draft,
      tokenizer,
      maxBatch: 1,
      maxQueue: 1,
    });
    try {
      const controller = new AbortController();
      const long = { model: MODEL_ID, prompt: TEXTS[0], max_tokens: 1500, temperature: 0 };
      const running = c.completions.create(long, { signal: controller.signal }).catch(() => undefined);
      expect(await eventually(() => small.scheduler.activeRows === 1)).toBe(true);
      const waiting = c.completions.create(long, { signal: controller.signal }).catch(() => undefined);
      expect(await eventually(() => small.scheduler.queued === 1)).toBe(true);
      const refused = await failure(c.completions.create(long));
      expect(refused.status).toBe(429);
      expect(refused.code).toBe('queue_full');
      expect(refused.headers?.get('retry-after')).toBe('1');
      controller.abort();
      await Promise.all([running, waiting]);
      expect(await eventually(() => small.scheduler.activeRows === 0 && small.scheduler.queued === 0)).toBe(
        true,
      );
      // Both stopped when aborted, not at the end of their tokens: all they generated together is
      // less than what the one request alone runs to.
      const whole = await greedyAlone(target, tokenizer, tokenizer.encode(long.prompt), long.max_tokens);
      const metrics = await (await fetch(`${smallUrl}/metrics`)).text();
      const generated = Number(/^specstream_generated_tokens_total (\d+)$/m.exec(metrics)?.[1]);
      expect(generated).toBeLessThan(whole.tokens.length);
    } finally {
      await small.close();
    }
  });

  test('a bearer key is required on /v1 when set, compared in constant time', async () => {
    const { server: locked, url: lockedUrl } = await startServer({
      target,
      draft,
      tokenizer,
      apiKey: 'sekret',
    });
    try {
      const make = (apiKey: string) => new OpenAI({ baseURL: `${lockedUrl}/v1`, apiKey, maxRetries: 0 });
      const wrong = await failure(make('sekreT').models.list());
      expect(wrong.status).toBe(401);
      expect(wrong.code).toBe('invalid_api_key');
      const missing = await fetch(`${lockedUrl}/v1/models`);
      expect(missing.status).toBe(401);
      expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('invalid_api_key');
      expect((await make('sekret').models.list()).data).toHaveLength(1);
      expect((await fetch(`${lockedUrl}/health`)).status).toBe(200);
    } finally {
      await locked.close();
    }
  });
});
