import {
  type CausalLm,
  type FinishReason,
  generate,
  type SamplingOptions,
  type TokenEvent,
} from '@specstream/core';
import { createDetokenizer, type Tokenizer } from '@specstream/models';
import {
  type AdaptiveKPolicy,
  adaptiveK,
  type Drafter,
  promptLookupDrafter,
  type SpeculativeMetrics,
  type SpeculativeRates,
  type SpeculativeRun,
  speculativeGenerate,
} from '@specstream/speculative';
import { type StreamChunk, tokenStream } from '@specstream/streaming';
import type { KMemory } from './k-state.js';

export type DraftChoice = { kind: 'none' } | { kind: 'model'; model: CausalLm } | { kind: 'prompt-lookup' };

export interface DecodeRequest {
  target: CausalLm;
  draft: DraftChoice;
  tokenizer: Tokenizer;
  prompt: number[];
  maxNewTokens: number;
  sampling: SamplingOptions;
  stopTokens: number[];
  stopStrings: string[];
  /** Fixed k; adaptive when undefined. */
  k?: number;
  /** Adaptive k starts from what it learned last time (`state`, or `learned` in this run) and updates `learned`. */
  kMemory?: KMemory;
  interrupt: AbortSignal;
}

/** One accepted token as the user sees it: `text` is what it released (UTF-8 safe, stop strings cut). */
export interface DecodedToken {
  id: number;
  text: string;
  index: number;
  position: number;
  /** Drafted and accepted (false: the target's own token). */
  drafted: boolean;
  finishReason?: FinishReason;
  /** Since the decode started. */
  elapsedMs: number;
}

export interface DecodeResult {
  ids: number[];
  text: string;
  finishReason?: FinishReason;
  interrupted: boolean;
  /** Tokens the generator produced (before any stop-string cut) over its wall time. */
  tokensPerSecond: number;
  elapsedMs: number;
  firstTokenMs?: number;
  /** Speculative runs only. */
  rates?: SpeculativeRates;
  metrics?: SpeculativeMetrics;
}

function drafterOf(draft: DraftChoice): CausalLm | Drafter | undefined {
  if (draft.kind === 'model') return draft.model;
  if (draft.kind === 'prompt-lookup') return promptLookupDrafter();
  return undefined;
}

/**
 * Runs one generation through streaming's tokenStream (UTF-8-safe deltas, stop strings that may
 * span tokens) and hands each token to `onToken` as it is accepted. An interrupt aborts the
 * generation within one step; the result then says so and still carries the rates so far.
 */
export async function decode(
  request: DecodeRequest,
  onToken: (token: DecodedToken) => void,
): Promise<DecodeResult> {
  const { tokenizer, interrupt } = request;
  const drafter = drafterOf(request.draft);
  let run: SpeculativeRun | undefined;
  let policy: AdaptiveKPolicy | undefined;
  const drafted = new Map<number, boolean>();
  let produced = 0;
  const begin = performance.now();
  let end = begin;

  async function* tagged(events: AsyncIterable<TokenEvent & { drafted?: boolean }>) {
    try {
      for await (const event of events) {
        produced++;
        drafted.set(event.index, event.drafted ?? false);
        yield event;
      }
    } finally {
      end = performance.now();
      const learned = policy?.state();
      if (request.kMemory !== undefined && learned !== undefined && learned.timings.length > 0)
        request.kMemory.learned = learned;
    }
  }

  const start = (signal: AbortSignal): AsyncIterable<TokenEvent> => {
    const options = {
      prompt: request.prompt,
      maxNewTokens: request.maxNewTokens,
      sampling: request.sampling,
      stopTokens: request.stopTokens,
      signal: AbortSignal.any([signal, interrupt]),
    };
    if (drafter === undefined) return tagged(generate({ model: request.target, ...options }));
    const memory = request.kMemory;
    const k = request.k ?? adaptiveK({ state: memory?.learned ?? memory?.state });
    policy = typeof k === 'number' ? undefined : k;
    run = speculativeGenerate({
      target: request.target,
      draft: drafter,
      k,
      ...options,
    });
    return tagged(run);
  };

  // Special tokens (an end-of-sequence marker) are control, not text.
  const detokenizer = () =>
    createDetokenizer({ decode: (ids) => tokenizer.decode(ids, { skipSpecialTokens: true }) });
  const result: DecodeResult = { ids: [], text: '', interrupted: false, tokensPerSecond: 0, elapsedMs: 0 };
  const onChunk = (chunk: StreamChunk) => {
    if (chunk.type !== 'token') return;
    const elapsedMs = performance.now() - begin;
    result.firstTokenMs ??= elapsedMs;
    result.ids.push(chunk.id);
    result.text += chunk.text;
    result.finishReason = chunk.finishReason;
    const { id, text, index, position, finishReason } = chunk;
    onToken({ id, text, index, position, drafted: drafted.get(index) ?? false, finishReason, elapsedMs });
  };

  try {
    await new Promise<void>((resolve, reject) => {
      tokenStream(start, { detokenizer, stopStrings: request.stopStrings }).subscribe({
        next: onChunk,
        error: reject,
        complete: resolve,
      });
    });
  } catch (error) {
    if (!interrupt.aborted) throw error;
    result.interrupted = true;
  }
  result.elapsedMs = end - begin;
  result.tokensPerSecond = result.elapsedMs > 0 ? (1000 * produced) / result.elapsedMs : 0;
  result.rates = run?.rates();
  result.metrics = run?.metrics;
  return result;
}
