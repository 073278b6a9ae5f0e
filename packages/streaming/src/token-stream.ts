import { AbortError, type FinishReason, InvalidArgumentError, type TokenEvent } from '@specstream/core';
import { Observable } from 'rxjs';
import { createStopMatcher } from './stop-strings.js';

/** Turns token ids into text deltas that never end inside a UTF-8 character (models' createDetokenizer fits). */
export interface TextDecoderStream {
  push(id: number): string;
  flush(): string;
}

export interface TokenStreamOptions {
  /** A fresh detokenizer per row; without one, chunks carry ids and empty text. */
  detokenizer?: () => TextDecoderStream;
  /** The row ends at the first of these in its text, which is not emitted; needs a detokenizer. */
  stopStrings?: readonly string[];
}

export interface TokenChunk {
  type: 'token';
  row: number;
  /** The token this chunk reports. */
  id: number;
  /** Text released with this token: may be '' (held back) or carry text held from earlier tokens. */
  text: string;
  index: number;
  position: number;
  finishReason?: FinishReason;
  timings: TokenEvent['timings'];
}

export interface UsageChunk {
  type: 'usage';
  /** Generated tokens per row (cut at stop strings). */
  tokens: number[];
  elapsedMs: number;
  tokensPerSecond: number;
}

export type StreamChunk = TokenChunk | UsageChunk;

/**
 * A cold Observable over a generation: each subscription calls `start` with a
 * fresh AbortSignal and runs one generation (core's `generate`, speculative
 * decoding, anything yielding token events). Unsubscribing aborts it, which
 * generation honours within one step and answers by freeing its tensors.
 * Errors arrive as error notifications; a last `usage` chunk precedes completion.
 */
export function tokenStream(
  start: (signal: AbortSignal) => AsyncIterable<TokenEvent>,
  options: TokenStreamOptions = {},
): Observable<StreamChunk> {
  if (options.stopStrings?.length && options.detokenizer === undefined) {
    throw new InvalidArgumentError('tokenStream: stopStrings need a detokenizer to see the text');
  }
  return new Observable<StreamChunk>((subscriber) => {
    const controller = new AbortController();
    const rows = new Map<
      number,
      { detok?: TextDecoderStream; stop: ReturnType<typeof createStopMatcher>; count: number; done: boolean }
    >();
    const begin = performance.now();
    const row = (r: number) => {
      let s = rows.get(r);
      if (s === undefined) {
        s = {
          detok: options.detokenizer?.(),
          stop: createStopMatcher(options.stopStrings ?? []),
          count: 0,
          done: false,
        };
        rows.set(r, s);
      }
      return s;
    };
    (async () => {
      for await (const event of start(controller.signal)) {
        if (subscriber.closed) return;
        const s = row(event.row);
        if (s.done) continue;
        let delta = s.detok?.push(event.token) ?? '';
        let finishReason = event.finishReason;
        if (finishReason !== undefined) delta += s.detok?.flush() ?? '';
        const released = s.stop.push(delta, finishReason !== undefined);
        if (released.stopped) finishReason = 'stop';
        s.count++;
        s.done = finishReason !== undefined;
        subscriber.next({
          type: 'token',
          row: event.row,
          id: event.token,
          text: released.text,
          index: event.index,
          position: event.position,
          finishReason,
          timings: event.timings,
        });
        // A stop string ended a row the generator still runs: stop it once every row is done.
        if (released.stopped && [...rows.values()].every((x) => x.done) && event.finishReason === undefined) {
          controller.abort(new AbortError('stop string'));
          break;
        }
      }
      const tokens = [...rows.entries()].sort(([a], [b]) => a - b).map(([, s]) => s.count);
      const elapsedMs = performance.now() - begin;
      const total = tokens.reduce((a, b) => a + b, 0);
      subscriber.next({ type: 'usage', tokens, elapsedMs, tokensPerSecond: (1000 * total) / elapsedMs });
      subscriber.complete();
    })().catch((error) => {
      if (!subscriber.closed) subscriber.error(error);
    });
    return () => controller.abort(new AbortError('unsubscribed'));
  });
}
