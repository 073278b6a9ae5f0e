import { type CausalLm, generate, initBackend } from '@specstream/core';
import { loadCausalLm, loadTokenizer, type Tokenizer } from '@specstream/models';
import OpenAI from 'openai';
import { shippedModel } from '../../../test-support/shipped-models.js';
import { createServer, type ServerOptions, type SpecstreamServer } from '../src/index.js';

/** The shipped pair (models/ at the repository root, or SPECSTREAM_SHIPPED_MODELS). */
export const SHIPPED_TARGET = shippedModel('specstream-docs-target');
export const SHIPPED_DRAFT = shippedModel('specstream-docs-draft');

/** Prompts in the shipped pair's domain (the Python documentation), of different lengths. */
export const TEXTS = [
  'The list data type has some more methods. Here are all of the methods of list objects:',
  'Dictionaries are sometimes found in other languages as',
  'The for statement in Python differs a bit from what you may be used to in C or Pascal.',
  'Strings can be concatenated (glued together) with the + operator, and repeated with *:',
  'A tuple consists of a number of values separated by commas, for instance:',
  'Python',
];

export const MODEL_ID = 'specstream-docs-target';

/** The shipped target, draft and tokenizer on the wasm backend, as every server test starts. */
export async function loadShippedPair(): Promise<{
  target: CausalLm;
  draft: CausalLm;
  tokenizer: Tokenizer;
}> {
  await initBackend({ backend: 'wasm' });
  const target = await loadCausalLm(SHIPPED_TARGET);
  const draft = await loadCausalLm(SHIPPED_DRAFT);
  return { target, draft, tokenizer: await loadTokenizer(SHIPPED_TARGET) };
}

/** A server on 127.0.0.1 (a free port) and an official OpenAI client for it (no retries). */
export async function startServer(
  options: Omit<ServerOptions, 'modelId'> & { modelId?: string },
): Promise<{ server: SpecstreamServer; url: string; client: OpenAI }> {
  const server = createServer({ modelId: MODEL_ID, stopTokens: [0], bosTokenId: 0, ...options });
  const url = await server.listen({ host: '127.0.0.1', port: 0 });
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: options.apiKey ?? 'none', maxRetries: 0 });
  return { server, url, client };
}

/** The target alone, greedy, to the end-of-sequence id or the limit: the text a request must give. */
export async function greedyAlone(
  target: CausalLm,
  tokenizer: Tokenizer,
  prompt: number[],
  maxNewTokens: number,
): Promise<{ tokens: number[]; text: string }> {
  const tokens: number[] = [];
  for await (const event of generate({ model: target, prompt, maxNewTokens, stopTokens: [0] })) {
    tokens.push(event.token);
  }
  return { tokens, text: tokenizer.decode(tokens, { skipSpecialTokens: true }) };
}

/** Polls until `check` holds or `ms` pass; returns whether it held. */
export async function eventually(check: () => boolean, ms = 3000): Promise<boolean> {
  const until = performance.now() + ms;
  while (!check()) {
    if (performance.now() > until) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return true;
}

/** The OpenAI error a call fails with. */
export async function failure(call: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await call;
  } catch (error) {
    if (error instanceof OpenAI.APIError) return error;
    throw error;
  }
  throw new Error('the call succeeded');
}
