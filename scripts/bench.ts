// `pnpm bench`: runs the benchmarks on every backend available here, prints a
// table per benchmark and writes bench-results/<name>.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { type BackendName, type CausalLmConfig, GPT2_SMALL_SHAPE, initBackend } from '@specstream/core';
import { runCoreBench } from '../packages/core/bench/core-bench.js';

const { values } = parseArgs({
  options: {
    backends: { type: 'string', default: 'webgpu,wasm,cpu' },
    reps: { type: 'string', default: '5' },
  },
});

// The cpu backend runs ~0.5 GFLOP/s: GPT-2 small would take hours there, so
// it gets a narrower model of the same depth and vocabulary, and says so.
const CPU_SHAPE: CausalLmConfig = { ...GPT2_SMALL_SHAPE, hiddenSize: 128, heads: 2, kvHeads: 2, layers: 4 };

const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  node: process.version,
  model: 'GPT-2 small shape (d 768, 12 layers, 12 heads, vocab 50257), random weights',
};
for (const name of values.backends.split(',') as BackendName[]) {
  try {
    await initBackend({ backend: name });
  } catch (error) {
    console.log(`\n== ${name}: not available (${(error as Error).message.split('\n')[0]})`);
    results[name] = { available: false };
    continue;
  }
  const slow = name === 'cpu';
  console.log(
    `\n== ${name}${slow ? ' (reduced model: d 128, 4 layers, vocab 50257; B3 on 150 tokens)' : ''}`,
  );
  const core = await runCoreBench(
    {
      config: slow ? CPU_SHAPE : GPT2_SMALL_SHAPE,
      prefillTokens: slow ? 150 : 1500,
      context: 512,
      reps: Number(values.reps),
    },
    (line) => console.log(`  ${line}`),
  );
  results[name] = { model: slow ? 'reduced' : 'gpt2-small', ...core };
}

const table = Object.entries(results)
  .filter(([, r]) => typeof r === 'object' && r !== null && 'B1' in (r as object))
  .map(([backend, r]) => {
    const x = r as Record<string, any>;
    return {
      backend,
      model: x.model,
      'B1 8/1 steps': x.B1.ratio,
      'B2 max4096/256': x.B2,
      'B3 1-by-1/bucketed': x.B3.ratio,
      'B3 shapes': x.B3.distinctShapes,
      'B4 tok/s b1': x.B4.batch1TokensPerS,
      'B4 tok/s b8': x.B4.batch8TokensPerS,
      'B4 ops/step': x.B4.opsPerStep,
    };
  });
console.log('\nCore engine (goals: B1 ≤ 1.5 wasm / ≤ 1.15 GPU, B2 ≤ 1.10, B3 ≥ 20 with ≤ 4 shapes)');
console.table(table);
mkdirSync('bench-results', { recursive: true });
writeFileSync('bench-results/core.json', `${JSON.stringify(results, null, 2)}\n`);
console.log('wrote bench-results/core.json');
