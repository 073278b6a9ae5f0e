/**
 * One contender of the peers suite, in a process of its own, so that its peak RSS
 * (process.resourceUsage().maxRSS) is that contender's alone and neither library's heap, threads
 * or allocator state reaches the next. Run by peers-bench.ts as
 * `node <execArgv> peers-child.ts <spec.json>`; prints one line `PEERS_RESULT <json>`.
 *
 * Same procedure for both libraries: start the library, load the model(s), warm up (each TTFT
 * prompt once and a short decode, unrecorded), time to first token over `ttftReps` runs of each
 * TTFT prompt (fresh state each time, the median kept), then greedy decoding of every prompt
 * for `newTokens` tokens. Decode tokens/s count the tokens after the first over the time from
 * the first token to the last, as bench/pair does; TTFT is from the call to the first token
 * (prefill of the whole prompt and the first token's sampling; a draft model's own prefill
 * counts wherever the library puts it).
 */
import { readFileSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { decodeSummary, median, type Run, timed } from './measure.js';

export type Library = 'specstream' | 'llama.cpp' | 'transformers.js';
export type Drafter = 'none' | 'draft' | 'lookup';

export interface ContenderSpec {
  id: string;
  library: Library;
  /** HF folder (specstream), .gguf file (llama.cpp) or ONNX export folder (transformers.js). */
  model: string;
  /** The draft model in the same library's format (drafter 'draft' only). */
  draftModel?: string;
  /** specstream: f32 | q8 | q4 (loadModel's weights); llama.cpp: the GGUF type; transformers.js: fp32. */
  weights: string;
  drafter: Drafter;
  /** llama.cpp's DraftSequenceTokenPredictor minTokens (undefined: its default, 0). */
  draftMinTokens?: number;
  threads: number;
  newTokens: number;
  /** JSON `{ decode: number[][], ttft: number[][] }` of token ids. */
  promptsFile: string;
  ttftReps: number;
  /** Decoding stops after the prompt that crosses this many seconds (at least one prompt runs). */
  maxSeconds: number;
  /** llama.cpp: context size, KV cache type and flash attention. */
  contextSize: number;
  kvCache: 'F32' | 'F16';
  flashAttention: boolean;
}

export interface ContenderResult {
  id: string;
  /** RSS after the library started, before any model was loaded (bytes). */
  baselineRss: number;
  /** process.resourceUsage().maxRSS at the end: the process's lifetime peak (bytes). */
  maxRss: number;
  loadSeconds: number;
  warmupSeconds: number;
  /** Per TTFT prompt: its length, every measured run, the median. */
  ttft: { promptTokens: number; ms: number[]; medianMs: number }[];
  decode: { prompts: number; tokens: number; ms: number; tokensPerS: number; outputs: number[][] };
  /** Draft statistics: specstream's acceptance α, tokens per target pass and mean k; llama.cpp's
   * validated / refuted predictions (tokenPredictions). */
  drafting?: Record<string, number>;
  /** Kernel threads the library reports using. */
  threads: number;
  library: LibraryInfo;
}

export interface LibraryInfo {
  name: string;
  version: string;
  /** llama.cpp: the release its binary was built from, prebuilt or local, CPU features. */
  build?: { release: string; repo: string; buildType: string; systemInfo: string };
  /** transformers.js: the onnxruntime-node it runs on. */
  runtime?: string;
}

interface Prompts {
  decode: number[][];
  ttft: number[][];
}

/** One generation: time to the first token, then the decode time and tokens. */
interface Engine {
  run(prompt: number[], maxNewTokens: number): Promise<Run>;
  drafting(): Record<string, number> | undefined;
  threads: number;
  library: LibraryInfo;
  dispose(): Promise<void>;
}

function packageVersion(url: URL): string {
  return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
}

async function specstream(spec: ContenderSpec, onStarted: () => void): Promise<Engine> {
  const core = await import('@specstream/core');
  const { loadCausalLm } = await import('@specstream/models');
  const speculative = await import('@specstream/speculative');
  await core.initBackend({ backend: 'wasm' });
  onStarted();
  const weights = spec.weights === 'f32' ? undefined : (spec.weights as 'q8' | 'q4');
  const target = await loadCausalLm(spec.model, { weights });
  const draft = spec.drafter === 'draft' ? await loadCausalLm(spec.draftModel!, { weights }) : undefined;
  const totals = speculative.emptyMetrics();
  async function* ids(events: AsyncIterable<{ token: number }>) {
    for await (const e of events) yield e.token;
  }
  return {
    threads: core.kernelThreadCount(),
    library: {
      name: '@specstream/core (wasm kernels)',
      version: packageVersion(new URL('../../packages/core/package.json', import.meta.url)),
    },
    async run(prompt, maxNewTokens) {
      const start = performance.now();
      if (spec.drafter === 'none') {
        return timed(ids(core.generate({ model: target, prompt, maxNewTokens })), maxNewTokens, start);
      }
      const run = speculative.speculativeGenerate({
        target,
        // The CLI's defaults: the draft model or prompt lookup, adaptive k.
        draft: draft ?? speculative.promptLookupDrafter(),
        k: speculative.adaptiveK(),
        prompt,
        maxNewTokens,
        totals,
      });
      return timed(ids(run), maxNewTokens, start);
    },
    drafting() {
      if (spec.drafter === 'none') return undefined;
      const r = speculative.rates(totals);
      return {
        alpha: Number(r.acceptanceRate.toFixed(4)),
        tokensPerPass: Number(r.tokensPerPass.toFixed(3)),
        meanK: Number(r.meanK.toFixed(2)),
      };
    },
    async dispose() {
      target.dispose();
      draft?.dispose();
    },
  };
}

async function llamaCpp(spec: ContenderSpec, onStarted: () => void): Promise<Engine> {
  const { cpuLlama, llamaCppVersion } = await import('./llama-cpp.js');
  const { nlc, llama } = await cpuLlama(spec.threads);
  onStarted();
  const contextOptions = {
    contextSize: spec.contextSize,
    sequences: 1,
    threads: spec.threads,
    flashAttention: spec.flashAttention,
    experimentalKvCacheKeyType: spec.kvCache,
    experimentalKvCacheValueType: spec.kvCache,
  } as const;
  const model = await llama.loadModel({ modelPath: spec.model });
  const context = await model.createContext(contextOptions);
  const draftModel =
    spec.drafter === 'draft' ? await llama.loadModel({ modelPath: spec.draftModel! }) : undefined;
  const draftContext = draftModel ? await draftModel.createContext(contextOptions) : undefined;
  // Each predictor with its defaults (node-llama-cpp's CLI passes none either), except minTokens
  // when asked: with 0 the target never waits for the draft, which on a CPU it shares rarely beats.
  const tokenPredictor = draftContext
    ? new nlc.DraftSequenceTokenPredictor(
        draftContext.getSequence(),
        spec.draftMinTokens === undefined ? undefined : { minTokens: spec.draftMinTokens },
      )
    : spec.drafter === 'lookup'
      ? new nlc.InputLookupTokenPredictor()
      : undefined;
  const sequence = context.getSequence({ tokenPredictor });
  return {
    threads: spec.threads,
    library: {
      name: 'node-llama-cpp',
      version: llamaCppVersion(),
      build: {
        release: llama.llamaCppRelease.release,
        repo: llama.llamaCppRelease.repo,
        buildType: llama.buildType,
        // "CPU : SSE3 = 1 | AVX2 = 1 | …" → the features compiled in and found.
        systemInfo: [...llama.systemInfo.matchAll(/(\w+) = 1/g)].map((m) => m[1]).join(' '),
      },
    },
    async run(prompt, maxNewTokens) {
      await sequence.clearHistory();
      // What LlamaCompletion does before it evaluates: the lookup predictor searches these.
      tokenPredictor?.updateInputTokens(prompt as never[]);
      const start = performance.now();
      // Raw token ids, no chat wrapper; an end-of-text id is just another token, as in ours.
      const events = sequence.evaluate(prompt as never[], { temperature: 0, yieldEogToken: true });
      return timed(events as AsyncIterable<number>, maxNewTokens, start);
    },
    drafting() {
      if (!tokenPredictor) return undefined;
      const p = sequence.tokenPredictions;
      return {
        validated: p.validated,
        refuted: p.refuted,
        used: p.used,
        unused: p.unused,
        alpha: Number((p.validated / Math.max(1, p.validated + p.refuted)).toFixed(4)),
      };
    },
    async dispose() {
      await context.dispose();
      await draftContext?.dispose();
      await model.dispose();
      await draftModel?.dispose();
      await llama.dispose();
    },
  };
}

/**
 * transformers.js (@huggingface/transformers) on onnxruntime-node's CPU provider, offline: the
 * ONNX export of the target made by tools/peers/export_onnx.py, loaded from the local folder with
 * remote models off. Greedy through its own `generate` (do_sample false), raw token ids in, no
 * end-of-sequence stop (eos_token_id null: the end-of-text id is just another token, as in the
 * other two); a streamer stamps each new token as generate hands it out.
 */
async function transformersJs(spec: ContenderSpec, onStarted: () => void): Promise<Engine> {
  const tjs = await import('@huggingface/transformers');
  tjs.env.allowRemoteModels = false;
  tjs.env.allowLocalModels = true;
  tjs.env.localModelPath = `${dirname(resolve(spec.model))}/`;
  tjs.env.useFSCache = false;
  onStarted();
  const model = await tjs.AutoModelForCausalLM.from_pretrained(basename(spec.model), {
    local_files_only: true,
    device: 'cpu',
    dtype: 'fp32',
    session_options: { intraOpNumThreads: spec.threads, interOpNumThreads: 1 },
  });
  const ort = (tjs.env.backends.onnx as { versions?: Record<string, string> }).versions ?? {};
  class Stamps extends tjs.BaseStreamer {
    prompt = true;
    stamps: number[] = [];
    tokens: number[] = [];
    override put(value: bigint[][]) {
      // generate() first hands the prompt over, then one [[id]] per step.
      if (this.prompt) {
        this.prompt = false;
        return;
      }
      this.stamps.push(performance.now());
      this.tokens.push(Number(value[0][0]));
    }
    override end() {}
  }
  return {
    threads: spec.threads,
    library: {
      name: '@huggingface/transformers',
      version: packageVersion(
        new URL('../../node_modules/@huggingface/transformers/package.json', import.meta.url),
      ),
      runtime: `onnxruntime-node ${ort.node ?? '?'} (CPU execution provider)`,
    },
    async run(prompt, maxNewTokens) {
      const n = prompt.length;
      const inputs = new tjs.Tensor(
        'int64',
        BigInt64Array.from(prompt, (t) => BigInt(t)),
        [1, n],
      );
      const attention_mask = new tjs.Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]);
      const streamer = new Stamps();
      const start = performance.now();
      await model.generate({
        inputs,
        attention_mask,
        max_new_tokens: maxNewTokens,
        do_sample: false,
        eos_token_id: null,
        streamer,
      } as never);
      const first = streamer.stamps[0] ?? start;
      const last = streamer.stamps.at(-1) ?? start;
      return {
        ttftMs: first - start,
        decodeMs: last - first,
        tokens: streamer.tokens.slice(0, maxNewTokens),
      };
    },
    drafting: () => undefined,
    async dispose() {
      await model.dispose();
    },
  };
}

async function main(spec: ContenderSpec): Promise<ContenderResult> {
  const prompts = JSON.parse(readFileSync(spec.promptsFile, 'utf8')) as Prompts;
  let baselineRss = 0;
  const started = () => {
    baselineRss = process.memoryUsage.rss();
  };
  let t = performance.now();
  const engine = await { specstream, 'llama.cpp': llamaCpp, 'transformers.js': transformersJs }[spec.library](
    spec,
    started,
  );
  const loadSeconds = (performance.now() - t) / 1000;
  try {
    t = performance.now();
    for (const prompt of prompts.ttft) await engine.run(prompt, 2);
    await engine.run(prompts.decode[0], Math.min(spec.newTokens, 16));
    const warmupSeconds = (performance.now() - t) / 1000;

    const ttft = prompts.ttft.map((prompt) => ({
      promptTokens: prompt.length,
      ms: [] as number[],
      medianMs: 0,
    }));
    for (let rep = 0; rep < spec.ttftReps; rep++) {
      for (const [i, prompt] of prompts.ttft.entries()) {
        ttft[i].ms.push(Number((await engine.run(prompt, 2)).ttftMs.toFixed(2)));
      }
    }
    for (const row of ttft) row.medianMs = Number(median(row.ms).toFixed(2));

    const outputs: number[][] = [];
    let tokens = 0;
    let ms = 0;
    const begin = performance.now();
    for (const prompt of prompts.decode) {
      const r = await engine.run(prompt, spec.newTokens);
      outputs.push(r.tokens);
      tokens += r.tokens.length - 1;
      ms += r.decodeMs;
      if ((performance.now() - begin) / 1000 > spec.maxSeconds) break;
    }
    const drafting = engine.drafting();
    return {
      id: spec.id,
      baselineRss,
      maxRss: process.resourceUsage().maxRSS * 1024,
      loadSeconds: Number(loadSeconds.toFixed(2)),
      warmupSeconds: Number(warmupSeconds.toFixed(2)),
      ttft,
      decode: decodeSummary(outputs, tokens, ms),
      ...(drafting ? { drafting } : {}),
      threads: engine.threads,
      library: engine.library,
    };
  } finally {
    await engine.dispose();
  }
}

const [specPath] = process.argv.slice(2);
if (!specPath) throw new Error('usage: peers-child.ts <spec.json>');
let result: ContenderResult;
try {
  result = await main(JSON.parse(readFileSync(specPath, 'utf8')) as ContenderSpec);
} catch (error) {
  // The parent reports this line as the contender's failure (the message, not the stack).
  process.stdout.write(`PEERS_ERROR ${JSON.stringify(String((error as Error)?.message ?? error))}\n`);
  process.stderr.write(`${(error as Error)?.stack ?? error}\n`);
  process.exit(1);
}
process.stdout.write(`PEERS_RESULT ${JSON.stringify(result)}\n`);
// Kernel threads (specstream) and the llama.cpp addon may keep the loop alive: the result is out.
process.exit(0);
