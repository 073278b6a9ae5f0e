/**
 * The shipped target's held-out perplexity on the webgpu kernel set, per weight format (f16 exists
 * only there): the 48 paragraphs of models/heldout-prompts.json, each scored whole by core's
 * scoreSequences, as the quant-model suite scores them on wasm. Without a GPU, run it on Mesa's
 * lavapipe (scripts/lavapipe.sh; about 8 minutes a format on 2 cores):
 *
 *   W=f32,f16 .dev/lavapipe/node --conditions=@specstream/source --import tsx bench/quant-model/webgpu-perplexity.ts
 */
import { readFileSync } from 'node:fs';
import { initBackend, scoreSequences } from '@specstream/core';
import { loadCausalLm, loadTokenizer } from '@specstream/models';

const TARGET = 'models/specstream-docs-target';
await initBackend({ backend: 'webgpu' });
const tokenizer = await loadTokenizer(TARGET);
const texts = (JSON.parse(readFileSync('models/heldout-prompts.json', 'utf8')) as { prompts: string[] })
  .prompts;
const paragraphs = texts.map((p) => tokenizer.encode(p));
const mean = (a: Float64Array) => a.reduce((s, x) => s + x, 0) / a.length;
let f32: { ce: number; top1: Int32Array } | undefined;
for (const weights of (process.env.W ?? 'f32,f16,q8').split(',') as ('f32' | 'f16' | 'q8')[]) {
  const model = await loadCausalLm(TARGET, { kernels: 'webgpu', weights });
  const started = performance.now();
  const scores = await scoreSequences(model, paragraphs);
  model.dispose();
  const ce = mean(scores.crossEntropy);
  const versus =
    f32 === undefined || weights === 'f32'
      ? ''
      : `, vs f32 ${((ce / f32.ce - 1) * 100).toFixed(3)}%, top-1 = f32 ${((100 * scores.top1.filter((x, i) => x === f32!.top1[i]).length) / scores.top1.length).toFixed(1)}%`;
  if (weights === 'f32') f32 = { ce, top1: scores.top1 };
  console.log(
    `${weights}: ${scores.crossEntropy.length} next tokens, cross-entropy ${ce.toFixed(4)}, perplexity ${Math.exp(ce).toFixed(2)}${versus} (${((performance.now() - started) / 1000).toFixed(0)} s)`,
  );
}
process.exit(0);
