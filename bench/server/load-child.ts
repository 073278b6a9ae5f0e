/**
 * One engine of the server suite's engine comparison, in a process of its own: `streams`
 * concurrent greedy streams, each sending `requests` prompts (token ids) one after another for
 * `tokens` new tokens, without HTTP. Run by server-bench.ts as
 * `node <execArgv> load-child.ts <spec.json>`; prints one line `LOAD_RESULT <json>`.
 *
 * - llama.cpp: node-llama-cpp's prebuilt CPU binary on the target's F32 GGUF export, one context
 *   with a sequence per stream; its context gathers the sequences' pending evaluations into one
 *   batch each cycle (its default batching, "maximumParallelism"), as llama.cpp's server does
 *   with its slots. Plain decoding: llama.cpp's server drafts only when given a draft model, and
 *   on this CPU its draft predictor lost to plain decoding (the peers suite).
 * - specstream: the server's Scheduler (continuous batching, the draft proposing for every row,
 *   adaptive k) on the wasm backend: what `specstream serve` runs, less HTTP.
 */
import { readFileSync } from 'node:fs';
import { driveStreams, type StreamsRun } from './drive-streams.js';

export interface LoadSpec {
  engine: 'llama.cpp' | 'specstream';
  /** .gguf (llama.cpp) or HF folder (specstream). */
  model: string;
  /** specstream: the draft's folder (none: the target alone). */
  draft?: string;
  /** specstream: the draft's weight format (serve's default on wasm: q4). */
  draftWeights?: 'f32' | 'q8' | 'q4';
  threads: number;
  streams: number;
  requests: number;
  tokens: number;
  prompts: number[][];
}

export interface LoadResult extends StreamsRun {
  engine: string;
  version: string;
}

/** Generates up to `tokens` tokens for `prompt`, calling `deliver` with each batch of new ones. */
type Generate = (prompt: number[], tokens: number, deliver: (count: number) => void) => Promise<void>;

async function llamaCpp(
  spec: LoadSpec,
): Promise<{ version: string; generate: Generate; dispose(): Promise<void> }> {
  const { cpuLlama, llamaCppVersion } = await import('../peers/llama-cpp.js');
  const { llama } = await cpuLlama(spec.threads);
  const model = await llama.loadModel({ modelPath: spec.model });
  const longest = Math.max(...spec.prompts.map((p) => p.length));
  // Room for every sequence at once (llama.cpp splits the context among its sequences).
  const perSequence = 2 ** Math.ceil(Math.log2(longest + spec.tokens + 8));
  const context = await model.createContext({
    contextSize: perSequence * spec.streams,
    sequences: spec.streams,
    threads: spec.threads,
    flashAttention: false,
  });
  const free = Array.from({ length: spec.streams }, () => context.getSequence());
  return {
    version: `node-llama-cpp ${llamaCppVersion()}`,
    async generate(prompt, tokens, deliver) {
      const sequence = free.pop()!;
      try {
        await sequence.clearHistory();
        let made = 0;
        for await (const _ of sequence.evaluate(prompt as never[], { temperature: 0, yieldEogToken: true })) {
          deliver(1);
          if (++made >= tokens) break;
        }
      } finally {
        free.push(sequence);
      }
    },
    async dispose() {
      await context.dispose();
      await model.dispose();
      await llama.dispose();
    },
  };
}

async function specstream(
  spec: LoadSpec,
): Promise<{ version: string; generate: Generate; dispose(): Promise<void> }> {
  const core = await import('@specstream/core');
  const { loadCausalLm } = await import('@specstream/models');
  const { Scheduler } = await import('@specstream/server');
  await core.initBackend({ backend: 'wasm' });
  const target = await loadCausalLm(spec.model);
  const draft =
    spec.draft === undefined ? undefined : await loadCausalLm(spec.draft, { weights: spec.draftWeights });
  const scheduler = new Scheduler({ target, draft, maxBatch: Math.max(1, spec.streams) });
  const version = (
    JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version?: string;
    }
  ).version;
  return {
    version: `specstream ${version ?? ''}`.trim(),
    async generate(prompt, tokens, deliver) {
      await scheduler.submit({
        prompt,
        maxTokens: tokens,
        onTokens: (t) => {
          deliver(t.length);
          return undefined;
        },
      });
    },
    async dispose() {
      await scheduler.close();
      target.dispose();
      draft?.dispose();
    },
  };
}

async function main(): Promise<void> {
  const spec = JSON.parse(readFileSync(process.argv[2], 'utf8')) as LoadSpec;
  const engine = spec.engine === 'llama.cpp' ? await llamaCpp(spec) : await specstream(spec);
  // One unrecorded request per stream first: first allocations, the kernels' warm-up.
  await Promise.all(
    Array.from({ length: spec.streams }, (_, i) =>
      engine.generate(spec.prompts[i % spec.prompts.length], 8, () => {}),
    ),
  );
  const run = await driveStreams(spec.streams, spec.requests, spec.prompts, async (prompt) => {
    const sent = performance.now();
    const timing = { tokens: 0, ttft: 0, gaps: [] as number[] };
    let last: number | undefined;
    await engine.generate(prompt, spec.tokens, (count) => {
      const now = performance.now();
      if (last === undefined) timing.ttft = now - sent;
      else timing.gaps.push(now - last);
      last = now;
      timing.tokens += count;
    });
    return timing;
  });
  const result: LoadResult = { engine: spec.engine, version: engine.version, ...run };
  await engine.dispose();
  console.log(`LOAD_RESULT ${JSON.stringify(result)}`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
