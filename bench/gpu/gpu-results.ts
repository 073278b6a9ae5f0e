import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { GpuBenchRow } from '../../packages/core/bench/gpu-bench.js';
import { markdownTable, replaceMarkedSection } from '../../packages/speculative/bench/pair-report.js';
import { benchCommit } from '../../scripts/lib/bench-commit.js';

/** What `pnpm bench --only gpu` measured (packages/core/bench/gpu-bench.ts), with the machine. */
export interface GpuRun {
  /** The commit the run measured (bench-results/gpu.json's, when a section is written again from it). */
  commit?: ReturnType<typeof benchCommit>;
  adapter: string;
  date: string;
  node: string;
  copyGBperS: number;
  readGBperS: number;
  timestamps: boolean;
  rows: GpuBenchRow[];
}

/** A row of tools/peers/transformers_shapes.py's JSON (transformers on the same shapes, same machine). */
interface TransformersRow {
  shape: string;
  mode: string;
  dtype: string;
  batch: number;
  tokensPerS?: number;
  stepMs?: number;
  error?: string;
  skipped?: string;
  /** compile rows: reduce-overhead (CUDA graphs), or default where that failed. */
  compileMode?: string;
}

interface TransformersRun {
  torch?: string;
  transformers?: string;
  device?: string;
  copyBandwidth?: { GBperS: number };
  rows: TransformersRow[];
}

const SHAPE_KEYS: Record<string, string> = { 'GPT-2 small': 'gpt2-small', 'Llama-0.5B': 'llama-0.5b' };
/** Our weight formats against transformers' dtypes: f32 ↔ fp32, f16 ↔ bf16 (both 16-bit weights). */
const DTYPE_OF: Record<string, string> = { f32: 'fp32', f16: 'bf16' };

export function gpuMarkdownSection(
  run: GpuRun & { commit: ReturnType<typeof benchCommit> },
  peers?: TransformersRun,
): string {
  const met = (ok: boolean) => (ok ? 'met' : '**missed**');
  const rows = run.rows.map((r) => [
    r.shape,
    r.weights,
    String(r.batch),
    r.path,
    r.tokensPerS.toFixed(1),
    r.hostMs.toFixed(3),
    r.pipelinedMs.toFixed(3),
    r.gpuMs === undefined ? '–' : r.gpuMs.toFixed(3),
    r.weightGBperS === undefined ? '–' : r.weightGBperS.toFixed(0),
    r.ofCopyBandwidth === undefined ? '–' : `${(100 * r.ofCopyBandwidth).toFixed(1)}%`,
    r.pipelinedWeightGBperS === undefined ? '–' : r.pipelinedWeightGBperS.toFixed(0),
  ]);
  const find = (shape: string, weights: string, batch: number) =>
    run.rows.find(
      (r) => r.shape === shape && r.weights === weights && r.batch === batch && r.path === 'recorded',
    );
  const gpt2 = find('GPT-2 small', 'f32', 1);
  const llama = find('Llama-0.5B', 'f16', 1);
  const goals: string[] = [];
  if (gpt2) {
    goals.push(
      `- GPT-2 small, batch 1, fp32 ≥ 1000 tokens/s: ${gpt2.tokensPerS} (${met(gpt2.tokensPerS >= 1000)}); host time per step ≤ 0.3 ms: ${gpt2.hostMs} ms (${met(gpt2.hostMs <= 0.3)})`,
    );
  }
  if (llama?.ofCopyBandwidth !== undefined) {
    const cuda = peers?.copyBandwidth?.GBperS;
    const ofCuda = cuda && llama.weightGBperS !== undefined ? llama.weightGBperS / cuda : undefined;
    goals.push(
      `- Llama-0.5B shape, batch 1, f16: weight reads ≥ 50% of the copy bandwidth: ${llama.weightGBperS} GB/s, ${(100 * llama.ofCopyBandwidth).toFixed(1)}% of WebGPU's copy (${met(llama.ofCopyBandwidth >= 0.5)})${ofCuda === undefined ? '' : `; ${(100 * ofCuda).toFixed(1)}% of CUDA's copy on the same card, ${cuda} GB/s (${met(ofCuda >= 0.5)})`}`,
    );
  }
  // Issue 20's webgpu goals: f16 and q8 against f32 on the memory-bound shape (q4 reported beside them).
  const llamaF32 = find('Llama-0.5B', 'f32', 1);
  if (llamaF32) {
    const goal: Record<string, number | undefined> = { f16: 1.8, q8: 3, q4: undefined };
    const parts = Object.entries(goal).flatMap(([weights, want]) => {
      const r = find('Llama-0.5B', weights, 1);
      if (!r) return [];
      const ratio = r.tokensPerS / llamaF32.tokensPerS;
      return [
        `${weights} ${ratio.toFixed(2)}× (${r.tokensPerS.toFixed(1)} tok/s${want === undefined ? '' : `; goal ≥ ${want}×: ${met(ratio >= want)}`})`,
      ];
    });
    if (parts.length > 0)
      goals.push(
        `- Llama-0.5B shape, batch 1, recorded, against f32's ${llamaF32.tokensPerS.toFixed(1)} tok/s (issue 20): ${parts.join('; ')}`,
      );
  }
  // Where a batch-1 step's GPU time goes: the profiled replay's dispatches by kind of program.
  const profiles = run.rows
    .filter((r) => r.path === 'recorded' && r.batch === 1 && r.profile)
    .map((r) => {
      const kinds = new Map<string, { calls: number; ms: number }>();
      for (const p of r.profile!.programs) {
        const kind = programKind(p.program);
        const k = kinds.get(kind) ?? { calls: 0, ms: 0 };
        k.calls += p.calls;
        k.ms += p.ms;
        kinds.set(kind, k);
      }
      const parts = [...kinds.entries()]
        .sort((a, b) => b[1].ms - a[1].ms)
        .map(([kind, k]) => `${kind} ${k.ms.toFixed(3)} (×${k.calls})`);
      return `- ${r.shape} ${r.weights}: ${r.profile!.totalMs.toFixed(3)} ms over ${r.profile!.dispatches} dispatches: ${parts.join(', ')}`;
    });
  if (profiles.length > 0) {
    goals.push(
      ...(goals.length > 0 ? [''] : []),
      'Batch-1 steps profiled (one replay with each dispatch in a timed pass of its own, which adds a few µs a dispatch), ms by program:',
      '',
      ...profiles,
    );
  }
  const lines = [
    `Adapter ${run.adapter} (Vulkan through Dawn) · backend **webgpu** · commit \`${run.commit.hash}\`${run.commit.dirty ? ' (dirty)' : ''} · ${run.date} · Node ${run.node} · copy bandwidth ${run.copyGBperS} GB/s (read + write); a WGSL program reading 1 GiB ${run.readGBperS} GB/s · GPU times ${run.timestamps ? 'from timestamp queries around the recorded pass' : 'not available (no timestamp queries): bandwidth from the pipelined time'}`,
    '',
    ...markdownTable(
      [
        'shape',
        'weights',
        'batch',
        'path',
        'tok/s',
        'host ms/step',
        'pipelined ms/step',
        'GPU ms/step',
        'weight GB/s',
        'of copy',
        'weight GB/s pipelined',
      ],
      rows,
      [false, false, true, false, true, true, true, true, true, true, true],
    ),
    '',
    ...goals,
  ];
  if (peers) {
    const cmp: string[][] = [];
    // q8 and q4 have no transformers dtype to stand against, the shipped target no transformers shape.
    for (const r of run.rows.filter(
      (x) => x.path === 'recorded' && DTYPE_OF[x.weights] !== undefined && SHAPE_KEYS[x.shape] !== undefined,
    )) {
      const key = SHAPE_KEYS[r.shape];
      const dtype = DTYPE_OF[r.weights];
      const of = (mode: string) =>
        peers.rows.find(
          (p) => p.shape === key && p.dtype === dtype && p.batch === r.batch && p.mode === mode,
        );
      const eager = of('eager');
      const compiled = of('compile-static');
      const ratio = (p?: TransformersRow) =>
        p?.tokensPerS
          ? `${(r.tokensPerS / p.tokensPerS).toFixed(2)}× (${p.tokensPerS.toFixed(1)}${p.compileMode === 'default' ? ', no CUDA graphs' : ''})`
          : p?.skipped || p?.error?.startsWith('skipped')
            ? 'not run'
            : p?.error
              ? 'failed'
              : '–';
      cmp.push([
        r.shape,
        `${r.weights} / ${dtype}`,
        String(r.batch),
        r.tokensPerS.toFixed(1),
        ratio(eager),
        ratio(compiled),
      ]);
    }
    const behind = cmp.filter((c) => c[4].includes('×') && Number.parseFloat(c[4]) < 1);
    lines.push(
      '',
      `Beside it, in the same device call: Hugging Face transformers on the same random shapes (\`tools/peers/transformers_shapes.py\`; ${peers.device ?? '?'}, torch ${peers.torch ?? '?'}, transformers ${peers.transformers ?? '?'}), greedy, 128-token prompt, tokens/s from the decode steps (its own median of 3). Our f16 weights stand against its bf16 (both 16-bit; we accumulate in f32). "failed": the row raised (its error is in the JSON); "not run": past the script's time budget.${peers.copyBandwidth ? ` CUDA's copy bandwidth on the same card (torch, 1 GiB): ${peers.copyBandwidth.GBperS} GB/s.` : ''}`,
      '',
      ...markdownTable(
        [
          'shape',
          'weights / dtype',
          'batch',
          'specstream tok/s',
          'vs transformers eager',
          'vs torch.compile (static cache)',
        ],
        cmp,
        [false, false, true, true, true, true],
      ),
      '',
      `- Ahead of transformers eager on every shape and dtype measured (${cmp.filter((c) => c[4].includes('×')).length} of ${cmp.length} rows have a transformers figure): ${met(behind.length === 0 && cmp.some((c) => c[4].includes('×')))}${behind.length > 0 ? ` (behind on ${behind.map((c) => `${c[0]} ${c[1]} b${c[2]}`).join(', ')})` : ''}`,
    );
  }
  return lines.join('\n');
}

/** A program's kind from its shaderKey: specstreamLinear_… → product, specstreamAttention_… → attention. */
function programKind(key: string): string {
  const name = key.replace(/^specstream/, '').split(/[_,]/)[0];
  const kinds: Record<string, string> = {
    Linear: 'products',
    Attention: 'attention',
    AttentionCombine: 'attention merge',
    KvWrite: 'cache writes',
    Embed: 'embedding',
  };
  return kinds[name] ?? name;
}

const GPU_INTRO = [
  '## GPU decoding (issue 21)',
  '',
  "`scripts/gpu/run.sh bench --only gpu` on the GPU machine (packages/core/bench/gpu-bench.ts, written by bench/gpu/gpu-results.ts): greedy decoding of random-weight models by `generate` (on webgpu each step runs on the previous step's argmax, still on the device, and is queued before that argmax is read back; tokens/s from the first token to the last), each row with the webgpu set's recorded passes (one submission a step) and without them (`per-op`: tfjs's program runner). Host ms: the step's calls before the read waits. Pipelined ms: the same step queued back to back with one read at the end. GPU ms: timestamp queries around the recorded pass. Weight GB/s: the bytes of every product and the head over the GPU time (the pipelined time where there is none); \"of copy\": that over the copy bandwidth measured in the same run.",
].join('\n');

export function writeGpuResults(
  run: GpuRun,
  resultsPath: string,
  transformersJson: string | undefined,
  log: (line: string) => void,
): void {
  const result = { ...run, commit: run.commit ?? benchCommit() };
  mkdirSync('bench-results', { recursive: true });
  writeFileSync('bench-results/gpu.json', `${JSON.stringify(result, null, 2)}\n`);
  log('wrote bench-results/gpu.json');
  let peers: TransformersRun | undefined;
  if (transformersJson) {
    if (existsSync(transformersJson))
      peers = JSON.parse(readFileSync(transformersJson, 'utf8')) as TransformersRun;
    else log(`no ${transformersJson}: the GPU section has no transformers rows`);
  }
  let doc = existsSync(resultsPath) ? readFileSync(resultsPath, 'utf8') : '# Results\n';
  if (!doc.includes('<!-- gpu:webgpu:start -->')) doc = `${doc.trimEnd()}\n\n${GPU_INTRO}\n`;
  doc = replaceMarkedSection(doc, 'gpu:webgpu', gpuMarkdownSection(result, peers));
  writeFileSync(resultsPath, doc);
  log(`wrote ${resultsPath} (section gpu:webgpu)`);
}
