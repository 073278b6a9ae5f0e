/**
 * `pnpm bench --only peers`: specstream against node-llama-cpp on this machine's CPU, batch 1,
 * greedy, the same prompts, token ids and token counts for every contender.
 *
 * Contenders, each in a child process of its own (peers-child.ts: its peak RSS is its own):
 * - specstream on the wasm backend (core's wasm kernels): f32 weights plain, with the shipped
 *   draft (speculativeGenerate with adaptiveK(), the CLI's default) and with prompt lookup
 *   (promptLookupDrafter()); q8 and q4 weights (loadModel's `weights`) plain;
 * - node-llama-cpp (its prebuilt CPU binary) on the same weights exported by exportGguf: F32
 *   and F16 plain, with DraftSequenceTokenPredictor on the same draft exported the same way,
 *   and with InputLookupTokenPredictor; Q8_0 and Q4_0 plain.
 * - transformers.js (@huggingface/transformers on onnxruntime-node's CPU provider), offline, on
 *   the ONNX export of the target that tools/peers/export_onnx.py writes (fp32, plain only): a
 *   missing or stale export, or a loader that refuses it, is recorded as a failure (its message in
 *   the output, the JSON and RESULTS.md), not a row.
 * Two models: the shipped pair (models/specstream-docs-target and -draft), and a Llama-shaped
 * model of random weights (random-llama.ts, ~143M parameters by default) whose weights are far
 * larger than any cache, so decoding is bound by memory bandwidth (plain and quantized only:
 * a draft or lookup acceptance on random weights means nothing).
 *
 * Root level because it exports GGUF (models) and decodes speculatively (speculative).
 */
import { spawn } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportGguf, type GgufExportType, loadTokenizer } from '@specstream/models';
import { markdownTable, replaceMarkedSection } from '../../packages/speculative/bench/pair-report.js';
import { benchCommit } from '../../scripts/lib/bench-commit.js';
import { formatTable } from '../../scripts/lib/format-table.js';
import { agreement } from './measure.js';
import type { ContenderResult, ContenderSpec, Drafter, Library } from './peers-child.js';
import { parameterCount, randomLlamaShape, writeRandomLlama } from './random-llama.js';

/** The suite's flags, spread into scripts/bench.ts's parseArgs options. */
export const PEERS_ARGS = {
  'peers-target': { type: 'string', default: 'models/specstream-docs-target' },
  'peers-draft': { type: 'string', default: 'models/specstream-docs-draft' },
  /** `{ "prompts": ["text", ...] }` */
  'peers-prompts': { type: 'string', default: 'models/heldout-prompts.json' },
  /** Prompts each contender decodes on the shipped pair, and tokens per prompt. */
  'peers-prompts-count': { type: 'string', default: '8' },
  'peers-tokens': { type: 'string', default: '96' },
  /** Prompts are cut to their first this many tokens. */
  'peers-prompt-tokens': { type: 'string', default: '128' },
  /** Prompt lengths whose time to first token is measured, and runs of each (median kept). */
  'peers-ttft-tokens': { type: 'string', default: '24,500' },
  'peers-ttft-reps': { type: 'string', default: '3' },
  /** Threads of both libraries (SPECSTREAM_THREADS; node-llama-cpp's maxThreads and threads). */
  'peers-threads': { type: 'string', default: '2' },
  /** Thread counts whose contenders all run again ('' for none). */
  'peers-extra-threads': { type: 'string', default: '1' },
  /** The random memory-bound model: layers (0: none) and hidden size; vocabulary the pair's. */
  'peers-big-layers': { type: 'string', default: '12' },
  'peers-big-hidden': { type: 'string', default: '1024' },
  'peers-big-prompts-count': { type: 'string', default: '4' },
  'peers-big-tokens': { type: 'string', default: '48' },
  'peers-big-ttft-reps': { type: 'string', default: '2' },
  /** A contender stops decoding after the prompt that crosses this many seconds. */
  'peers-max-seconds': { type: 'string', default: '45' },
  /** node-llama-cpp's KV cache type (f32: the precision of specstream's cache) and flash attention. */
  'peers-kv': { type: 'string', default: 'f32' },
  'peers-flash-attention': { type: 'boolean', default: false },
  /** node-llama-cpp's draft predictor runs again with this minTokens ('' for no second run). */
  'peers-llama-draft-min': { type: 'string', default: '1' },
  /** Where GGUF exports and the random model go (reused while their sources are unchanged). */
  'peers-dir': { type: 'string', default: '.data/peers' },
  /** transformers.js's ONNX export of the target (tools/peers/export_onnx.py; '' for
   * <peers-dir>/onnx/<the target's folder name>; 'none': no transformers.js contender). */
  'peers-onnx': { type: 'string', default: '' },
  /** Only contenders whose id contains one of these comma-separated strings. */
  'peers-filter': { type: 'string' },
  'peers-results': { type: 'string', default: 'RESULTS.md' },
  'peers-json': { type: 'string', default: 'bench-results/peers.json' },
} as const;

export interface PeersSettings {
  target: string;
  draft: string;
  prompts: string;
  count: number;
  tokens: number;
  promptTokens: number;
  ttftTokens: number[];
  ttftReps: number;
  threads: number;
  extraThreads: number[];
  big: { layers: number; hidden: number; count: number; tokens: number; ttftReps: number };
  maxSeconds: number;
  kvCache: 'F32' | 'F16';
  flashAttention: boolean;
  llamaDraftMin?: number;
  dir: string;
  /** transformers.js's ONNX folder, or undefined when that contender is off. */
  onnx?: string;
  filter?: string[];
  results: string;
  json: string;
}

function integer(name: string, text: string, min: number): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isInteger(n) || n < min)
    throw new Error(`--${name} must be an integer ≥ ${min}, got "${text}"`);
  return n;
}

const integers = (name: string, text: string, min: number) =>
  text.trim() === '' ? [] : text.split(',').map((t) => integer(name, t, min));

export function peersSettings(values: Record<string, unknown>): PeersSettings {
  const str = (name: keyof typeof PEERS_ARGS) => values[name] as string;
  const kv = str('peers-kv').toUpperCase();
  if (kv !== 'F32' && kv !== 'F16')
    throw new Error(`--peers-kv must be f32 or f16, got "${str('peers-kv')}"`);
  const threads = integer('peers-threads', str('peers-threads'), 1);
  return {
    target: str('peers-target'),
    draft: str('peers-draft'),
    prompts: str('peers-prompts'),
    count: integer('peers-prompts-count', str('peers-prompts-count'), 1),
    tokens: integer('peers-tokens', str('peers-tokens'), 2),
    promptTokens: integer('peers-prompt-tokens', str('peers-prompt-tokens'), 1),
    ttftTokens: integers('peers-ttft-tokens', str('peers-ttft-tokens'), 1),
    ttftReps: integer('peers-ttft-reps', str('peers-ttft-reps'), 1),
    threads,
    extraThreads: integers('peers-extra-threads', str('peers-extra-threads'), 1).filter((t) => t !== threads),
    big: {
      layers: integer('peers-big-layers', str('peers-big-layers'), 0),
      hidden: integer('peers-big-hidden', str('peers-big-hidden'), 256),
      count: integer('peers-big-prompts-count', str('peers-big-prompts-count'), 1),
      tokens: integer('peers-big-tokens', str('peers-big-tokens'), 2),
      ttftReps: integer('peers-big-ttft-reps', str('peers-big-ttft-reps'), 1),
    },
    maxSeconds: integer('peers-max-seconds', str('peers-max-seconds'), 1),
    kvCache: kv,
    flashAttention: values['peers-flash-attention'] === true,
    llamaDraftMin:
      str('peers-llama-draft-min').trim() === ''
        ? undefined
        : integer('peers-llama-draft-min', str('peers-llama-draft-min'), 1),
    dir: str('peers-dir'),
    onnx:
      str('peers-onnx') === 'none'
        ? undefined
        : str('peers-onnx') || join(str('peers-dir'), 'onnx', basename(resolve(str('peers-target')))),
    filter: (values['peers-filter'] as string | undefined)?.split(',').filter((s) => s !== ''),
    results: str('peers-results'),
    json: str('peers-json'),
  };
}

/** One contender as the suite plans it; `spec` is what its child process gets. */
interface Planned extends Contender {
  model: 'pair' | 'big';
  spec: ContenderSpec;
}

interface Contender {
  library: Library;
  weights: string;
  drafter: Drafter;
  /** llama.cpp's draft predictor's minTokens, when not its default. */
  draftMinTokens?: number;
  threads: number;
}

export interface PeerRow extends Contender {
  id: string;
  model: 'pair' | 'big';
  tokensPerS: number;
  ttftMs: Record<string, number>;
  peakRssMB: number;
  rssGrowthMB: number;
  prompts: number;
  /** Prompts whose greedy output equals the same library's plain run at the same weights and threads. */
  sameAsPlain: string | null;
  drafting?: Record<string, number>;
  loadSeconds: number;
  /** 1-minute load average at the contender's start and end. */
  load: [number, number];
  seconds: number;
}

export interface PeerRatio {
  model: 'pair' | 'big';
  threads: number;
  specstream: string;
  llamaCpp: string;
  /** specstream / node-llama-cpp decode tokens/s (> 1: specstream faster). */
  decode: number;
  /** specstream / node-llama-cpp TTFT per prompt length (< 1: specstream faster). */
  ttft: Record<string, number>;
  /** specstream / node-llama-cpp peak RSS. */
  peakRss: number;
  /** Prompts whose greedy outputs are the same token ids in both (of those both ran). */
  sameTokens: string;
  firstDifference: (number | null)[];
}

export interface PeersResult {
  date: string;
  node: string;
  machine: { cpu: string; cores: number; memoryGB: number; loadBefore: number[]; loadAfter: number[] };
  commit: { hash: string; dirty: boolean | null };
  versions: Record<string, string>;
  llamaCppBuild?: Record<string, unknown>;
  settings: PeersSettings;
  models: Record<
    string,
    { path: string; parameters: number; description: string; gguf: Record<string, string> }
  >;
  prompts: { decode: number; promptTokens: { min: number; mean: number; max: number }; ttft: number[] };
  rows: PeerRow[];
  ratios: PeerRatio[];
  /** specstream / transformers.js, the same fields (`llamaCpp` holds the transformers.js row). */
  transformersJsRatios: PeerRatio[];
  /** Contenders that did not run, and why (the child's error, or the missing file). */
  failures: { id: string; error: string }[];
  goals: { goal: string; measured: string; met: boolean }[];
  notes: string[];
  seconds: number;
}

/** A copy of a model folder's files under `root` (timestamps kept: the GGUF exports stay fresh). */
function snapshot(folder: string, root: string): string {
  const dest = join(root, basename(resolve(folder)));
  mkdirSync(dest, { recursive: true });
  for (const name of readdirSync(folder)) {
    const from = join(folder, name);
    const to = join(dest, name);
    const a = statSync(from);
    if (!a.isFile()) continue;
    if (existsSync(to) && statSync(to).size === a.size && statSync(to).mtimeMs === a.mtimeMs) continue;
    cpSync(from, to, { preserveTimestamps: true });
  }
  return dest;
}

const newest = (dir: string) => Math.max(...readdirSync(dir).map((f) => statSync(join(dir, f)).mtimeMs));

/** `folder` as GGUF `type` under `dir`, reused while it is newer than every file of the folder. */
async function ggufOf(
  folder: string,
  name: string,
  type: GgufExportType,
  dir: string,
  log: (line: string) => void,
): Promise<string> {
  const path = resolve(dir, `${name}-${type.toUpperCase()}.gguf`);
  if (existsSync(path) && statSync(path).mtimeMs > newest(folder)) return path;
  const t = performance.now();
  const { fallbacks } = await exportGguf(folder, `${path}.part`, { type });
  renameSync(`${path}.part`, path);
  log(
    `exported ${folder} → ${path} (${(statSync(path).size / 1e6).toFixed(0)} MB, ${((performance.now() - t) / 1000).toFixed(1)} s${fallbacks.length > 0 ? `; F16 fallbacks: ${fallbacks.join(', ')}` : ''})`,
  );
  return path;
}

function runChild(spec: ContenderSpec, specPath: string): Promise<ContenderResult> {
  writeFileSync(specPath, JSON.stringify(spec));
  const script = fileURLToPath(new URL('./peers-child.ts', import.meta.url));
  const env = { ...process.env, SPECSTREAM_THREADS: String(spec.threads) };
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [...process.execArgv, script, specPath], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    // A hung child must not hang the suite: its decode budget plus ten minutes.
    const timer = setTimeout(() => child.kill('SIGKILL'), (spec.maxSeconds + 600) * 1000);
    child.on('error', fail);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const line = stdout.split('\n').find((l) => l.startsWith('PEERS_RESULT '));
      const error = stdout.split('\n').find((l) => l.startsWith('PEERS_ERROR '));
      if (code === 0 && line) done(JSON.parse(line.slice('PEERS_RESULT '.length)) as ContenderResult);
      else if (error) fail(new Error(JSON.parse(error.slice('PEERS_ERROR '.length)) as string));
      else
        fail(
          new Error(
            `${spec.id}: peers-child.ts exited with ${code ?? signal}: ${(stderr || stdout).trim().slice(-2000)}`,
          ),
        );
    });
  });
}

const round = (x: number, digits = 2) => Number(x.toFixed(digits));
const MB = 1e6;

/** The ratios of one contender's figures to another's (a / b), and how often their outputs agree. */
function compared(
  a: {
    decode: { tokensPerS: number; outputs: number[][] };
    ttft: { promptTokens: number; medianMs: number }[];
    maxRss: number;
  },
  b: { decode: { tokensPerS: number; outputs: number[][] }; ttft: { medianMs: number }[]; maxRss: number },
): Pick<PeerRatio, 'decode' | 'ttft' | 'peakRss' | 'sameTokens' | 'firstDifference'> {
  const same = agreement(a.decode.outputs, b.decode.outputs);
  return {
    decode: round(a.decode.tokensPerS / b.decode.tokensPerS, 3),
    ttft: Object.fromEntries(
      a.ttft.map((x, i) => [String(x.promptTokens), round(x.medianMs / b.ttft[i].medianMs, 3)]),
    ),
    peakRss: round(a.maxRss / b.maxRss, 3),
    sameTokens: `${same.same}/${same.of}`,
    firstDifference: same.first,
  };
}

const drafterName = (c: Contender) =>
  c.drafter === 'none'
    ? 'plain'
    : c.drafter === 'lookup'
      ? '+lookup'
      : c.draftMinTokens === undefined
        ? '+draft'
        : `+draft(minTokens ${c.draftMinTokens})`;
const contenderName = (c: Contender) => `${c.library} ${c.weights} ${drafterName(c)} ×${c.threads}`;

export async function runPeersBench(s: PeersSettings, log: (line: string) => void): Promise<PeersResult> {
  const t0 = performance.now();
  const loadBefore = loadavg().map((x) => round(x));
  for (const p of [join(s.target, 'config.json'), join(s.draft, 'config.json'), s.prompts]) {
    if (!existsSync(p)) throw new Error(`peers: not found: ${p}`);
  }
  mkdirSync(s.dir, { recursive: true });
  const ggufDir = join(s.dir, 'gguf');
  mkdirSync(ggufDir, { recursive: true });

  // Token ids, made once here: every contender gets the same ids (no tokenizer in the children).
  // The children read copies: scripts/gpu/pack.sh moves models/ away while it bundles for the
  // GPU machine, and a run that outlives such a moment must not lose its models halfway.
  const target = snapshot(s.target, join(s.dir, 'pair'));
  const draft = snapshot(s.draft, join(s.dir, 'pair'));
  const tokenizer = await loadTokenizer(target);
  const texts = (JSON.parse(readFileSync(s.prompts, 'utf8')) as { prompts: string[] }).prompts;
  const decodePrompts = (count: number) =>
    texts.slice(0, count).map((t) => tokenizer.encode(t).slice(0, s.promptTokens));
  // TTFT prompts: the held-out texts one after another, cut to each length.
  const joined = tokenizer.encode(texts.join('\n\n'));
  const longest = Math.max(...s.ttftTokens);
  if (joined.length < longest)
    throw new Error(`the prompts hold ${joined.length} tokens, fewer than ${longest}`);
  const ttft = s.ttftTokens.map((n) => joined.slice(0, n));
  const pairDecode = decodePrompts(s.count);
  const lengths = pairDecode.map((p) => p.length);
  const promptTokens = {
    min: Math.min(...lengths),
    mean: round(lengths.reduce((a, b) => a + b, 0) / lengths.length, 1),
    max: Math.max(...lengths),
  };
  const promptFiles = {
    pair: resolve(s.dir, 'prompts-pair.json'),
    big: resolve(s.dir, 'prompts-big.json'),
  };
  writeFileSync(promptFiles.pair, JSON.stringify({ decode: pairDecode, ttft }));
  writeFileSync(promptFiles.big, JSON.stringify({ decode: decodePrompts(s.big.count), ttft }));

  const pairTypes: GgufExportType[] = ['f32', 'f16', 'q8_0', 'q4_0'];
  const gguf: Record<string, Record<string, string>> = { target: {}, draft: {}, big: {} };
  for (const type of pairTypes) gguf.target[type] = await ggufOf(target, 'target', type, ggufDir, log);
  for (const type of ['f32', 'f16'] as const)
    gguf.draft[type] = await ggufOf(draft, 'draft', type, ggufDir, log);
  const vocab = (JSON.parse(readFileSync(join(target, 'config.json'), 'utf8')) as { vocab_size: number })
    .vocab_size;
  const shape = randomLlamaShape(s.big.layers, s.big.hidden, vocab);
  let bigDir: string | undefined;
  if (s.big.layers > 0) {
    bigDir = await writeRandomLlama(s.dir, shape, target, log);
    for (const type of pairTypes) gguf.big[type] = await ggufOf(bigDir, 'big', type, ggufDir, log);
  }

  const longestPrompt = Math.max(longest, s.promptTokens);
  const contextSize = 2 ** Math.ceil(Math.log2(longestPrompt + Math.max(s.tokens, s.big.tokens) + 32));
  const plan: Planned[] = [];
  const add = (
    model: 'pair' | 'big',
    library: Library,
    weights: string,
    drafter: Drafter,
    threads: number,
    draftMinTokens?: number,
  ): void => {
    const ours = library === 'specstream';
    const big = model === 'big';
    const ggufType = { F32: 'f32', F16: 'f16', Q8_0: 'q8_0', Q4_0: 'q4_0' }[weights] ?? '';
    const id = `${model} · ${contenderName({ library, weights, drafter, threads, draftMinTokens })}`;
    if (s.filter && !s.filter.some((f) => id.includes(f))) return;
    plan.push({
      model,
      library,
      weights,
      drafter,
      threads,
      draftMinTokens,
      spec: {
        id,
        library,
        draftMinTokens,
        model: ours
          ? resolve(big ? bigDir! : target)
          : library === 'transformers.js'
            ? resolve(s.onnx!)
            : (big ? gguf.big : gguf.target)[ggufType],
        draftModel: drafter !== 'draft' ? undefined : ours ? resolve(draft) : gguf.draft[ggufType],
        weights,
        drafter,
        threads,
        newTokens: big ? s.big.tokens : s.tokens,
        promptsFile: big ? promptFiles.big : promptFiles.pair,
        ttftReps: big ? s.big.ttftReps : s.ttftReps,
        maxSeconds: s.maxSeconds,
        contextSize,
        kvCache: s.kvCache,
        flashAttention: s.flashAttention,
      },
    });
  };
  // The libraries alternate, so that a drift in the machine's speed reaches both alike.
  const f32Set = (model: 'pair' | 'big', threads: number, drafters: Drafter[], f16: boolean) => {
    for (const d of drafters) {
      add(model, 'specstream', 'f32', d, threads);
      add(model, 'llama.cpp', 'F32', d, threads);
      if (d === 'draft' && s.llamaDraftMin !== undefined)
        add(model, 'llama.cpp', 'F32', d, threads, s.llamaDraftMin);
      if (f16) add(model, 'llama.cpp', 'F16', d, threads);
      if (model === 'pair' && d === 'none' && s.onnx) add(model, 'transformers.js', 'fp32', d, threads);
    }
  };
  const quantSet = (model: 'pair' | 'big', threads: number) => {
    add(model, 'specstream', 'q8', 'none', threads);
    add(model, 'llama.cpp', 'Q8_0', 'none', threads);
    add(model, 'specstream', 'q4', 'none', threads);
    add(model, 'llama.cpp', 'Q4_0', 'none', threads);
  };
  // Every contender at every thread count: node-llama-cpp's best count differs from ours here.
  for (const t of [s.threads, ...s.extraThreads]) {
    f32Set('pair', t, ['none', 'draft', 'lookup'], true);
    quantSet('pair', t);
  }
  if (bigDir) {
    for (const t of [s.threads, ...s.extraThreads]) {
      f32Set('big', t, ['none'], true);
      quantSet('big', t);
    }
  }

  log(
    `${plan.length} contenders, one child process each; pair: ${pairDecode.length} prompts (${promptTokens.min}–${promptTokens.max} tokens) × ${s.tokens} new tokens${bigDir ? `; random model: ${s.big.count} prompts × ${s.big.tokens}` : ''}; TTFT at ${s.ttftTokens.join(' and ')} tokens (median of ${s.ttftReps}${bigDir ? `, ${s.big.ttftReps} on the random model` : ''}); threads ${[s.threads, ...s.extraThreads].join(', ')}; node-llama-cpp KV cache ${s.kvCache}, flash attention ${s.flashAttention ? 'on' : 'off'}`,
  );
  const results = new Map<
    string,
    { planned: Planned; result: ContenderResult; seconds: number; load: [number, number] }
  >();
  const failures: PeersResult['failures'] = [];
  // transformers.js needs the export made outside the suite (Python): say what is missing.
  const onnxProblem = (): string | undefined => {
    if (!s.onnx) return undefined;
    const file = join(s.onnx, 'onnx', 'model.onnx');
    if (!existsSync(file))
      return `not found: ${file} (make it with python tools/peers/export_onnx.py --model ${s.target} --out ${s.onnx})`;
    if (statSync(file).mtimeMs < newest(s.target))
      return `stale: ${file} is older than ${s.target} (run tools/peers/export_onnx.py again)`;
    return undefined;
  };
  const onnxMissing = onnxProblem();
  for (const [i, planned] of plan.entries()) {
    const t = performance.now();
    const loadAtStart = loadavg()[0];
    let result: ContenderResult;
    if (planned.library === 'transformers.js') {
      // A failure of this contender is a result to report, not the end of the suite.
      try {
        if (onnxMissing) throw new Error(onnxMissing);
        result = await runChild(planned.spec, resolve(s.dir, `spec-${i}.json`));
      } catch (error) {
        const message = (error as Error).message;
        failures.push({ id: planned.spec.id, error: message });
        log(`${planned.spec.id}: FAILED: ${message}`);
        continue;
      }
    } else {
      result = await runChild(planned.spec, resolve(s.dir, `spec-${i}.json`));
    }
    const seconds = (performance.now() - t) / 1000;
    // The 1-minute load average as the contender started and ended: the suite itself adds about
    // its thread count; more says another job shared the cores (the machine is shared).
    results.set(planned.spec.id, {
      planned,
      result,
      seconds,
      load: [round(loadAtStart, 1), round(loadavg()[0], 1)],
    });
    const r = result;
    log(
      `${planned.spec.id}: ${r.decode.tokensPerS.toFixed(1)} tok/s over ${r.decode.prompts} prompts, TTFT ${r.ttft.map((x) => `${x.promptTokens}: ${x.medianMs.toFixed(1)} ms`).join(', ')}, peak RSS ${(r.maxRss / MB).toFixed(0)} MB (+${((r.maxRss - r.baselineRss) / MB).toFixed(0)}), ${seconds.toFixed(0)} s${r.drafting ? ` · drafting ${JSON.stringify(r.drafting)}` : ''}`,
    );
  }
  const loadAfter = loadavg().map((x) => round(x));

  const find = (
    model: string,
    library: Library,
    weights: string,
    drafter: Drafter,
    threads: number,
    draftMinTokens?: number,
  ) => results.get(`${model} · ${contenderName({ library, weights, drafter, threads, draftMinTokens })}`);
  const rows: PeerRow[] = [...results.values()].map(({ planned: p, result: r, seconds, load }) => {
    const plain = find(p.model, p.library, p.weights, 'none', p.threads);
    const same =
      p.drafter !== 'none' && plain ? agreement(r.decode.outputs, plain.result.decode.outputs) : undefined;
    return {
      id: p.spec.id,
      model: p.model,
      library: p.library,
      weights: p.weights,
      drafter: p.drafter,
      ...(p.draftMinTokens !== undefined ? { draftMinTokens: p.draftMinTokens } : {}),
      threads: p.threads,
      tokensPerS: r.decode.tokensPerS,
      ttftMs: Object.fromEntries(r.ttft.map((x) => [String(x.promptTokens), x.medianMs])),
      peakRssMB: round(r.maxRss / MB, 0),
      rssGrowthMB: round((r.maxRss - r.baselineRss) / MB, 0),
      prompts: r.decode.prompts,
      sameAsPlain: same ? `${same.same}/${same.of}` : null,
      ...(r.drafting ? { drafting: r.drafting } : {}),
      loadSeconds: r.loadSeconds,
      load,
      seconds: round(seconds, 1),
    };
  });

  const ratios: PeerRatio[] = [];
  const pairings: [string, Drafter, string, number?][] = [
    ['f32', 'none', 'F32'],
    ['f32', 'none', 'F16'],
    ['f32', 'draft', 'F32'],
    ...(s.llamaDraftMin === undefined
      ? []
      : [['f32', 'draft', 'F32', s.llamaDraftMin] as [string, Drafter, string, number]]),
    ['f32', 'draft', 'F16'],
    ['f32', 'lookup', 'F32'],
    ['f32', 'lookup', 'F16'],
    ['q8', 'none', 'Q8_0'],
    ['q4', 'none', 'Q4_0'],
  ];
  for (const model of ['pair', 'big'] as const) {
    for (const threads of [s.threads, ...s.extraThreads]) {
      for (const [ours, drafter, theirs, min] of pairings) {
        const a = find(model, 'specstream', ours, drafter, threads);
        const b = find(model, 'llama.cpp', theirs, drafter, threads, min);
        if (!a || !b) continue;
        ratios.push({
          model,
          threads,
          specstream: contenderName({ library: 'specstream', weights: ours, drafter, threads }),
          llamaCpp: contenderName({
            library: 'llama.cpp',
            weights: theirs,
            drafter,
            threads,
            draftMinTokens: min,
          }),
          ...compared(a.result, b.result),
        });
      }
    }
  }

  const transformersJsRatios: PeerRatio[] = [];
  for (const threads of [s.threads, ...s.extraThreads]) {
    const a = find('pair', 'specstream', 'f32', 'none', threads);
    const b = find('pair', 'transformers.js', 'fp32', 'none', threads);
    if (!a || !b) continue;
    transformersJsRatios.push({
      model: 'pair',
      threads,
      specstream: contenderName(a.planned),
      llamaCpp: contenderName(b.planned),
      ...compared(a.result, b.result),
    });
  }

  const ratio = (model: string, drafter: Drafter, theirs: string, min?: number, threads = s.threads) =>
    ratios.find(
      (r) =>
        r.model === model &&
        r.threads === threads &&
        r.llamaCpp ===
          contenderName({ library: 'llama.cpp', weights: theirs, drafter, threads, draftMinTokens: min }),
    );
  const goals: PeersResult['goals'] = [];
  const threadCounts = [s.threads, ...s.extraThreads];
  for (const threads of threadCounts) {
    const at = `pair, F32, ${threads} thread${threads === 1 ? '' : 's'} each`;
    const plainF32 = ratio('pair', 'none', 'F32', undefined, threads);
    // Against node-llama-cpp's faster draft configuration (the smaller ratio).
    const draftF32 = [
      ratio('pair', 'draft', 'F32', undefined, threads),
      ratio('pair', 'draft', 'F32', s.llamaDraftMin, threads),
    ]
      .filter((r): r is PeerRatio => r !== undefined)
      .reduce<PeerRatio | undefined>((a, b) => (a === undefined || b.decode < a.decode ? b : a), undefined);
    if (plainF32) {
      goals.push({
        goal: `plain decode ≥ 1.0 × node-llama-cpp (${at})`,
        measured: `${plainF32.decode.toFixed(2)}×`,
        met: plainF32.decode >= 1,
      });
    }
    if (draftF32) {
      goals.push({
        goal: `with the draft ≥ 1.2 × node-llama-cpp with the same draft (${at}; its faster predictor setting)`,
        measured: `${draftF32.decode.toFixed(2)}× (vs ${draftF32.llamaCpp})`,
        met: draftF32.decode >= 1.2,
      });
    }
    if (plainF32) {
      for (const [n, r] of Object.entries(plainF32.ttft)) {
        goals.push({
          goal: `TTFT at ${n} tokens ≤ node-llama-cpp's (${at})`,
          measured: `${r.toFixed(2)}×`,
          met: r <= 1,
        });
      }
      const [same, of] = plainF32.sameTokens.split('/');
      goals.push({
        goal: `greedy outputs identical (${at}, plain)`,
        measured: `${plainF32.sameTokens} prompts`,
        met: same === of,
      });
    }
  }
  // Each library at its own best thread count: what a user who tunes threads gets.
  if (threadCounts.length > 1) {
    const best = (library: Library, weights: string, drafter: Drafter, mins: (number | undefined)[]) =>
      threadCounts
        .flatMap((t) => mins.map((m) => find('pair', library, weights, drafter, t, m)))
        .filter((r) => r !== undefined)
        .reduce<ReturnType<typeof find>>(
          (a, b) => (a === undefined || b.result.decode.tokensPerS > a.result.decode.tokensPerS ? b : a),
          undefined,
        );
    const describe = (x: { planned: Planned }) => contenderName(x.planned);
    const oursPlain = best('specstream', 'f32', 'none', [undefined]);
    const theirsPlain = best('llama.cpp', 'F32', 'none', [undefined]);
    if (oursPlain && theirsPlain) {
      const x = oursPlain.result.decode.tokensPerS / theirsPlain.result.decode.tokensPerS;
      goals.push({
        goal: 'plain decode ≥ 1.0 × node-llama-cpp (pair, F32, each at its best thread count)',
        measured: `${x.toFixed(2)}× (${describe(oursPlain)} vs ${describe(theirsPlain)})`,
        met: x >= 1,
      });
    }
    const oursDraft = best('specstream', 'f32', 'draft', [undefined]);
    const theirsDraft = best('llama.cpp', 'F32', 'draft', [undefined, s.llamaDraftMin]);
    if (oursDraft && theirsDraft) {
      const x = oursDraft.result.decode.tokensPerS / theirsDraft.result.decode.tokensPerS;
      goals.push({
        goal: 'with the draft ≥ 1.2 × node-llama-cpp with the same draft (pair, F32, each at its best thread count and setting)',
        measured: `${x.toFixed(2)}× (${describe(oursDraft)} vs ${describe(theirsDraft)})`,
        met: x >= 1.2,
      });
    }
    const ttftBest = (library: Library, weights: string, i: number) =>
      Math.min(
        ...threadCounts
          .map((t) => find('pair', library, weights, 'none', t)?.result.ttft[i]?.medianMs)
          .filter((x): x is number => x !== undefined),
      );
    for (const [i, n] of s.ttftTokens.entries()) {
      const ours = ttftBest('specstream', 'f32', i);
      const theirs = ttftBest('llama.cpp', 'F32', i);
      if (!Number.isFinite(ours) || !Number.isFinite(theirs)) continue;
      goals.push({
        goal: `TTFT at ${n} tokens ≤ node-llama-cpp's (pair, F32, each at its best thread count)`,
        measured: `${(ours / theirs).toFixed(2)}× (${ours.toFixed(1)} vs ${theirs.toFixed(1)} ms)`,
        met: ours <= theirs,
      });
    }
  }

  const notes: string[] = [];
  for (const t of s.extraThreads) {
    const main = find('pair', 'llama.cpp', 'F32', 'none', s.threads);
    const other = find('pair', 'llama.cpp', 'F32', 'none', t);
    if (main && other && other.result.decode.tokensPerS > main.result.decode.tokensPerS) {
      notes.push(
        `node-llama-cpp decodes the pair faster with ${t} thread${t === 1 ? '' : 's'} (${other.result.decode.tokensPerS.toFixed(1)} tok/s) than with ${s.threads} (${main.result.decode.tokensPerS.toFixed(1)}), while its prefill gains from ${s.threads} (TTFT ${main.result.ttft.map((x) => x.medianMs.toFixed(0)).join('/')} against ${other.result.ttft.map((x) => x.medianMs.toFixed(0)).join('/')} ms): its ggml workers spin-wait between the graph's ops, and with as many threads as cores a decode step's short ops wait on whichever thread the OS has parked (Node's own thread included). Compare at ${t} thread${t === 1 ? '' : 's'} too, and each library at its best thread count (the goal rows say both).`,
      );
    }
  }
  for (const row of rows) {
    if (row.sameAsPlain !== null && row.sameAsPlain.split('/')[0] !== row.sameAsPlain.split('/')[1]) {
      notes.push(
        `${row.id}: greedy output differs from the same library's plain run on ${row.sameAsPlain} prompts identical.`,
      );
    }
  }

  // Where the time goes, in the units that bound it: prefill is arithmetic (2 × parameters ×
  // tokens; attention left out), a big-model decode step reads every weight once (the GGUF file
  // of the row's type stands for the bytes either library reads per token).
  const pairParams =
    readdirSync(target)
      .filter((f) => f.endsWith('.safetensors'))
      .reduce((n, f) => n + statSync(join(target, f)).size, 0) / 2;
  const longIndex = s.ttftTokens.indexOf(longest);
  const prefill = rows
    .filter(
      (row) => row.model === 'pair' && row.drafter === 'none' && row.ttftMs[String(longest)] !== undefined,
    )
    .map(
      (row) =>
        `${contenderName(row)} ${((2 * pairParams * longest) / (row.ttftMs[String(longest)] / 1000) / 1e9).toFixed(0)}`,
    );
  if (longIndex >= 0 && prefill.length > 0)
    notes.push(
      `Prefill of ${longest} tokens on the pair, GFLOP/s (2 × ${(pairParams / 1e6).toFixed(1)}M parameters × ${longest} tokens over TTFT): ${prefill.join(', ')}.`,
    );
  const ggufType: Record<string, string> = {
    f32: 'f32',
    q8: 'q8_0',
    q4: 'q4_0',
    F32: 'f32',
    F16: 'f16',
    Q8_0: 'q8_0',
    Q4_0: 'q4_0',
  };
  const bandwidth = rows
    .filter((row) => row.model === 'big' && gguf.big[ggufType[row.weights]])
    .map(
      (row) =>
        `${contenderName(row)} ${((statSync(gguf.big[ggufType[row.weights]]).size * row.tokensPerS) / 1e9).toFixed(1)}`,
    );
  if (bandwidth.length > 0)
    notes.push(
      `Decode of the random model, GB/s of weights read (the GGUF file of the row's type × tok/s): ${bandwidth.join(', ')}.`,
    );

  const first = results.values().next().value;
  const cpuList = cpus();
  const models: PeersResult['models'] = {
    target: {
      path: s.target,
      parameters: 0,
      description: 'the shipped target (trained)',
      gguf: gguf.target,
    },
    draft: { path: s.draft, parameters: 0, description: 'the shipped draft (trained)', gguf: gguf.draft },
  };
  for (const m of ['target', 'draft'] as const) {
    const copy = m === 'target' ? target : draft;
    const idx = readdirSync(copy).filter((f) => f.endsWith('.safetensors'));
    // float16 checkpoints: 2 bytes a parameter.
    models[m].parameters = round(idx.reduce((n, f) => n + statSync(join(copy, f)).size, 0) / 2, 0);
  }
  if (bigDir) {
    models.big = {
      path: bigDir,
      parameters: parameterCount(shape),
      description: `random weights, Llama shape: ${shape.layers} layers, hidden ${shape.hidden}, MLP ${shape.intermediate}, ${shape.heads}/${shape.kvHeads} heads, vocab ${shape.vocab}, tied head`,
      gguf: gguf.big,
    };
  }
  const llamaRow = [...results.values()].find((r) => r.planned.library === 'llama.cpp');
  const oursRow = [...results.values()].find((r) => r.planned.library === 'specstream');
  const versions: Record<string, string> = {};
  if (oursRow) versions.specstream = oursRow.result.library.version;
  if (llamaRow) versions['node-llama-cpp'] = llamaRow.result.library.version;
  const tjsRow = [...results.values()].find((r) => r.planned.library === 'transformers.js');
  if (tjsRow) {
    versions['@huggingface/transformers'] = tjsRow.result.library.version;
    versions.onnxruntime = tjsRow.result.library.runtime ?? '?';
  }
  const seconds = round((performance.now() - t0) / 1000, 0);
  log(`took ${seconds} s${first ? '' : ' (no contender ran)'}`);
  return {
    date: new Date().toISOString(),
    node: process.version,
    machine: {
      cpu: cpuList[0]?.model.trim() ?? 'unknown',
      cores: cpuList.length,
      memoryGB: round(totalmem() / 2 ** 30, 0),
      loadBefore,
      loadAfter,
    },
    commit: benchCommit(),
    versions,
    ...(llamaRow?.result.library.build ? { llamaCppBuild: llamaRow.result.library.build } : {}),
    settings: s,
    models,
    prompts: { decode: pairDecode.length, promptTokens, ttft: s.ttftTokens },
    rows,
    ratios,
    transformersJsRatios,
    failures,
    goals,
    notes,
    seconds,
  };
}

const fixed = (x: number | undefined, digits: number) => (x === undefined ? '–' : x.toFixed(digits));

function rowCells(r: PeerRow, ttftTokens: number[]): Record<string, string> {
  const d = r.drafting;
  return {
    model: r.model,
    contender: contenderName(r),
    'tok/s': r.tokensPerS.toFixed(1),
    ...Object.fromEntries(ttftTokens.map((n) => [`TTFT ${n} ms`, fixed(r.ttftMs[String(n)], 1)])),
    'peak RSS MB': String(r.peakRssMB),
    'RSS growth MB': String(r.rssGrowthMB),
    α: d?.alpha === undefined ? '–' : d.alpha.toFixed(2),
    prompts: String(r.prompts),
    '= plain': r.sameAsPlain ?? '–',
    load: `${r.load[0].toFixed(1)}–${r.load[1].toFixed(1)}`,
  };
}

function ratioCells(r: PeerRatio, peer = 'node-llama-cpp'): Record<string, string> {
  return {
    model: r.model,
    specstream: r.specstream,
    [peer]: r.llamaCpp,
    decode: `${r.decode.toFixed(2)}×`,
    ...Object.fromEntries(Object.entries(r.ttft).map(([n, x]) => [`TTFT ${n}`, `${x.toFixed(2)}×`])),
    'peak RSS': `${r.peakRss.toFixed(2)}×`,
    'same tokens': r.sameTokens,
  };
}

export function printPeers(r: PeersResult, log: (line: string) => void): void {
  log('');
  log(
    `Peers on CPU (${r.machine.cpu}, ${r.machine.cores} cores; load average ${r.machine.loadBefore.join(' ')} before, ${r.machine.loadAfter.join(' ')} after): decode tokens/s, median TTFT, peak RSS of each contender's own process`,
  );
  for (const line of formatTable(r.rows.map((row) => rowCells(row, r.settings.ttftTokens)))) log(line);
  log(
    'Ratios specstream / node-llama-cpp (decode > 1: specstream faster; TTFT and RSS < 1: specstream lower)',
  );
  for (const line of formatTable(r.ratios.map((x) => ratioCells(x)))) log(line);
  if (r.transformersJsRatios.length > 0) {
    log('Ratios specstream / transformers.js (same reading)');
    for (const line of formatTable(r.transformersJsRatios.map((x) => ratioCells(x, 'transformers.js'))))
      log(line);
  }
  for (const f of r.failures) log(`FAILED ${f.id}: ${f.error}`);
  log('Goals (issue 19)');
  for (const line of formatTable(r.goals.map((g) => ({ ...g, met: g.met ? 'yes' : 'NO' })))) log(line);
  for (const note of r.notes) log(`note: ${note}`);
}

const markdown = (rows: Record<string, string>[], left: string[]) => {
  const header = Object.keys(rows[0] ?? {});
  return markdownTable(
    header,
    rows.map((row) => header.map((h) => row[h])),
    header.map((h) => !left.includes(h)),
  );
};

/** The RESULTS.md section (markers not included). */
export function peersMarkdownSection(r: PeersResult): string {
  const dirty = r.commit.dirty === null ? '' : r.commit.dirty ? ' (working tree dirty)' : ' (clean)';
  const s = r.settings;
  const m = r.models;
  const build = r.llamaCppBuild as { release?: string; buildType?: string; systemInfo?: string } | undefined;
  const lines = [
    '## Peers: specstream against node-llama-cpp and transformers.js on CPU',
    '',
    `\`pnpm bench --only peers\` runs each contender in a child process of its own, one after another (the libraries alternating), on the same prompt token ids and token counts, greedy (temperature 0), batch 1. specstream runs on the wasm backend with core's wasm kernels (f32 weights, or q8/q4 through \`loadModel(dir, { weights })\`); node-llama-cpp runs its prebuilt CPU binary on the same weights exported by \`exportGguf\` (F32, F16, Q8_0, Q4_0; specstream has no f16 weight format on wasm, so its f32 rows stand against F16 too), raw token ids through a context sequence, KV cache ${s.kvCache}, flash attention ${s.flashAttention ? 'on' : 'off'}; transformers.js (\`@huggingface/transformers\` on onnxruntime-node's CPU execution provider, intra-op threads = the row's ×N, inter-op 1) runs offline (\`env.allowRemoteModels = false\`, \`env.localModelPath\` at the folder) on the target's fp32 ONNX export by \`tools/peers/export_onnx.py\` (torch's dynamo exporter; logits within 1e-4 of the HF model's, checked with onnxruntime in Python), greedy through its own \`generate\` (do_sample false, no end-of-sequence stop), plain only; its export computes logits at every prompt position (no \`num_logits_to_keep\` input), about a sixth of a prefill's multiply-adds on this model. "+draft": specstream's \`speculativeGenerate\` with the shipped draft and \`adaptiveK()\` (the CLI's default), node-llama-cpp's \`DraftSequenceTokenPredictor\` on the same draft (its defaults, as its own CLI uses it, and with \`minTokens\` ${s.llamaDraftMin ?? '–'}: with the default 0 the target never waits for the draft, which on a CPU the two share rarely gets ahead); "+lookup": \`promptLookupDrafter()\` and \`InputLookupTokenPredictor\` (defaults). Decode tok/s: tokens after the first over the time from the first token to the last; TTFT: from the call to the first token (the whole prompt's prefill), median of ${s.ttftReps} runs (${s.big.ttftReps} on the random model) after one unrecorded warm-up. Peak RSS: \`process.resourceUsage().maxRSS\` of the contender's process at its end (Node, the library, the model(s) and the run: mmapped GGUF pages count once touched); growth is that minus the RSS right after the library started, before any model loaded. α: accepted drafted tokens over drafted (llama.cpp: validated / (validated + refuted) predictions). "= plain": prompts whose greedy output is token-identical to the same library's plain run; load: the machine's 1-minute load average as the contender started and ended (the suite itself adds about its threads; more means another job shared the two cores, and node-llama-cpp with 2 threads suffers most from that); "same tokens": prompts on which both libraries produce the same ids. Flags: \`--peers-prompts-count\` (8), \`--peers-tokens\` (96), \`--peers-ttft-tokens\` (24,500), \`--peers-threads\` (2), \`--peers-extra-threads\` (1: every contender again at that count; ×N in a row is its threads, SPECSTREAM_THREADS for specstream, \`maxThreads\` and \`threads\` for node-llama-cpp), \`--peers-llama-draft-min\` (1), \`--peers-max-seconds\` (45: a contender's decoding stops after the prompt that crosses it), \`--peers-big-layers\` (12, 0: no random model), \`--peers-big-hidden\` (1024), \`--peers-big-prompts-count\` (4), \`--peers-big-tokens\` (48), \`--peers-kv\` (f32), \`--peers-flash-attention\`, \`--peers-onnx\` (the export's folder; none: no transformers.js), \`--peers-filter\`; JSON with every number and every output in \`bench-results/peers.json\`. The GPU counterpart (transformers on torch) is \`tools/peers/transformers_peers.py\`.`,
    '',
    `- Machine: ${r.machine.cpu}, ${r.machine.cores} cores, ${r.machine.memoryGB} GiB · load average ${r.machine.loadBefore.join(' / ')} before the run, ${r.machine.loadAfter.join(' / ')} after (the machine is shared) · commit \`${r.commit.hash}\`${dirty} · ${r.date} · Node ${r.node}`,
    `- Versions: specstream ${r.versions.specstream ?? '?'} (wasm backend, core's wasm kernels, SPECSTREAM_THREADS = the row's threads), node-llama-cpp ${r.versions['node-llama-cpp'] ?? '?'}${build?.release ? ` (its ${build.buildType ?? ''} CPU binary of llama.cpp, release tag ${build.release}; CPU features ${build.systemInfo ?? '?'})` : ''}, threads = the row's ×N for both${r.versions['@huggingface/transformers'] ? `; @huggingface/transformers ${r.versions['@huggingface/transformers']} on ${r.versions.onnxruntime}` : ''}.`,
    `- pair: target \`${m.target.path}\` (${(m.target.parameters / 1e6).toFixed(1)}M parameters, trained), draft \`${m.draft.path}\` (${(m.draft.parameters / 1e6).toFixed(1)}M); ${r.prompts.decode} held-out prompts of \`${s.prompts}\` (${r.prompts.promptTokens.min}–${r.prompts.promptTokens.max} tokens, mean ${r.prompts.promptTokens.mean}) × ${s.tokens} new tokens; TTFT prompts: the held-out texts joined, cut to ${s.ttftTokens.join(' and ')} tokens.`,
    ...(m.big
      ? [
          `- big: ${(m.big.parameters / 1e6).toFixed(0)}M parameters, ${m.big.description} (**random weights**: speed only; greedy agreement between libraries means little on near-flat logits), ${s.big.count} prompt${s.big.count === 1 ? '' : 's'} × ${s.big.tokens} new tokens.`,
        ]
      : []),
    `- Run: ${r.seconds} s for ${r.rows.length} contenders.`,
    '',
    ...markdown(
      r.rows.map((row) => rowCells(row, s.ttftTokens)),
      ['model', 'contender'],
    ),
    '',
    'Ratios specstream / node-llama-cpp (decode > 1: specstream faster; TTFT and peak RSS < 1: specstream lower):',
    '',
    ...markdown(
      r.ratios.map((x) => ratioCells(x)),
      ['model', 'specstream', 'node-llama-cpp'],
    ),
    ...(r.transformersJsRatios.length > 0
      ? [
          '',
          'Ratios specstream / transformers.js (the same reading):',
          '',
          ...markdown(
            r.transformersJsRatios.map((x) => ratioCells(x, 'transformers.js')),
            ['model', 'specstream', 'transformers.js'],
          ),
        ]
      : []),
    ...(r.failures.length > 0
      ? ['', 'Did not run:', '', ...r.failures.map((f) => `- ${f.id}: \`${f.error.replace(/`/g, "'")}\``)]
      : []),
    '',
    'Goals (issue 19, CPU batch 1):',
    '',
    ...(r.goals.length === 0
      ? ['(not measured: the F32 contenders of the pair did not run)']
      : markdown(
          r.goals.map((g) => ({ goal: g.goal, measured: g.measured, met: g.met ? 'yes' : '**no**' })),
          ['goal', 'measured', 'met'],
        )),
    ...(r.notes.length > 0 ? ['', ...r.notes.map((n) => `- ${n}`)] : []),
  ];
  return lines.join('\n');
}

export function writePeersResults(r: PeersResult, log: (line: string) => void): void {
  mkdirSync('bench-results', { recursive: true });
  writeFileSync(r.settings.json, `${JSON.stringify(r, null, 2)}\n`);
  log(`wrote ${r.settings.json}`);
  const doc = existsSync(r.settings.results) ? readFileSync(r.settings.results, 'utf8') : '# Results\n';
  writeFileSync(r.settings.results, replaceMarkedSection(doc, 'peers:cpu', peersMarkdownSection(r)));
  log(`wrote ${r.settings.results} (section peers:cpu)`);
}
