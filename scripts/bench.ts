// `pnpm bench`: runs the benchmarks on every backend available here, prints a
// table per benchmark and writes bench-results/<name>.json.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { type BackendName, type CausalLmConfig, GPT2_SMALL_SHAPE, initBackend } from '@specstream/core';
import { ggufHfConfig, isGgufPath, loadCausalLm, openGguf, readHfConfig } from '@specstream/models';

/** A model's Hugging Face config: its folder's config.json, or what a GGUF file's metadata says. */
async function hfConfigOf(path: string): Promise<Record<string, unknown>> {
  if (!(await isGgufPath(path))) return readHfConfig(path);
  const file = await openGguf(path);
  try {
    return ggufHfConfig(file);
  } finally {
    await file.close();
  }
}

import { writeGpuResults } from '../bench/gpu/gpu-results.js';
import {
  PAIR_ARGS,
  type PairResult,
  pairSettings,
  runPairBench,
  writePairResults,
} from '../bench/pair/pair-bench.js';
import {
  PEERS_ARGS,
  peersSettings,
  printPeers,
  runPeersBench,
  writePeersResults,
} from '../bench/peers/peers-bench.js';
import {
  QUANT_MODEL_ARGS,
  type QuantModelResult,
  quantModelSettings,
  runQuantModelBench,
  writeQuantModelResults,
} from '../bench/quant-model/quant-model-bench.js';
import {
  runServerBench,
  SERVER_ARGS,
  serverSettings,
  writeServerResults,
} from '../bench/server/server-bench.js';
import { writeSpeechResults } from '../bench/speech/speech-results.js';
import { runCoreBench } from '../packages/core/bench/core-bench.js';
import { runGpuBench } from '../packages/core/bench/gpu-bench.js';
import { quantBenchTable, runQuantBench } from '../packages/core/bench/quant-bench.js';
import { runLoadBench } from '../packages/models/bench/load-bench.js';
import { runSpecBench } from '../packages/speculative/bench/spec-bench.js';
import { runEncoderBench } from '../packages/streaming/bench/encoder-bench.js';
import {
  runSpeechBench,
  SPEECH_ARGS,
  type SpeechResult,
  speechSettings,
} from '../packages/streaming/bench/speech-bench.js';
import { runSynthBench } from '../packages/streaming/bench/synth-bench.js';

const { values } = parseArgs({
  // `pnpm bench -- --reps 3` passes the `--` through.
  args: process.argv.slice(2).filter((a) => a !== '--'),
  options: {
    backends: { type: 'string', default: 'webgpu,wasm,cpu' },
    // Default: every suite; the pair's on cpu only when asked for by name (see below).
    only: { type: 'string' },
    reps: { type: 'string', default: '5' },
    // Speculative runs: tokens per prompt (default 96, 48 on cpu) and prompts per k (default 16
    // on webgpu, 8 elsewhere); fewer fit a run into a time limit.
    'spec-tokens': { type: 'string' },
    'spec-prompts': { type: 'string' },
    // --only pair: the trained pair (bench/pair/pair-bench.ts lists its flags).
    ...PAIR_ARGS,
    // --only quant-model: q8/q4 models against f32 on wasm (bench/quant-model/quant-model-bench.ts).
    ...QUANT_MODEL_ARGS,
    // --only peers: specstream against node-llama-cpp and transformers.js on CPU (bench/peers/peers-bench.ts lists its flags).
    ...PEERS_ARGS,
    // --only server: `specstream serve` under 1 and 16 streams (bench/server/server-bench.ts lists its flags).
    ...SERVER_ARGS,
    // --only speech: the shipped speech models on held-out speech (bench/speech/speech-bench.ts).
    ...SPEECH_ARGS,
    // --only gpu (webgpu): decoding with and without recorded passes (packages/core/bench/gpu-bench.ts).
    'gpu-batches': { type: 'string', default: '1,8,32' },
    'gpu-steps': { type: 'string', default: '64' },
    'gpu-reps': { type: 'string', default: '3' },
    // Comma-separated parts of 'GPT-2 small f32', 'Llama-0.5B f16', ...: only those shapes.
    'gpu-shapes': { type: 'string' },
    // Weight formats whose shapes also run per-op (tfjs's program runner), for the recorded path's gain.
    'gpu-per-op': { type: 'string', default: 'f32,f16' },
    // The shipped target for the gpu suite: its folder (default --pair-target) or its GGUF export.
    'gpu-target': { type: 'string' },
    // tools/peers/transformers_shapes.py's JSON from the same machine, shown beside the GPU rows.
    'gpu-transformers': { type: 'string' },
  },
});

// The cpu backend runs ~0.5 GFLOP/s: GPT-2 small would take hours there, so
// it gets a narrower model of the same depth and vocabulary, and says so.
const CPU_SHAPE: CausalLmConfig = { ...GPT2_SMALL_SHAPE, hiddenSize: 128, heads: 2, kvHeads: 2, layers: 4 };

const suites = new Set((values.only ?? 'core,speculative,streaming,load,pair').split(','));
const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  node: process.version,
  model: 'GPT-2 small shape (d 768, 12 layers, 12 heads, vocab 50257), random weights',
};
const speculative: Record<string, unknown> = { date: results.date, node: process.version };
const streaming: Record<string, unknown> = { date: results.date, node: process.version };
const log = (line: string) => console.log(`  ${line}`);
const pairOptions = suites.has('pair') ? pairSettings(values) : undefined;
const pair: Record<string, PairResult> = {};
// --only quant: the quantized linear kernels against the f32 product (wasm only; not in the default set).
const quant: Record<string, unknown> = { date: results.date, node: process.version };
// --only quant-model: whole q8/q4 models against f32 (wasm only; not in the default set).
const quantModelOptions = suites.has('quant-model') ? quantModelSettings(values) : undefined;
let quantModel: QuantModelResult | { skipped: string } | undefined;
// --only speech (not in the default set): the shipped recognizer and synthesizer, wasm only.
const speechOptions = suites.has('speech') ? speechSettings(values) : undefined;
let speech: SpeechResult | undefined;
// --only peers (not in the default set) runs on CPU, a child process per contender: no backend here.
// --only server (not in the default set) runs the server in a child process: no backend here either.
const peersAlone = [...suites].every((suite) => suite === 'peers' || suite === 'server');
for (const name of (peersAlone ? [] : values.backends.split(',')) as BackendName[]) {
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
  // Streaming first: its offline reference pass allocates large activations, which took
  // 711 instead of 477 ms in a wasm heap grown and fragmented by the GPT-2-sized suites.
  if (suites.has('streaming')) {
    if (slow) {
      console.log(
        '-- streaming: skipped on cpu (a 10M-parameter encoder at 0.5 GFLOP/s says nothing useful)',
      );
    } else {
      console.log(
        '-- streaming: T1-T3 encoder (10M parameters, random weights), synthesizer time to first audio',
      );
      streaming[name] = { encoder: await runEncoderBench(log), synthesizer: await runSynthBench(log) };
    }
  }
  if (suites.has('core')) {
    const core = await runCoreBench(
      {
        config: slow ? CPU_SHAPE : GPT2_SMALL_SHAPE,
        prefillTokens: slow ? 150 : 1500,
        context: 512,
        reps: Number(values.reps),
      },
      log,
    );
    results[name] = { model: slow ? 'reduced' : 'gpt2-small', ...core };
  }
  if (suites.has('gpu') && name === 'webgpu') {
    // The shipped target's own weights in every format, beside the random shapes (issue 20); or its
    // GGUF export (--gpu-target), small enough to travel to the GPU machine with the pack.
    const shippedTarget = String(values['gpu-target'] ?? values['pair-target']);
    console.log(
      '-- gpu: greedy decoding, recorded passes against per-op, GPT-2 small and Llama-0.5B shapes, f32/f16/q8/q4',
    );
    const run = await runGpuBench(
      {
        batches: String(values['gpu-batches']).split(',').map(Number),
        steps: Number(values['gpu-steps']),
        context: 128,
        reps: Number(values['gpu-reps']),
        shapes: values['gpu-shapes']?.split(','),
        perOpWeights: String(values['gpu-per-op']).split(',').filter(Boolean),
        models: existsSync(shippedTarget)
          ? [
              {
                name: 'shipped target',
                mlpWidth: (await hfConfigOf(shippedTarget)).intermediate_size as number,
                load: (weights) => loadCausalLm(shippedTarget, { kernels: 'webgpu', weights }),
              },
            ]
          : [],
      },
      log,
    );
    writeGpuResults(
      { ...run, adapter: await adapterName(), date: new Date().toISOString(), node: process.version },
      'RESULTS.md',
      values['gpu-transformers'],
      console.log,
    );
  }
  if (suites.has('quant') && name === 'wasm') {
    console.log('-- quant: GPT-2-small-shaped products, f32 vs q8 vs q4, 1 and 4 rows, weights from memory');
    const run = await runQuantBench({ reps: Math.max(11, Number(values.reps)) }, log);
    console.table(quantBenchTable(run.rows));
    quant[name] = run;
  }
  if (quantModelOptions && name === 'wasm') {
    console.log('-- quant-model: q8/q4 weights against f32 (decode, held-out perplexity, the shipped pair)');
    quantModel = await runQuantModelBench(quantModelOptions, log);
  }
  if (speechOptions && name === 'wasm') {
    console.log('-- speech: shipped recognizer and synthesizer on held-out speech');
    speech = await runSpeechBench(speechOptions, log);
  }
  if (suites.has('speculative')) {
    console.log(
      `-- speculative (${slow ? 'reduced model, 1-layer draft' : 'GPT-2 small shape, 2-layer draft'})`,
    );
    speculative[name] = await runSpecBench(
      {
        config: slow ? CPU_SHAPE : GPT2_SMALL_SHAPE,
        draftLayers: slow ? 1 : 2,
        epsilon: 0.1,
        promptTokens: 32,
        newTokens: values['spec-tokens'] !== undefined ? Number(values['spec-tokens']) : slow ? 48 : 96,
        // On an H200, blocks of 8 prompts put S1's lowest ratio at 0.89–0.94 over three runs while the
        // ratios from in-run costs stayed at 0.96–0.99: the costs timed between prompts and the runs
        // sampled too few minutes of a drifting host. 16 prompts gave 0.92 and 0.97 (docs/bench/2026-12-02d).
        prompts:
          values['spec-prompts'] !== undefined ? Number(values['spec-prompts']) : name === 'webgpu' ? 16 : 8,
        reps: Number(values.reps),
      },
      log,
    );
  }
  if (pairOptions && slow && values.only === undefined) {
    // tfjs's pure-JS kernels run the 26M-parameter target at a few tokens/s: ask with --only pair.
    console.log('-- pair: skipped on cpu unless named in --only (a 26M-parameter target at ~0.5 GFLOP/s)');
  } else if (pairOptions) {
    console.log('-- pair (trained draft/target pair on held-out text)');
    pair[name] = await runPairBench(name, pairOptions, log);
  }
}

mkdirSync('bench-results', { recursive: true });
if (pairOptions) writePairResults(pair, pairOptions, console.log);
if (quantModelOptions) {
  writeQuantModelResults(
    quantModel ?? { skipped: 'the wasm backend did not run' },
    quantModelOptions,
    console.log,
  );
}
if (speechOptions && speech) writeSpeechResults(speech, speechOptions, console.log);
if (suites.has('quant')) {
  writeFileSync('bench-results/quant.json', `${JSON.stringify(quant, null, 2)}\n`);
  console.log('wrote bench-results/quant.json');
}
if (suites.has('streaming')) {
  writeFileSync('bench-results/streaming.json', `${JSON.stringify(streaming, null, 2)}\n`);
  console.log('wrote bench-results/streaming.json');
}
if (suites.has('core')) {
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
  writeFileSync('bench-results/core.json', `${JSON.stringify(results, null, 2)}\n`);
  console.log('wrote bench-results/core.json');
}

if (suites.has('speculative')) {
  const rows = Object.entries(speculative).filter(([, r]) => typeof r === 'object');
  for (const [backend, r] of rows) {
    const x = r as { S1: Record<string, unknown>[] };
    console.log(`\nSpeculative S1 on ${backend} (goal: measured ≥ 0.9 × predicted)`);
    console.table(x.S1.map(({ costs: _, ...row }) => row));
  }
  console.table(
    rows.map(([backend, r]) => {
      const x = r as Record<string, any>;
      return {
        backend,
        'S2 speedup (best k)': x.S2.speedup,
        'best k': x.S2.bestFixedK,
        'adaptive / best fixed': x.adaptive.vsBestFixed,
        'adaptive mean k': x.adaptive.meanK,
        'lookup gain': x.promptLookup.gain,
        'lookup α': x.promptLookup.alpha,
      };
    }),
  );
  writeFileSync('bench-results/speculative.json', `${JSON.stringify(speculative, null, 2)}\n`);
  console.log('wrote bench-results/speculative.json');
}

if (suites.has('peers')) {
  console.log(
    '\n== peers: specstream against node-llama-cpp and transformers.js on CPU (wasm backend; child process per contender)',
  );
  const peers = await runPeersBench(peersSettings(values), log);
  printPeers(peers, console.log);
  writePeersResults(peers, console.log);
}

if (suites.has('server')) {
  console.log('\n== server: specstream serve on the shipped pair (wasm, child process), streaming clients');
  const server = await runServerBench(serverSettings(values), log);
  writeServerResults(server, console.log);
}

if (suites.has('load')) {
  console.log('\n== model loading (~500 MB random Llama checkpoint, fresh process per dtype, wasm)');
  const load = await runLoadBench(log, { backend: 'wasm' });
  writeFileSync('bench-results/load.json', `${JSON.stringify(load, null, 2)}\n`);
  console.log('wrote bench-results/load.json');
}

/** The WebGPU adapter's device name (e.g. nvidia-h100-80gb-hbm3), for the GPU section. */
async function adapterName(): Promise<string> {
  const gpu = (globalThis as { navigator?: { gpu?: { requestAdapter(): Promise<unknown> } } }).navigator?.gpu;
  const adapter = (await gpu?.requestAdapter()) as {
    info?: { vendor?: string; device?: string; description?: string };
  } | null;
  const info = adapter?.info;
  return info ? [info.device || info.description, info.vendor].filter(Boolean).join(', ') : 'unknown';
}
