/**
 * node-llama-cpp on a GPU, through its prebuilt Vulkan binary (@node-llama-cpp/linux-x64-vulkan,
 * `build: 'never'`: nothing is compiled), on GGUF exports of the shipped pair: the GPU
 * counterpart of the peers suite's llama.cpp contenders (issue 19), to set beside specstream's
 * webgpu backend on the same model. Run on the GPU machine by scripts/gpu/llama-run.sh from
 * the bundle scripts/gpu/llama-pack.sh makes (.gpu-llama/llama-gpu.mjs); here with tsx:
 *
 *   node --conditions=@specstream/source --import tsx bench/peers/llama-gpu.ts [flags]
 *
 * The procedure is peers-child.ts's for its llama.cpp contenders, and the settings default to the
 * peers suite's (PEERS_ARGS): the same prompt token ids, greedy (temperature 0), raw ids into a
 * context sequence, no end-of-sequence stop; warm-up (each TTFT prompt once, one short decode,
 * unrecorded); time to first token of each TTFT prompt, median of --ttft-reps runs; then every
 * decode prompt for --tokens new tokens, tok/s counting the tokens after the first over the time
 * from the first token to the last. All layers on the GPU (`gpuLayers: 'max'`, checked against
 * the model's layer count), KV cache on the GPU (the library's default when it offloads).
 *
 * Prompts: --prompts is either texts (`{ "prompts": [...] }`, models/heldout-prompts.json by
 * default), tokenized as the peers suite does with OUR tokenizer (loadTokenizer of --tokenizer,
 * the shipped target's folder) — the first --prompts-count texts cut to --prompt-tokens ids, and
 * the texts joined by blank lines cut to each --ttft-tokens length — or token ids already
 * (`{ "decode": number[][], "ttft": number[][] }`, what peers-bench.ts writes). The JSON records
 * the ids, and how many decode texts node-llama-cpp's own tokenizer of the GGUF turns into the
 * same ids.
 *
 * Contenders: target-<TYPE>.gguf in --gguf-dir (peers-bench.ts's names; `specstream convert`
 * writes them) for each of --types, plain; for each of --draft-types also with
 * DraftSequenceTokenPredictor on draft-<TYPE>.gguf (its defaults, and with minTokens
 * --draft-min). --gpu false runs the same on the CPU binary (@node-llama-cpp/linux-x64), for
 * checking the GPU's greedy output against it (--compare <that run's JSON>).
 *
 * If the Vulkan binary does not load, or loads without a GPU, it stops with exit code 2 and says
 * what node-llama-cpp printed, what loading the addon by hand in a child process printed, and
 * which shared libraries ldd cannot find.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadTokenizer } from '@specstream/models';
import { benchCommit } from '../../scripts/lib/bench-commit.js';
import { formatTable } from '../../scripts/lib/format-table.js';
import { importLlamaCpp, type LlamaCpp, llamaCppVersion } from './llama-cpp.js';
import { decodeSummary, median, agreement as sameIds, timed } from './measure.js';
import { PEERS_ARGS } from './peers-bench.js';
import type { ContenderResult } from './peers-child.js';

/** As the JSON reports it: "same/of" and each prompt's first differing index. */
function agreement(a: number[][], b: number[][]) {
  const { same, of, first } = sameIds(a, b);
  return { same: `${same}/${of}`, firstDifference: first };
}

type Llama = Awaited<ReturnType<LlamaCpp['getLlama']>>;
type GpuOption = 'vulkan' | 'cuda' | false;

/** The peers suite's default for one of its flags. */
const peer = (name: keyof typeof PEERS_ARGS) => String((PEERS_ARGS[name] as { default?: unknown }).default);

const OPTIONS = {
  gpu: { type: 'string', default: 'vulkan' },
  'gguf-dir': { type: 'string', default: join(peer('peers-dir'), 'gguf') },
  types: { type: 'string', default: 'f32,f16,q8_0,q4_0' },
  'draft-types': { type: 'string', default: 'f32,f16' },
  /** A second draft run with this minTokens ('' for none), as the peers suite's. */
  'draft-min': { type: 'string', default: peer('peers-llama-draft-min') },
  prompts: { type: 'string', default: peer('peers-prompts') },
  tokenizer: { type: 'string', default: peer('peers-target') },
  'prompts-count': { type: 'string', default: peer('peers-prompts-count') },
  tokens: { type: 'string', default: peer('peers-tokens') },
  'prompt-tokens': { type: 'string', default: peer('peers-prompt-tokens') },
  'ttft-tokens': { type: 'string', default: peer('peers-ttft-tokens') },
  'ttft-reps': { type: 'string', default: peer('peers-ttft-reps') },
  'max-seconds': { type: 'string', default: peer('peers-max-seconds') },
  kv: { type: 'string', default: peer('peers-kv') },
  'flash-attention': { type: 'boolean', default: false },
  /** node-llama-cpp's maxThreads and context threads ('': on a GPU its default, every math core;
   * with --gpu false the peers suite's --peers-threads, since its CPU default oversubscribes). */
  threads: { type: 'string', default: '' },
  /** gpuLayers: max (all, or fail) or a number. */
  'gpu-layers': { type: 'string', default: 'max' },
  /** Another run's JSON: each row's greedy outputs against the row of the same id there. */
  compare: { type: 'string' },
  json: { type: 'string', default: 'bench-results/llama-gpu.json' },
  /** Print every llama.cpp log line (info level), not only warnings. */
  verbose: { type: 'boolean', default: false },
} as const;

type Timing = Pick<ContenderResult, 'loadSeconds' | 'warmupSeconds' | 'ttft' | 'decode' | 'drafting'>;

export interface LlamaGpuRow extends Timing {
  id: string;
  type: string;
  drafter: 'none' | 'draft';
  draftMinTokens?: number;
  model: { path: string; bytes: number; gpuLayers: number; totalLayers: number };
  draftModel?: { path: string; bytes: number; gpuLayers: number; totalLayers: number };
  /** VRAM in use with the model(s) and context(s) loaded (bytes, as node-llama-cpp reports it). */
  vramUsed: number;
  threads: number;
  /** Prompts whose greedy output equals this run's plain row of the same type. */
  sameAsPlain?: string;
  /** Prompts whose greedy output equals --compare's row of the same id, and where each first differs. */
  sameAsCompare?: { same: string; firstDifference: (number | null)[] };
  /** llama.cpp's lines about devices and offloading while this row's model(s) loaded. */
  loadLog: string[];
}

export interface LlamaGpuResult {
  date: string;
  node: string;
  machine: { cpu: string; cores: number; memoryGB: number };
  commit: { hash: string; dirty: boolean | null };
  llama: {
    gpu: string | false;
    devices: string[];
    vram: { start: VramState; end: VramState };
    supportsGpuOffloading: boolean;
    buildType: string;
    llamaCppRelease: { repo: string; release: string };
    binaryPackage: string;
    systemInfo: string;
    cpuMathCores: number;
    /** ggml's own lines at start: Vulkan devices found, backends loaded. */
    initLog: string[];
  };
  versions: Record<string, string>;
  settings: Record<string, unknown>;
  prompts: {
    source: string;
    tokenizedWith: string;
    /** node-llama-cpp's tokenizer of the first GGUF against ours on the decode texts. */
    llamaTokenizerAgrees?: string;
    decode: number[][];
    ttft: number[][];
  };
  rows: LlamaGpuRow[];
  compare?: string;
  seconds: number;
}

type VramState = { total: number; used: number; free: number; unifiedSize: number };

function integer(name: string, text: string, min: number): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isInteger(n) || n < min)
    throw new Error(`--${name} must be an integer ≥ ${min}, got "${text}"`);
  return n;
}
const list = (text: string) => text.split(',').filter((s) => s.trim() !== '');

/** The binary package's folder, found from node-llama-cpp, itself found as llama-cpp.ts finds it. */
function binaryPackageDir(gpu: GpuOption): string | undefined {
  const name = gpu === false ? '@node-llama-cpp/linux-x64' : `@node-llama-cpp/linux-x64-${gpu}`;
  try {
    const fromModels = createRequire(new URL('../../packages/models/package.json', import.meta.url));
    const fromNlc = createRequire(fromModels.resolve('node-llama-cpp'));
    return dirname(dirname(fromNlc.resolve(name)));
  } catch {
    return undefined;
  }
}

/**
 * Why the binary did not load: what testBindingBinary does in its child (whose output
 * node-llama-cpp throws away), here with the output kept, and ldd's missing libraries.
 */
function diagnose(gpu: GpuOption): string[] {
  const pkg = binaryPackageDir(gpu);
  if (!pkg) return [`the binary package for gpu ${gpu} is not installed where node-llama-cpp looks for it`];
  const bins = join(pkg, 'bins', gpu === false ? 'linux-x64' : `linux-x64-${gpu}`);
  const addon = join(bins, 'llama-addon.node');
  const lines = [
    `binary package: ${pkg} (${existsSync(addon) ? 'llama-addon.node present' : 'NO llama-addon.node'})`,
  ];
  const script = `
    const b = require(${JSON.stringify(addon)});
    b.setLoggerLogLevel(6); // debug: ggml-vulkan names its devices at that level
    (async () => {
      b.loadBackends();
      if (b.getGpuType() == null || b.getGpuType() === false) b.loadBackends(${JSON.stringify(bins)});
      await b.init();
      console.log(JSON.stringify({ gpuType: b.getGpuType(), devices: b.getGpuDeviceInfo(), vram: b.getGpuVramInfo() }));
      process.exit(0);
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 120_000 });
  const out = `${child.stdout ?? ''}${child.stderr ?? ''}`.trim().split('\n').slice(-40);
  lines.push(
    `loading the addon by hand in a child process: ${child.error ? child.error.message : `exit ${child.status ?? child.signal}`}`,
    ...out.map((l) => `  ${l}`),
  );
  for (const file of [addon, join(bins, 'libggml-vulkan.so')]) {
    if (!existsSync(file)) continue;
    const ldd = spawnSync('ldd', [file], { encoding: 'utf8' });
    const missing = (ldd.stdout ?? '').split('\n').filter((l) => l.includes('not found'));
    lines.push(
      `ldd ${file.slice(bins.length + 1)}: ${ldd.error ? ldd.error.message : missing.length === 0 ? 'every library found' : missing.map((l) => l.trim()).join('; ')}`,
    );
  }
  lines.push(
    `VK_DRIVER_FILES=${process.env.VK_DRIVER_FILES ?? '(unset)'}; GGML_VK_VISIBLE_DEVICES=${process.env.GGML_VK_VISIBLE_DEVICES ?? '(unset)'}`,
  );
  return lines;
}

class BinaryLoadError extends Error {}

/**
 * llama.cpp's log lines. They reach JavaScript asynchronously, some after the call that made them
 * returned, so one logger sorts them by content: ggml's lines about devices and backends into
 * `init` whenever they come, the model loader's about offloading and buffers into `load` (cleared
 * before each row's models load), warnings and errors (everything with --verbose) onto stderr.
 */
class LlamaLog {
  init: string[] = [];
  load: string[] = [];
  all: string[] = [];
  verbose = false;
  log(level: string, message: string) {
    const line = message.trimEnd();
    if (line === '') return;
    this.all.push(`${level}: ${line}`);
    if (this.all.length > 400) this.all.shift();
    if (/ggml_vulkan:|load_backend:|ggml_cuda/.test(line)) this.init.push(line);
    else if (/offload|buffer size|using device|llama_kv_cache: size/.test(line)) this.load.push(line);
    if (this.verbose || level === 'warn' || level === 'error' || level === 'fatal')
      process.stderr.write(`[llama.cpp ${level}] ${line}\n`);
  }
}
const logger = new LlamaLog();

/** getLlama with the prebuilt binary only; node-llama-cpp's console output is kept for the error. */
async function startLlama(nlc: LlamaCpp, gpu: GpuOption, threads: number | undefined) {
  const said: string[] = [];
  const original = { error: console.error, warn: console.warn, info: console.info, log: console.log };
  const keep =
    (name: keyof typeof original) =>
    (...args: unknown[]) => {
      said.push(args.map((a) => (a instanceof Error ? (a.stack ?? a.message) : String(a))).join(' '));
      original[name](...args);
    };
  Object.assign(console, { error: keep('error'), warn: keep('warn'), info: keep('info'), log: keep('log') });
  let llama: Llama | undefined;
  let failure: unknown;
  try {
    llama = await nlc.getLlama({
      gpu,
      build: 'never',
      // Its warnings (such as "The prebuilt binary … is not compatible") go to the console, kept above.
      progressLogs: true,
      ...(threads === undefined ? {} : { maxThreads: threads }),
      // Debug at start: ggml-vulkan names its devices at that level.
      logLevel: nlc.LlamaLogLevel.debug,
      logger: (level, message) => logger.log(level, message),
    });
  } catch (error) {
    failure = error;
  } finally {
    Object.assign(console, original);
  }
  // ggml's lines about its devices arrive after getLlama returned: give them a moment.
  await new Promise((done) => setTimeout(done, 100));
  let got = llama ? `it loaded, but on gpu ${JSON.stringify(llama.gpu)}` : String(failure);
  if (llama && llama.gpu === gpu) {
    // A Vulkan backend with no device still reports gpu 'vulkan' (and then offloads nothing).
    if (gpu === false || (await llama.getGpuDeviceNames()).length > 0) return llama;
    got =
      'it loaded, but ggml found no GPU device (ggml-vulkan skips CPU-type devices such as lavapipe unless GGML_VK_VISIBLE_DEVICES names them; on the GPU machine: is VK_DRIVER_FILES the NVIDIA ICD, and does the library it names load?)';
  }
  await llama?.dispose();
  const binary = gpu === false ? 'CPU' : gpu === 'vulkan' ? 'Vulkan' : gpu.toUpperCase();
  throw new BinaryLoadError(
    [
      `node-llama-cpp ${llamaCppVersion()} could not start its prebuilt ${binary} binary (getLlama({ gpu: ${JSON.stringify(gpu)}, build: 'never' })): ${got}`,
      ...(said.length > 0
        ? ['node-llama-cpp said:', ...said.map((l) => `  ${l.split('\n').join('\n  ')}`)]
        : []),
      ...(logger.init.length > 0 ? ['ggml said:', ...logger.init.map((l) => `  ${l}`)] : []),
      ...(logger.all.length > logger.init.length
        ? ['llama.cpp logged (last 20 lines):', ...logger.all.slice(-20).map((l) => `  ${l}`)]
        : []),
      ...diagnose(gpu),
    ].join('\n'),
  );
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const { values } = parseArgs({ options: OPTIONS, allowPositionals: false });
  const gpuText = values.gpu;
  if (!['vulkan', 'cuda', 'false'].includes(gpuText))
    throw new Error(`--gpu: vulkan, cuda or false, not "${gpuText}"`);
  const gpu: GpuOption = gpuText === 'false' ? false : (gpuText as 'vulkan' | 'cuda');
  const kv = values.kv.toUpperCase();
  if (kv !== 'F32' && kv !== 'F16') throw new Error(`--kv must be f32 or f16, got "${values.kv}"`);
  const s = {
    gpu,
    ggufDir: values['gguf-dir'],
    types: list(values.types).map((t) => t.toUpperCase()),
    draftTypes: list(values['draft-types']).map((t) => t.toUpperCase()),
    draftMin: values['draft-min'].trim() === '' ? undefined : integer('draft-min', values['draft-min'], 1),
    prompts: values.prompts,
    tokenizer: values.tokenizer,
    count: integer('prompts-count', values['prompts-count'], 1),
    tokens: integer('tokens', values.tokens, 2),
    promptTokens: integer('prompt-tokens', values['prompt-tokens'], 1),
    ttftTokens: list(values['ttft-tokens']).map((t) => integer('ttft-tokens', t, 1)),
    ttftReps: integer('ttft-reps', values['ttft-reps'], 1),
    maxSeconds: integer('max-seconds', values['max-seconds'], 1),
    kvCache: kv as 'F32' | 'F16',
    flashAttention: values['flash-attention'],
    threads:
      values.threads.trim() !== ''
        ? integer('threads', values.threads, 1)
        : gpu === false
          ? integer('peers-threads', peer('peers-threads'), 1)
          : undefined,
    gpuLayers:
      values['gpu-layers'] === 'max' ? ('max' as const) : integer('gpu-layers', values['gpu-layers'], 0),
    json: values.json,
  };
  const log = (line: string) => process.stdout.write(`${line}\n`);
  const file = (type: string, name: 'target' | 'draft') => resolve(s.ggufDir, `${name}-${type}.gguf`);
  for (const [types, name] of [
    [s.types, 'target'],
    [s.draftTypes, 'draft'],
  ] as const) {
    for (const type of types) {
      if (!existsSync(file(type, name)))
        throw new Error(
          `not found: ${file(type, name)} (make it with: specstream convert models/specstream-docs-${name} ${file(type, name)} --type ${type.toLowerCase()})`,
        );
    }
  }
  const compare = values.compare
    ? (JSON.parse(readFileSync(values.compare, 'utf8')) as LlamaGpuResult)
    : undefined;

  // Prompts: texts through our tokenizer, as peers-bench.ts makes them, or ids as given.
  const given = JSON.parse(readFileSync(s.prompts, 'utf8')) as
    | { prompts: string[] }
    | { decode: number[][]; ttft: number[][] };
  let decode: number[][];
  let ttft: number[][];
  let texts: string[] | undefined;
  let tokenizedWith: string;
  if ('prompts' in given) {
    const tokenizer = await loadTokenizer(s.tokenizer);
    texts = given.prompts.slice(0, s.count);
    decode = texts.map((t) => tokenizer.encode(t).slice(0, s.promptTokens));
    const joined = tokenizer.encode(given.prompts.join('\n\n'));
    const longest = Math.max(...s.ttftTokens);
    if (joined.length < longest)
      throw new Error(`the prompts hold ${joined.length} tokens, fewer than ${longest}`);
    ttft = s.ttftTokens.map((n) => joined.slice(0, n));
    tokenizedWith = `specstream's loadTokenizer(${s.tokenizer}), as the peers suite (bench/peers/peers-bench.ts)`;
  } else {
    decode = given.decode.slice(0, s.count);
    ttft = given.ttft;
    tokenizedWith = `token ids as given in ${s.prompts}`;
  }
  const longestPrompt = Math.max(...ttft.map((p) => p.length), ...decode.map((p) => p.length));
  const contextSize = 2 ** Math.ceil(Math.log2(longestPrompt + s.tokens + 32));

  const nlc = await importLlamaCpp();
  logger.verbose = values.verbose;
  let llama: Llama;
  try {
    llama = await startLlama(nlc, gpu, s.threads);
  } catch (error) {
    if (error instanceof BinaryLoadError) {
      process.stderr.write(`llama-gpu: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const verbose = values.verbose;
  llama.logLevel = nlc.LlamaLogLevel.info;
  const vramStart = (await llama.getVramState()) as VramState;
  const devices = await llama.getGpuDeviceNames();
  const binaryPackage = binaryPackageDir(gpu) ?? '?';
  const binaryVersion = (() => {
    try {
      return (JSON.parse(readFileSync(join(binaryPackage, 'package.json'), 'utf8')) as { version: string })
        .version;
    } catch {
      return '?';
    }
  })();
  log(
    `node-llama-cpp ${llamaCppVersion()}, ${llama.buildType} binary ${binaryPackage.split('node_modules/').at(-1)} ${binaryVersion} (llama.cpp ${llama.llamaCppRelease.release}), gpu ${JSON.stringify(llama.gpu)}: ${devices.join(', ') || '(no device names)'}; VRAM ${(vramStart.total / 2 ** 30).toFixed(1)} GiB, ${(vramStart.used / 2 ** 20).toFixed(0)} MiB in use`,
  );
  for (const line of logger.init) log(`  ${line}`);
  log(
    `prompts: ${decode.length} × ${s.tokens} new tokens (${Math.min(...decode.map((p) => p.length))}–${Math.max(...decode.map((p) => p.length))} tokens), TTFT at ${ttft.map((p) => p.length).join(' and ')} tokens (median of ${s.ttftReps}); ${tokenizedWith}; context ${contextSize}, KV cache ${s.kvCache}, flash attention ${s.flashAttention ? 'on' : 'off'}, gpuLayers ${s.gpuLayers}`,
  );

  const contextOptions = {
    contextSize,
    sequences: 1,
    ...(s.threads === undefined ? {} : { threads: s.threads }),
    flashAttention: s.flashAttention,
    experimentalKvCacheKeyType: s.kvCache,
    experimentalKvCacheValueType: s.kvCache,
  } as const;
  type Model = Awaited<ReturnType<Llama['loadModel']>>;
  const loadModel = async (path: string) => {
    const model = await llama.loadModel({ modelPath: path, gpuLayers: s.gpuLayers });
    const info = {
      path,
      bytes: statSync(path).size,
      gpuLayers: model.gpuLayers,
      totalLayers: model.fileInsights.totalLayers,
    };
    if (s.gpuLayers === 'max' && gpu !== false && info.gpuLayers !== info.totalLayers)
      throw new Error(`${path}: ${info.gpuLayers} of ${info.totalLayers} layers on the GPU, asked for all`);
    return { model, info };
  };

  let llamaTokenizerAgrees: string | undefined;
  const plan: { type: string; drafter: 'none' | 'draft'; draftMinTokens?: number }[] = [];
  for (const type of s.types) plan.push({ type, drafter: 'none' });
  for (const type of s.draftTypes) {
    plan.push({ type, drafter: 'draft' });
    if (s.draftMin !== undefined) plan.push({ type, drafter: 'draft', draftMinTokens: s.draftMin });
  }
  const rows: LlamaGpuRow[] = [];
  for (const p of plan) {
    const id = `llama.cpp ${p.type} ${p.drafter === 'none' ? 'plain' : p.draftMinTokens === undefined ? '+draft' : `+draft(minTokens ${p.draftMinTokens})`}`;
    logger.load.length = 0;
    let t = performance.now();
    const target = await loadModel(file(p.type, 'target'));
    const context = await target.model.createContext(contextOptions);
    let draft: { model: Model; info: LlamaGpuRow['model'] } | undefined;
    let draftContext: Awaited<ReturnType<Model['createContext']>> | undefined;
    if (p.drafter === 'draft') {
      draft = await loadModel(file(p.type, 'draft'));
      draftContext = await draft.model.createContext(contextOptions);
    }
    if (texts && llamaTokenizerAgrees === undefined) {
      const same = texts.filter((text, i) => {
        const ids = target.model.tokenize(text) as number[];
        return ids.slice(0, s.promptTokens).every((id, j) => id === decode[i][j]);
      }).length;
      llamaTokenizerAgrees = `${same}/${texts.length}`;
    }
    const tokenPredictor = draftContext
      ? new nlc.DraftSequenceTokenPredictor(
          draftContext.getSequence(),
          p.draftMinTokens === undefined ? undefined : { minTokens: p.draftMinTokens },
        )
      : undefined;
    const sequence = context.getSequence({ tokenPredictor });
    const vramUsed = ((await llama.getVramState()) as VramState).used;
    const loadSeconds = (performance.now() - t) / 1000;
    const loadLines = [...logger.load];
    llama.logLevel = verbose ? nlc.LlamaLogLevel.info : nlc.LlamaLogLevel.warn;
    const run = async (prompt: number[], maxNewTokens: number) => {
      await sequence.clearHistory();
      const start = performance.now();
      const events = sequence.evaluate(prompt as never[], { temperature: 0, yieldEogToken: true });
      return timed(events as AsyncIterable<number>, maxNewTokens, start);
    };
    try {
      t = performance.now();
      for (const prompt of ttft) await run(prompt, 2);
      await run(decode[0], Math.min(s.tokens, 16));
      const warmupSeconds = (performance.now() - t) / 1000;
      const ttftRows = ttft.map((prompt) => ({
        promptTokens: prompt.length,
        ms: [] as number[],
        medianMs: 0,
      }));
      for (let rep = 0; rep < s.ttftReps; rep++) {
        for (const [i, prompt] of ttft.entries()) {
          ttftRows[i].ms.push(Number((await run(prompt, 2)).ttftMs.toFixed(2)));
        }
      }
      for (const row of ttftRows) row.medianMs = Number(median(row.ms).toFixed(2));
      const outputs: number[][] = [];
      let tokens = 0;
      let ms = 0;
      const begin = performance.now();
      for (const prompt of decode) {
        const r = await run(prompt, s.tokens);
        outputs.push(r.tokens);
        tokens += r.tokens.length - 1;
        ms += r.decodeMs;
        if ((performance.now() - begin) / 1000 > s.maxSeconds) break;
      }
      const predictions = sequence.tokenPredictions;
      const row: LlamaGpuRow = {
        id,
        type: p.type,
        drafter: p.drafter,
        ...(p.draftMinTokens === undefined ? {} : { draftMinTokens: p.draftMinTokens }),
        model: target.info,
        ...(draft ? { draftModel: draft.info } : {}),
        vramUsed,
        threads: context.currentThreads,
        loadSeconds: Number(loadSeconds.toFixed(2)),
        warmupSeconds: Number(warmupSeconds.toFixed(2)),
        ttft: ttftRows,
        decode: decodeSummary(outputs, tokens, ms),
        ...(tokenPredictor
          ? {
              drafting: {
                validated: predictions.validated,
                refuted: predictions.refuted,
                used: predictions.used,
                unused: predictions.unused,
                alpha: Number(
                  (predictions.validated / Math.max(1, predictions.validated + predictions.refuted)).toFixed(
                    4,
                  ),
                ),
              },
            }
          : {}),
        loadLog: loadLines,
      };
      const plain = rows.find((r) => r.type === p.type && r.drafter === 'none');
      if (p.drafter !== 'none' && plain) row.sameAsPlain = agreement(outputs, plain.decode.outputs).same;
      const other = compare?.rows.find((r) => r.id === id);
      if (other) row.sameAsCompare = agreement(outputs, other.decode.outputs);
      rows.push(row);
      log(
        `${id}: ${row.decode.tokensPerS.toFixed(1)} tok/s over ${row.decode.prompts} prompts, TTFT ${ttftRows.map((x) => `${x.promptTokens}: ${x.medianMs.toFixed(1)} ms`).join(', ')}, ${target.info.gpuLayers}/${target.info.totalLayers} layers offloaded, VRAM in use ${(vramUsed / 2 ** 20).toFixed(0)} MiB${row.drafting ? ` · drafting ${JSON.stringify(row.drafting)}` : ''}${row.sameAsCompare ? ` · same as --compare: ${row.sameAsCompare.same}` : ''}`,
      );
    } finally {
      llama.logLevel = nlc.LlamaLogLevel.info;
      await context.dispose();
      await draftContext?.dispose();
      await target.model.dispose();
      await draft?.model.dispose();
    }
  }
  const vramEnd = (await llama.getVramState()) as VramState;

  const cpuList = cpus();
  const result: LlamaGpuResult = {
    date: new Date().toISOString(),
    node: process.version,
    machine: {
      cpu: cpuList[0]?.model.trim() ?? 'unknown',
      cores: cpuList.length,
      memoryGB: Number((totalmem() / 2 ** 30).toFixed(0)),
    },
    commit: benchCommit(),
    llama: {
      gpu: llama.gpu,
      devices,
      vram: { start: vramStart, end: vramEnd },
      supportsGpuOffloading: llama.supportsGpuOffloading,
      buildType: llama.buildType,
      llamaCppRelease: { ...llama.llamaCppRelease },
      binaryPackage: `${binaryPackage.split('node_modules/').at(-1)}@${binaryVersion}`,
      systemInfo: llama.systemInfo,
      cpuMathCores: llama.cpuMathCores,
      initLog: logger.init,
    },
    versions: {
      'node-llama-cpp': llamaCppVersion(),
      [binaryPackage.split('node_modules/').at(-1) ?? 'binary']: binaryVersion,
      'llama.cpp': llama.llamaCppRelease.release,
      node: process.version,
    },
    settings: { ...s, contextSize },
    prompts: {
      source: s.prompts,
      tokenizedWith,
      ...(llamaTokenizerAgrees ? { llamaTokenizerAgrees } : {}),
      decode,
      ttft,
    },
    rows,
    ...(values.compare ? { compare: values.compare } : {}),
    seconds: Number(((performance.now() - t0) / 1000).toFixed(1)),
  };
  await llama.dispose();

  log('');
  log(
    `node-llama-cpp ${result.versions['node-llama-cpp']} on ${devices.join(', ') || `gpu ${String(llama.gpu)}`} (${result.llama.gpu === false ? 'CPU binary' : `${result.llama.gpu} binary`}), greedy, batch 1${llamaTokenizerAgrees ? `; its tokenizer gives our ids on ${llamaTokenizerAgrees} prompts` : ''}`,
  );
  for (const line of formatTable(
    rows.map((r) => ({
      contender: r.id,
      'tok/s': r.decode.tokensPerS.toFixed(1),
      ...Object.fromEntries(r.ttft.map((x) => [`TTFT ${x.promptTokens} ms`, x.medianMs.toFixed(1)])),
      α: r.drafting?.alpha === undefined ? '–' : r.drafting.alpha.toFixed(2),
      '= plain': r.sameAsPlain ?? '–',
      ...(compare ? { '= compare': r.sameAsCompare?.same ?? '–' } : {}),
      layers: `${r.model.gpuLayers}/${r.model.totalLayers}`,
      'VRAM MiB': (r.vramUsed / 2 ** 20).toFixed(0),
      prompts: String(r.decode.prompts),
    })),
  ))
    log(line);
  mkdirSync(dirname(resolve(s.json)), { recursive: true });
  writeFileSync(s.json, `${JSON.stringify(result, null, 2)}\n`);
  log(`wrote ${s.json} (${result.seconds} s)`);
  // The addon's threads may keep the loop alive: the result is out.
  process.exit(0);
}

await main().catch((error: unknown) => {
  process.stderr.write(`llama-gpu: ${(error as Error)?.stack ?? error}\n`);
  process.exit(1);
});
