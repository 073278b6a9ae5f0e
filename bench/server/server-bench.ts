// `pnpm bench --only server` (opt-in): `specstream serve` on the shipped pair in a child process,
// streaming clients in this one. Total tokens/s at 1 and 16 concurrent streams, inter-token gaps
// (between successive deliveries to one stream: a speculative step may deliver several tokens at
// once, so a gap is what a reader of the stream waits), time to first token under load.
import { type ChildProcess, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportGguf, loadTokenizer } from '@specstream/models';
import { driveStreams, type StreamsRun } from './drive-streams.js';
import type { LoadResult, LoadSpec } from './load-child.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export const SERVER_ARGS = {
  'server-streams': { type: 'string' },
  'server-requests': { type: 'string' },
  'server-tokens': { type: 'string' },
  'server-max-batch': { type: 'string' },
  /** Engines run under the same load without HTTP: llama.cpp,specstream (default) or none. */
  'server-engines': { type: 'string' },
} as const;

export interface ServerBenchSettings {
  /** Concurrent streams per scenario (default 1 and 16). */
  streams: number[];
  /** Requests each stream sends one after another (default 4). */
  requests: number;
  /** max_tokens of each request (default 64); greedy, so a request may stop earlier at EOS. */
  tokens: number;
  maxBatch: number;
  /** Engines compared under the same load without HTTP (load-child.ts). */
  engines: ('llama.cpp' | 'specstream')[];
  /** Model folders (default: the shipped pair in models/; SPECSTREAM_SHIPPED_MODELS names another copy). */
  modelsDir: string;
}

export function serverSettings(values: Record<string, unknown>): ServerBenchSettings {
  const number = (key: string, fallback: number) =>
    values[key] === undefined ? fallback : Number(values[key] as string);
  const streams =
    values['server-streams'] === undefined
      ? [1, 16]
      : String(values['server-streams']).split(',').map(Number);
  return {
    streams,
    requests: number('server-requests', 4),
    tokens: number('server-tokens', 64),
    maxBatch: number('server-max-batch', 16),
    engines: (values['server-engines'] === undefined
      ? 'llama.cpp,specstream'
      : String(values['server-engines'])
    )
      .split(',')
      .filter((e) => e !== 'none' && e !== '')
      .map((e) => {
        if (e !== 'llama.cpp' && e !== 'specstream') throw new Error(`--server-engines: unknown engine ${e}`);
        return e;
      }),
    modelsDir: process.env.SPECSTREAM_SHIPPED_MODELS ?? join(ROOT, 'models'),
  };
}

export type ScenarioResult = StreamsRun;

export interface ServerBenchResult {
  date: string;
  node: string;
  settings: ServerBenchSettings;
  scenarios: ScenarioResult[];
  /** Scraped from /metrics after the runs. */
  acceptanceRate?: number;
  goals?: { tokensPerSecondRatio: number; interTokenP99Ratio: number; ratioMet: boolean; p99Met: boolean };
  /** The same load without HTTP, each engine in a child process (load-child.ts); threads per run. */
  engines?: (LoadResult & { threads: number })[];
}

/** Starts `specstream serve` from the sources on a free port; resolves to its URL. */
async function startServe(s: ServerBenchSettings): Promise<{ child: ChildProcess; url: string }> {
  const args = [
    '--conditions=@specstream/source',
    '--import',
    'tsx',
    'packages/cli/src/bin.ts',
    'serve',
    '--port',
    '0',
    '--backend',
    'wasm',
    '--max-batch',
    String(s.maxBatch),
    '--max-queue',
    '256',
    '--model',
    join(s.modelsDir, 'specstream-docs-target'),
    '--draft',
    join(s.modelsDir, 'specstream-docs-draft'),
    '--model-id',
    'bench',
  ];
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
      const match = /at (http:\/\/\S+)/.exec(out);
      if (match) resolve(match[1]);
    });
    child.on('exit', (code) => reject(new Error(`specstream serve exited with ${code}: ${stderr.trim()}`)));
  });
  return { child, url };
}

/** One streamed completion: its tokens, first-text time and the gaps between deliveries. */
async function streamOne(url: string, prompt: string, tokens: number) {
  const sent = performance.now();
  const response = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model: 'bench',
      prompt,
      max_tokens: tokens,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    }),
  });
  if (!response.ok || response.body === null)
    throw new Error(`HTTP ${response.status}: ${await response.text()}`);
  const decoder = new TextDecoder();
  let buffer = '';
  let first: number | undefined;
  let last: number | undefined;
  const gaps: number[] = [];
  let completion = 0;
  for await (const bytes of response.body) {
    buffer += decoder.decode(bytes as Uint8Array, { stream: true });
    let end = buffer.indexOf('\n\n');
    while (end >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      end = buffer.indexOf('\n\n');
      const data = event.replace(/^data: /, '');
      if (data === '[DONE]') continue;
      const chunk = JSON.parse(data) as {
        choices: { text: string }[];
        usage?: { completion_tokens: number };
      };
      if (chunk.usage) completion = chunk.usage.completion_tokens;
      if (chunk.choices.some((c) => c.text !== '')) {
        const now = performance.now();
        if (first === undefined) first = now - sent;
        else gaps.push(now - last!);
        last = now;
      }
    }
  }
  return { tokens: completion, ttft: first ?? 0, gaps };
}

function scenario(url: string, prompts: string[], streams: number, s: ServerBenchSettings) {
  return driveStreams(streams, s.requests, prompts, (prompt) => streamOne(url, prompt, s.tokens));
}

export async function runServerBench(
  s: ServerBenchSettings,
  log: (line: string) => void,
): Promise<ServerBenchResult> {
  const held = JSON.parse(readFileSync(join(ROOT, 'models', 'heldout-prompts.json'), 'utf8')) as {
    prompts: string[];
  };
  // Held-out paragraphs, cut to about 40 tokens of prompt each.
  const prompts = held.prompts.map((p) => p.slice(0, 160));
  const { child, url } = await startServe(s);
  const result: ServerBenchResult = {
    date: new Date().toISOString(),
    node: process.version,
    settings: s,
    scenarios: [],
  };
  try {
    log(`server at ${url} (shipped pair, wasm, max batch ${s.maxBatch}); warming up`);
    await scenario(url, prompts, Math.min(4, Math.max(...s.streams)), { ...s, requests: 1, tokens: 16 });
    for (const streams of s.streams) {
      const r = await scenario(url, prompts, streams, s);
      result.scenarios.push(r);
      log(
        `${String(streams).padStart(2)} streams: ${r.tokens} tokens in ${r.seconds.toFixed(1)} s = ${r.tokensPerSecond.toFixed(0)} tokens/s; ` +
          `inter-token p50 ${r.interToken.p50.toFixed(1)} p99 ${r.interToken.p99.toFixed(1)} ms; ` +
          `TTFT p50 ${r.ttft.p50.toFixed(0)} p99 ${r.ttft.p99.toFixed(0)} ms; load ${r.loadBefore.toFixed(2)} -> ${r.loadAfter.toFixed(2)}`,
      );
    }
    const metrics = await (await fetch(`${url}/metrics`)).text();
    const alpha = /^specstream_acceptance_rate (\S+)$/m.exec(metrics)?.[1];
    if (alpha !== undefined) result.acceptanceRate = Number(alpha);
  } finally {
    child.kill('SIGTERM');
  }
  const one = result.scenarios.find((r) => r.streams === 1);
  const many = result.scenarios.find((r) => r.streams === 16);
  if (one && many) {
    const tokensPerSecondRatio = many.tokensPerSecond / one.tokensPerSecond;
    const interTokenP99Ratio = many.interToken.p99 / one.interToken.p99;
    result.goals = {
      tokensPerSecondRatio,
      interTokenP99Ratio,
      ratioMet: tokensPerSecondRatio >= 4,
      p99Met: interTokenP99Ratio <= 3,
    };
    log(
      `goals: 16 streams ${tokensPerSecondRatio.toFixed(2)}x one stream's tokens/s (goal >= 4: ${result.goals.ratioMet ? 'met' : 'NOT met'}); ` +
        `p99 inter-token ${interTokenP99Ratio.toFixed(2)}x (goal <= 3: ${result.goals.p99Met ? 'met' : 'NOT met'})`,
    );
  }
  if (s.engines.length > 0) result.engines = await compareEngines(s, prompts, log);
  return result;
}

/** The target as F32 GGUF under .data/server, reused while newer than every file of its folder. */
async function targetGguf(folder: string, log: (line: string) => void): Promise<string> {
  const dir = join(ROOT, '.data', 'server');
  const path = join(dir, 'target-F32.gguf');
  const newest = Math.max(...readdirSync(folder).map((f) => statSync(join(folder, f)).mtimeMs));
  if (existsSync(path) && statSync(path).mtimeMs > newest) return path;
  mkdirSync(dir, { recursive: true });
  await exportGguf(folder, `${path}.part`, { type: 'f32' });
  renameSync(`${path}.part`, path);
  log(`exported ${folder} → ${path}`);
  return path;
}

function runLoadChild(spec: LoadSpec, threads: number): Promise<LoadResult> {
  const dir = join(ROOT, '.data', 'server');
  mkdirSync(dir, { recursive: true });
  const specPath = join(dir, `load-${spec.engine}-${spec.streams}.json`);
  writeFileSync(specPath, JSON.stringify(spec));
  const script = fileURLToPath(new URL('./load-child.ts', import.meta.url));
  const child = spawn(process.execPath, [...process.execArgv, script, specPath], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SPECSTREAM_THREADS: String(threads) },
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => {
    out += c.toString('utf8');
  });
  child.stderr!.on('data', (c: Buffer) => {
    err += c.toString('utf8');
  });
  return new Promise((done, fail) => {
    child.on('exit', (code) => {
      const line = /^LOAD_RESULT (.*)$/m.exec(out)?.[1];
      if (code === 0 && line !== undefined) done(JSON.parse(line) as LoadResult);
      else fail(new Error(`${spec.engine} load child exited with ${code}: ${err.trim().slice(-2000)}`));
    });
  });
}

/**
 * The HTTP scenarios' load (same prompts, streams, requests and tokens) on each engine without
 * HTTP: llama.cpp at 1 and 2 threads (it decodes one stream faster on one: its workers spin
 * between ops), specstream's Scheduler at 2 kernel threads.
 */
async function compareEngines(
  s: ServerBenchSettings,
  texts: string[],
  log: (line: string) => void,
): Promise<(LoadResult & { threads: number })[]> {
  const targetDir = join(s.modelsDir, 'specstream-docs-target');
  const tokenizer = await loadTokenizer(targetDir);
  const prompts = texts.map((t) => tokenizer.encode(t));
  const gguf = s.engines.includes('llama.cpp') ? await targetGguf(targetDir, log) : '';
  const results: (LoadResult & { threads: number })[] = [];
  log('the same load without HTTP, each engine in a child process:');
  for (const streams of s.streams) {
    const runs: [LoadSpec, number][] = [];
    for (const engine of s.engines) {
      const base = { streams, requests: s.requests, tokens: s.tokens, prompts };
      if (engine === 'llama.cpp') {
        for (const threads of [1, 2]) runs.push([{ ...base, engine, model: gguf, threads }, threads]);
      } else {
        const draft = join(s.modelsDir, 'specstream-docs-draft');
        runs.push([{ ...base, engine, model: targetDir, draft, draftWeights: 'q4', threads: 2 }, 2]);
      }
    }
    for (const [spec, threads] of runs) {
      const r = { ...(await runLoadChild(spec, threads)), threads };
      results.push(r);
      log(
        `  ${r.engine} ×${threads}, ${String(streams).padStart(2)} streams: ${r.tokensPerSecond.toFixed(0)} tokens/s; ` +
          `inter-token p50 ${r.interToken.p50.toFixed(1)} p99 ${r.interToken.p99.toFixed(1)} ms; ` +
          `TTFT p50 ${r.ttft.p50.toFixed(0)} p99 ${r.ttft.p99.toFixed(0)} ms; load ${r.loadBefore.toFixed(2)} -> ${r.loadAfter.toFixed(2)}`,
      );
    }
    const ours = results.find((r) => r.engine === 'specstream' && r.streams === streams);
    const theirs = results
      .filter((r) => r.engine === 'llama.cpp' && r.streams === streams)
      .sort((a, b) => b.tokensPerSecond - a.tokensPerSecond)[0];
    if (ours && theirs) {
      log(
        `  ${streams} streams: specstream / llama.cpp at its best thread count (×${theirs.threads}): ${(ours.tokensPerSecond / theirs.tokensPerSecond).toFixed(2)}x tokens/s`,
      );
    }
  }
  return results;
}

export function writeServerResults(r: ServerBenchResult, log: (line: string) => void): void {
  mkdirSync(join(ROOT, 'bench-results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench-results', 'server.json'), `${JSON.stringify(r, null, 2)}\n`);
  log('wrote bench-results/server.json');
}

// Run directly: node --conditions=@specstream/source --import tsx bench/server/server-bench.ts
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const result = await runServerBench(serverSettings({}), (line) => console.log(`  ${line}`));
  writeServerResults(result, console.log);
}
