import { resolve } from 'node:path';
import {
  type CausalLm,
  currentBackend,
  InvalidArgumentError,
  initBackend,
  kernelSet,
  type SamplingOptions,
} from '@specstream/core';
import { loadCausalLm } from '@specstream/models';
import type { GenerateFlags, WeightChoice } from '../commands/generate.js';
import { DEFAULT_PROMPT } from '../defaults.js';
import { defaultDraftWeights } from '../draft-weights.js';
import { CliError, EXIT } from '../exit-codes.js';
import { type CliIo, readAll, write } from '../io.js';
import { oneLine } from '../main.js';
import {
  type DecodedToken,
  type DecodeRequest,
  type DecodeResult,
  type DraftChoice,
  decode,
} from './decode.js';
import {
  checkDraftFits,
  inspectFolder,
  type ModelFolder,
  stopTokenIds,
  unsupportedOnError,
} from './folders.js';
import { type KMemory, kStateKey, kStatePath, openKMemory, saveKMemory } from './k-state.js';
import { loadProgress } from './progress.js';
import { checkSpeakAlong, type SpeakAlong, startSpeakAlong } from './speak-along.js';
import { type Comparison, compare, compareLine, statsLine } from './stats.js';

/** `specstream generate`: checks, loads, streams, reports. Resolves to the exit code. */
export async function runGenerate(
  promptArg: string | undefined,
  flags: GenerateFlags,
  io: CliIo,
): Promise<number> {
  const promptText = await readPrompt(promptArg, io);
  const target = await inspectFolder(resolve(flags.model), 'target');
  const useDraftModel = typeof flags.draft === 'string' && !flags.promptLookup;
  const draftFolder = useDraftModel
    ? await inspectFolder(resolve(flags.draft as string), 'draft')
    : undefined;
  if (draftFolder !== undefined) checkDraftFits(target, draftFolder);
  const { prompt, maxNewTokens } = fitPrompt(promptText, flags.maxNewTokens, target, draftFolder);
  const speakPaths = await checkSpeakAlong(flags);

  const asked = weightsOf(flags, draftFolder !== undefined);
  await startBackend(flags, asked, io);
  const weights = withDraftDefault(asked, flags);
  checkWeightsRunHere(weights, flags);
  const models: CausalLm[] = [];
  let speaker: SpeakAlong | undefined;
  try {
    if (speakPaths !== undefined) speaker = await startSpeakAlong(speakPaths, io);
    models.push(await loadModel(target, weights.target, io));
    if (draftFolder !== undefined && !io.interrupt.aborted) {
      models.push(await loadModel(draftFolder, weights.draft!, io));
    }
    if (io.interrupt.aborted) {
      await write(io.stderr, 'specstream: interrupted while loading the models\n');
      return EXIT.interrupted;
    }
    const draft: DraftChoice = flags.promptLookup
      ? { kind: 'prompt-lookup' }
      : models[1] !== undefined
        ? { kind: 'model', model: models[1] }
        : { kind: 'none' };
    const request: DecodeRequest = {
      target: models[0],
      draft,
      tokenizer: target.tokenizer!,
      prompt,
      maxNewTokens,
      sampling: samplingOf(flags),
      stopTokens: flags.ignoreEos ? [] : stopTokenIds(target),
      stopStrings: flags.stop,
      k: flags.k,
      kMemory: await openMemory(flags, draft, target, draftFolder, weights, io),
      interrupt: io.interrupt,
    };
    const code = await stream(request, flags, weights, io, speaker);
    const unsaved = request.kMemory === undefined ? undefined : await saveKMemory(request.kMemory);
    if (unsaved !== undefined) await write(io.stderr, `specstream: ${unsaved}\n`);
    return code;
  } finally {
    for (const model of models) model.dispose();
    speaker?.dispose();
  }
}

/** Adaptive k's state from earlier runs with the same setting (see k-state.ts); none for a fixed k. */
async function openMemory(
  flags: GenerateFlags,
  draft: DraftChoice,
  target: ModelFolder,
  draftFolder: ModelFolder | undefined,
  weights: Weights,
  io: CliIo,
): Promise<KMemory | undefined> {
  if (flags.k !== undefined || draft.kind === 'none') return undefined;
  const path = kStatePath(flags.kState, io.env);
  if (path === undefined) return undefined;
  const key = kStateKey({
    target: target.dir,
    drafter: draftFolder?.dir ?? 'prompt lookup',
    weights: `${weights.target}/${weights.draft ?? '-'}`,
    backend: currentBackend() ?? 'none',
    threads: io.env.SPECSTREAM_THREADS,
  });
  const memory = await openKMemory(resolve(path), key);
  if (memory.warning !== undefined) {
    await write(
      io.stderr,
      `specstream: adaptive k's state file ${memory.path} is not used (${memory.warning}); starting fresh, and it is rewritten\n`,
    );
  }
  return memory;
}

/** The argument, else stdin when it is not a terminal, else (or when stdin is empty) the default. */
async function readPrompt(promptArg: string | undefined, io: CliIo): Promise<string> {
  if (promptArg !== undefined) return promptArg;
  if (io.stdinIsTty) return DEFAULT_PROMPT;
  const text = await readAll(io.stdin);
  // A shell pipe usually ends with a newline the user did not mean as part of the prompt.
  const trimmed = text.replace(/\r?\n$/, '');
  return trimmed === '' ? DEFAULT_PROMPT : trimmed;
}

/** Encodes the prompt and caps the new tokens at the room the context leaves (target's and draft's). */
function fitPrompt(
  text: string,
  maxNewTokens: number,
  target: ModelFolder,
  draft: ModelFolder | undefined,
): { prompt: number[]; maxNewTokens: number } {
  const prompt = target.tokenizer!.encode(text);
  if (prompt.length === 0) throw new CliError(EXIT.usage, 'the prompt is empty');
  const beyond = prompt.find((id) => id >= target.vocabSize);
  if (beyond !== undefined) {
    throw new CliError(
      EXIT.unsupportedModel,
      `target model folder ${target.dir}: its tokenizer gives id ${beyond}, past the model's ${target.vocabSize} embeddings`,
    );
  }
  const limiting = draft !== undefined && draft.context < target.context ? draft : target;
  if (prompt.length >= limiting.context) {
    throw new CliError(
      EXIT.promptTooLong,
      `the prompt is ${prompt.length} tokens; the ${limiting.role} model's context is ${limiting.context}, which leaves no room for a new token`,
    );
  }
  return { prompt, maxNewTokens: Math.min(maxNewTokens, limiting.context - prompt.length) };
}

/** The weight format of each model loaded: the draft's only when there is a draft model. */
export interface Weights {
  target: WeightChoice;
  draft?: WeightChoice;
}

function weightsOf(flags: GenerateFlags, draftModel: boolean): Weights {
  return { target: flags.weights, draft: draftModel ? (flags.draftWeights ?? flags.weights) : undefined };
}

/** Unasked (no --draft-weights) under an f32 target, the draft takes defaultDraftWeights(). */
function withDraftDefault(weights: Weights, flags: GenerateFlags): Weights {
  if (weights.draft === undefined || flags.draftWeights !== undefined || weights.target !== 'f32')
    return weights;
  return { ...weights, draft: defaultDraftWeights() };
}

/** The backends whose kernel sets run each format other than f32 (core's kernelSet), preferred first. */
const FORMAT_BACKENDS = { f16: ['webgpu'], q8: ['wasm', 'webgpu'], q4: ['wasm', 'webgpu'] } as const;

const formatsOf = (w: Weights) =>
  [w.target, w.draft].filter((f): f is Exclude<WeightChoice, 'f32'> => f !== undefined && f !== 'f32');

/**
 * The backend to start: --backend, else SPECSTREAM_BACKEND, else the first that runs every format
 * asked for (f16: webgpu; q8/q4: wasm, or webgpu beside f16), else the fastest that starts.
 */
function backendFor(flags: GenerateFlags, weights: Weights, io: CliIo): GenerateFlags['backend'] {
  const formats = formatsOf(weights);
  const needed = (['wasm', 'webgpu'] as const).filter((b) =>
    formats.every((f) => (FORMAT_BACKENDS[f] as readonly string[]).includes(b)),
  );
  if (formats.length === 0) return flags.backend;
  if (flags.backend !== undefined || io.env.SPECSTREAM_BACKEND) return flags.backend;
  return needed[0];
}

/** initBackend, with the flag named when the backend was the weights' choice and cannot start. */
async function startBackend(flags: GenerateFlags, weights: Weights, io: CliIo): Promise<void> {
  const backend = backendFor(flags, weights, io);
  try {
    await initBackend({ backend });
  } catch (error) {
    if (backend === flags.backend || backend === undefined) throw error;
    const [flag, format] =
      weights.target !== 'f32' ? ['--weights', weights.target] : ['--draft-weights', weights.draft];
    throw new CliError(
      EXIT.usage,
      `${flag} ${format} runs on the ${backend} backend, which cannot start here: ${oneLine(error)}`,
    );
  }
}

/** Before any weight is read: core's own reason when the backend's kernel sets cannot run a format. */
function checkWeightsRunHere(weights: Weights, flags: GenerateFlags): void {
  const checks: [flag: string, format: WeightChoice | undefined][] = [
    ['--weights', weights.target],
    [flags.draftWeights !== undefined ? '--draft-weights' : '--weights', weights.draft],
  ];
  for (const [flag, format] of checks) {
    if (format === undefined || format === 'f32') continue;
    try {
      kernelSet(undefined, format);
    } catch (error) {
      if (!(error instanceof InvalidArgumentError)) throw error;
      throw new CliError(
        EXIT.usage,
        `${flag} ${format} on the ${currentBackend()} backend: ${error.message}; pass --backend ${FORMAT_BACKENDS[format].join(' or ')}`,
      );
    }
  }
}

async function loadModel(folder: ModelFolder, weights: WeightChoice, io: CliIo): Promise<CausalLm> {
  const progress = await loadProgress(io, folder.role);
  try {
    return await unsupportedOnError(
      () => loadCausalLm(folder.dir, { onProgress: progress.onProgress, weights }),
      `${folder.role} model folder ${folder.dir}: `,
    );
  } finally {
    progress.stop();
  }
}

function samplingOf(flags: GenerateFlags): SamplingOptions {
  return { temperature: flags.temperature, topP: flags.topP, topK: flags.topK, seed: flags.seed };
}

function drafterName(flags: GenerateFlags): string {
  const k = flags.k === undefined ? 'adaptive k' : `k ${flags.k}`;
  return `${flags.promptLookup ? 'prompt lookup' : 'draft model'}, ${k}`;
}

/** Streams text (or JSON lines) to stdout, the stats line to stderr, and the comparison if asked. */
async function stream(
  request: DecodeRequest,
  flags: GenerateFlags,
  weights: Weights,
  io: CliIo,
  speaker?: SpeakAlong,
): Promise<number> {
  let firstTokenAtMs: number | undefined;
  const onToken = (token: DecodedToken) => {
    if (flags.json) io.stdout.write(`${JSON.stringify({ event: 'token', ...token })}\n`);
    else io.stdout.write(token.text);
    speaker?.write(token.text);
    // Process uptime: the time from the command's start to the first token on screen.
    if (firstTokenAtMs === undefined && (flags.json || token.text !== '')) firstTokenAtMs = performance.now();
  };
  const result = await decode(request, onToken);
  if (io.stdoutIsTty && !flags.json && result.text !== '' && !result.text.endsWith('\n')) {
    await write(io.stdout, '\n');
  }
  await write(io.stderr, statsLine(result, drafterName(flags), firstTokenAtMs, weightsLabel(weights)));
  const speech = speaker === undefined ? EXIT.ok : await speaker.finish(io);
  const comparison = flags.compare && !result.interrupted ? await measureSpeedup(request, result) : undefined;
  const interrupted = result.interrupted || comparison === 'interrupted';
  const summary = comparison === 'interrupted' ? undefined : comparison;
  if (summary !== undefined) await write(io.stderr, compareLine(summary));
  if (flags.json) {
    await write(io.stdout, `${JSON.stringify(summaryEvent(request, result, flags, weights, summary))}\n`);
  }
  return interrupted ? EXIT.interrupted : speech;
}

/**
 * --compare: the target alone, then the speculative run again, both silent. The streamed run
 * paid the first use of every shape (allocations, kernel set-up) and the target-alone run
 * would not, so the speedup compares the two warm runs.
 */
async function measureSpeedup(
  request: DecodeRequest,
  shown: DecodeResult,
): Promise<Comparison | 'interrupted'> {
  const plain = await decode({ ...request, draft: { kind: 'none' } }, () => {});
  if (plain.interrupted) return 'interrupted';
  const again = await decode(request, () => {});
  if (again.interrupted) return 'interrupted';
  const comparison = compare(again, plain);
  return { ...comparison, sameText: comparison.sameText && compare(shown, plain).sameText };
}

/** For the stats line: nothing for f32 weights (the default), else each model's format. */
function weightsLabel(w: Weights): string | undefined {
  if (formatsOf(w).length === 0) return undefined;
  return w.draft === undefined || w.draft === w.target
    ? `${w.target} weights`
    : `${w.target} weights, draft ${w.draft}`;
}

function summaryEvent(
  request: DecodeRequest,
  result: DecodeResult,
  flags: GenerateFlags,
  weights: Weights,
  comparison: Comparison | undefined,
) {
  return {
    event: 'summary',
    text: result.text,
    tokens: result.ids.length,
    finishReason: result.finishReason ?? null,
    interrupted: result.interrupted,
    elapsedMs: result.elapsedMs,
    firstTokenMs: result.firstTokenMs ?? null,
    drafter: flags.draft === false && !flags.promptLookup ? 'none' : drafterName(flags),
    // Whether adaptive k started from an earlier run's state (null: fixed k, no drafter, or none kept).
    kState: request.kMemory === undefined ? null : request.kMemory.state === undefined ? 'fresh' : 'restored',
    weights: weights.target,
    draftWeights: weights.draft ?? null,
    tokensPerSecond: result.rates?.tokensPerSecond ?? result.tokensPerSecond,
    ...(result.rates === undefined
      ? {}
      : {
          acceptanceRate: result.rates.acceptanceRate,
          tokensPerPass: result.rates.tokensPerPass,
          meanK: result.rates.meanK,
          draftedTokens: result.metrics?.draftedTokens,
          acceptedTokens: result.metrics?.acceptedTokens,
          targetPasses: result.metrics?.targetPasses,
        }),
    ...(comparison === undefined ? {} : { compare: comparison }),
  };
}
