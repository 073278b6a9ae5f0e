/**
 * Model loading: time and peak RSS of `loadModel` on a ~500 MB random-weight Llama checkpoint,
 * stored as F32 and as BF16. Goal: peak RSS increase ≤ 1.3 × the float32 weight bytes (the
 * loader reads tensor by tensor, never a second full copy); MB/s is file bytes per second.
 *
 * The checkpoint is written here, to a temporary folder that is removed afterwards, one tensor
 * at a time. Each load runs in a fresh child process (load-child.ts), so its maxRSS is that
 * load's alone. The file was just written, so reads come from a warm page cache.
 *
 *   node --conditions=@specstream/source --import tsx packages/models/bench/load-bench.ts [--backend wasm]
 *
 * Standalone, it prints a table and writes bench-results/load.json at the repository root.
 */

import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { currentBackend } from '@specstream/core';
import { formatTable } from '../../../scripts/lib/format-table.js';
import { float32ToBfloat16Bits } from '../src/safetensors/half.js';
import type { ChildResult } from './load-child.js';

const MB = 1e6;
const GOAL_RATIO = 1.3;

/** Llama-style shape: 8 layers of d 1024 (GQA 16/4 heads), vocab 32000, tied head: ≈ 492 MB of float32. */
const SHAPE = {
  vocab: 32000,
  hidden: 1024,
  intermediate: 2816,
  layers: 8,
  heads: 16,
  kvHeads: 4,
} as const;

export interface LoadBenchOptions {
  /** tfjs backend the child loads on: default the one initBackend made current here, else 'wasm'. */
  backend?: string;
}

interface Weight {
  name: string;
  shape: number[];
  /** Norm weights: near 1, as trained checkpoints have them. */
  norm: boolean;
}

function weights(): Weight[] {
  const { vocab, hidden, intermediate, layers, heads, kvHeads } = SHAPE;
  const headDim = hidden / heads;
  const list: Weight[] = [
    { name: 'model.embed_tokens.weight', shape: [vocab, hidden], norm: false },
    { name: 'model.norm.weight', shape: [hidden], norm: true },
  ];
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}`;
    list.push(
      { name: `${p}.input_layernorm.weight`, shape: [hidden], norm: true },
      { name: `${p}.post_attention_layernorm.weight`, shape: [hidden], norm: true },
      { name: `${p}.self_attn.q_proj.weight`, shape: [heads * headDim, hidden], norm: false },
      { name: `${p}.self_attn.k_proj.weight`, shape: [kvHeads * headDim, hidden], norm: false },
      { name: `${p}.self_attn.v_proj.weight`, shape: [kvHeads * headDim, hidden], norm: false },
      { name: `${p}.self_attn.o_proj.weight`, shape: [hidden, heads * headDim], norm: false },
      { name: `${p}.mlp.gate_proj.weight`, shape: [intermediate, hidden], norm: false },
      { name: `${p}.mlp.up_proj.weight`, shape: [intermediate, hidden], norm: false },
      { name: `${p}.mlp.down_proj.weight`, shape: [hidden, intermediate], norm: false },
    );
  }
  // safetensors' Python writer stores tensors sorted by name; so does this one.
  return list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function config(): Record<string, unknown> {
  return randomLlamaConfig(SHAPE);
}

/** The config.json of a random-weight Llama of this shape (tied head, f32); the peers bench writes one too. */
export function randomLlamaConfig(shape: {
  vocab: number;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
}): Record<string, unknown> {
  const { vocab, hidden, intermediate, layers, heads, kvHeads } = shape;
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: vocab,
    hidden_size: hidden,
    intermediate_size: intermediate,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: hidden / heads,
    hidden_act: 'silu',
    max_position_embeddings: 2048,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: true,
    torch_dtype: 'float32',
  };
}

const count = (shape: readonly number[]) => shape.reduce((n, d) => n * d, 1);

/** Safetensors header as the repo's writeSafetensors lays it out: JSON space-padded to 8 bytes. */
function headerBytes(list: readonly Weight[], dtype: 'F32' | 'BF16'): Uint8Array {
  const size = dtype === 'F32' ? 4 : 2;
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const { name, shape } of list) {
    const bytes = count(shape) * size;
    header[name] = { dtype, shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const prefix = new Uint8Array(8 + padded).fill(0x20);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(padded), true);
  prefix.set(json, 8);
  return prefix;
}

/** Deterministic weights, uniform in ±0.05 (norms 1 ± 0.05), from a 32-bit xorshift. */
export function randomValues(length: number, norm: boolean, state: { seed: number }): Float32Array {
  const out = new Float32Array(length);
  let s = state.seed;
  for (let i = 0; i < length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (norm ? 1 : 0) + ((s >>> 0) / 2 ** 32 - 0.5) * 0.1;
  }
  state.seed = s;
  return out;
}

const asBytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * Writes `<root>/f32` and `<root>/bf16` (config.json + model.safetensors each) with the same
 * values, tensor by tensor: only one tensor's values are ever in memory here. (The repo's
 * writeSafetensors takes every tensor up front, which for 500 MB would hold it all.)
 */
async function writeCheckpoints(root: string): Promise<Record<'F32' | 'BF16', string>> {
  const list = weights();
  const dirs = { F32: join(root, 'f32'), BF16: join(root, 'bf16') };
  const files = await Promise.all(
    (['F32', 'BF16'] as const).map(async (dtype) => {
      mkdirSync(dirs[dtype], { recursive: true });
      const json = { ...config(), torch_dtype: dtype === 'F32' ? 'float32' : 'bfloat16' };
      await writeFile(join(dirs[dtype], 'config.json'), `${JSON.stringify(json, null, 2)}\n`);
      const handle = await open(join(dirs[dtype], 'model.safetensors'), 'w');
      await handle.write(headerBytes(list, dtype));
      return handle;
    }),
  );
  const [f32, bf16] = files;
  try {
    const state = { seed: 0x9e3779b9 | 0 };
    for (const { shape, norm } of list) {
      const values = randomValues(count(shape), norm, state);
      await f32.write(asBytes(values));
      await bf16.write(asBytes(float32ToBfloat16Bits(values)));
    }
  } finally {
    await Promise.all(files.map((handle) => handle.close()));
  }
  return dirs;
}

/** Runs load-child.ts in a fresh Node with this process's flags (tsx, source conditions). */
function runChild(dir: string, backend: string): Promise<ChildResult> {
  const script = fileURLToPath(new URL('./load-child.ts', import.meta.url));
  const args = [...process.execArgv, '--expose-gc', script, dir, backend];
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.on('error', fail);
    child.on('close', (code) => {
      const line = stdout.split('\n').find((l) => l.startsWith('LOAD_RESULT '));
      if (code === 0 && line) done(JSON.parse(line.slice('LOAD_RESULT '.length)) as ChildResult);
      else fail(new Error(`load-child.ts exited with ${code}: ${(stderr || stdout).trim().slice(-2000)}`));
    });
  });
}

const round = (value: number, digits: number) => Number(value.toFixed(digits));

export async function runLoadBench(
  log: (line: string) => void,
  options: LoadBenchOptions = {},
): Promise<Record<string, unknown>> {
  const backend = options.backend ?? currentBackend() ?? 'wasm';
  const list = weights();
  const parameters = list.reduce((n, w) => n + count(w.shape), 0);
  const float32Bytes = parameters * 4;
  const root = await mkdtemp(join(os.tmpdir(), 'specstream-load-bench-'));
  const rows: Record<string, unknown>[] = [];
  const results: Record<string, unknown> = {};
  try {
    const writeStart = performance.now();
    const dirs = await writeCheckpoints(root);
    log(
      `wrote ${(float32Bytes / MB).toFixed(0)} MB F32 + ${((parameters * 2) / MB).toFixed(0)} MB BF16 ` +
        `checkpoints (${parameters} parameters, ${list.length} tensors) in ${((performance.now() - writeStart) / 1000).toFixed(1)} s`,
    );
    for (const dtype of ['F32', 'BF16'] as const) {
      const fileBytes = parameters * (dtype === 'F32' ? 4 : 2) + headerBytes(list, dtype).length;
      const child = await runChild(dirs[dtype], backend);
      const peakIncrease = child.maxRss - child.baselineRss;
      const ratio = peakIncrease / float32Bytes;
      const result = {
        backend: child.backend,
        fileMB: round(fileBytes / MB, 1),
        float32WeightMB: round(float32Bytes / MB, 1),
        loadSeconds: round(child.seconds, 3),
        MBperS: round(fileBytes / MB / child.seconds, 1),
        baselineRssMB: round(child.baselineRss / MB, 1),
        peakRssIncreaseMB: round(peakIncrease / MB, 1),
        // Highest RSS at a progress callback: the reading phase, before the model fuses its weights.
        sampledPeakRssIncreaseMB: round((child.sampledPeakRss - child.baselineRss) / MB, 1),
        ratio: round(ratio, 3),
        goalMet: ratio <= GOAL_RATIO,
        tensorMB: round(child.tensorBytes / MB, 1),
        numTensors: child.numTensors,
        progressCalls: child.progressCalls,
        progressReachedTotal:
          child.progressCalls > 0 && child.progressLoadedBytes === child.progressTotalBytes,
        progressTotalMB: round(child.progressTotalBytes / MB, 1),
      };
      results[dtype] = result;
      rows.push({
        dtype,
        backend: result.backend,
        'file MB': result.fileMB,
        'f32 weights MB': result.float32WeightMB,
        'load s': result.loadSeconds,
        'MB/s': result.MBperS,
        'peak RSS +MB': result.peakRssIncreaseMB,
        'reading +MB': result.sampledPeakRssIncreaseMB,
        'peak / f32': result.ratio,
        [`≤ ${GOAL_RATIO}`]: result.goalMet ? 'yes' : 'NO',
        progress: `${result.progressCalls} calls${result.progressReachedTotal ? ', reached total' : ', INCOMPLETE'}`,
      });
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  log(`loadModel, fresh process per dtype (goal: peak RSS increase ≤ ${GOAL_RATIO} × float32 weight bytes)`);
  for (const line of formatTable(rows)) log(line);
  return {
    bench: 'load',
    date: new Date().toISOString(),
    node: process.version,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    backend,
    model: { modelType: 'llama', ...SHAPE, tieWordEmbeddings: true, parameters, tensors: list.length },
    mb:
      '10^6 bytes; MB/s = file bytes / load seconds; peak RSS = maxRSS − RSS just before loadModel; ' +
      'reading = highest RSS at a progress callback − that baseline (before createCausalLm fuses q/k/v and gate/up)',
    goalRatio: GOAL_RATIO,
    ...results,
  };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { backend: { type: 'string' } } });
  const result = await runLoadBench((line) => console.log(line), { backend: values.backend });
  const dir = new URL('../../../bench-results/', import.meta.url);
  mkdirSync(dir, { recursive: true });
  writeFileSync(new URL('load.json', dir), `${JSON.stringify(result, null, 2)}\n`);
  console.log('wrote bench-results/load.json');
}
