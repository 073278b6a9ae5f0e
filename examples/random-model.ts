// `npm run example:random`: generates from a model built in code (seeded random weights), on
// the fastest backend available, and reports its speed. No checkpoint needed.
import { parseArgs } from 'node:util';
import {
  type CausalLmConfig,
  GPT2_SMALL_SHAPE,
  generate,
  initBackend,
  randomCausalLm,
  type TokenEvent,
} from '@specstream/core';

const SHAPES: Record<string, CausalLmConfig> = {
  // A small Llama-style decoder: GQA, rotary, RMSNorm, gated SiLU MLP.
  'llama-tiny': {
    vocabSize: 4096,
    hiddenSize: 256,
    layers: 4,
    heads: 8,
    kvHeads: 2,
    headDim: 32,
    norm: 'rms',
    normEps: 1e-6,
    activation: 'silu',
    gatedMlp: true,
    positions: { kind: 'rotary', rotary: { theta: 10000 } },
  },
  'gpt2-small': GPT2_SMALL_SHAPE,
};

const { values } = parseArgs({
  options: {
    shape: { type: 'string', default: 'llama-tiny' },
    backend: { type: 'string' },
    tokens: { type: 'string', default: '48' },
    batch: { type: 'string', default: '2' },
    temperature: { type: 'string', default: '0.8' },
    seed: { type: 'string', default: '7' },
  },
});
const config = SHAPES[values.shape];
if (!config) throw new Error(`unknown --shape ${values.shape}; one of ${Object.keys(SHAPES).join(', ')}`);

const backend = await initBackend({ backend: values.backend as never });
console.log(`backend: ${backend.name} (${backend.source})`);
for (const s of backend.skipped) console.log(`  skipped ${s.candidate}: ${s.reason}`);

const model = randomCausalLm(config, { seed: Number(values.seed), std: 0.05 });
const batch = Number(values.batch);
const prompts = Array.from({ length: batch }, (_, r) =>
  Array.from({ length: 20 + 13 * r }, (_, i) => (i * 31 + r * 7) % config.vocabSize),
);
const rows: number[][] = prompts.map(() => []);
let first: TokenEvent | undefined;
let last: TokenEvent | undefined;
for await (const event of generate({
  model,
  prompt: prompts,
  maxNewTokens: Number(values.tokens),
  sampling: { temperature: Number(values.temperature), topP: 0.95, seed: Number(values.seed) },
})) {
  rows[event.row].push(event.token);
  first ??= event;
  last = event;
}
model.dispose();
for (const [r, ids] of rows.entries())
  console.log(`row ${r} (prompt ${prompts[r].length} tokens): ${ids.join(' ')}`);
const decodeMs = last!.timings.elapsedMs - first!.timings.elapsedMs;
const tokens = rows.reduce((n, r) => n + r.length, 0) - batch;
console.log(
  `${values.shape}: first token after ${first!.timings.elapsedMs.toFixed(1)} ms (prefill), then ${((tokens / decodeMs) * 1000).toFixed(1)} tokens/s over ${batch} rows`,
);
