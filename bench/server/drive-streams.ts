// Concurrent streams for the server suite: the HTTP scenarios (server-bench.ts) and the engines
// without HTTP (load-child.ts) drive their requests the same way and measure the same things.
import { loadavg } from 'node:os';

/** One request: tokens generated, ms to the first, ms between successive deliveries. */
export interface RequestTiming {
  tokens: number;
  ttft: number;
  gaps: number[];
}

export interface StreamsRun {
  streams: number;
  requests: number;
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
  /** Between deliveries to one stream (a speculative step delivers several tokens at once), ms. */
  interToken: ReturnType<typeof quantiles>;
  /** From sending a request to its first token, ms. */
  ttft: ReturnType<typeof quantiles>;
  /** The machine's 1-minute load average before and after. */
  loadBefore: number;
  loadAfter: number;
}

/** `streams` concurrent streams, each sending `requests` requests one after another, the prompts taken in turn. */
export async function driveStreams<P>(
  streams: number,
  requests: number,
  prompts: readonly P[],
  request: (prompt: P) => Promise<RequestTiming>,
): Promise<StreamsRun> {
  const gaps: number[] = [];
  const ttfts: number[] = [];
  let tokens = 0;
  let next = 0;
  const loadBefore = loadavg()[0];
  const start = performance.now();
  await Promise.all(
    Array.from({ length: streams }, async () => {
      for (let i = 0; i < requests; i++) {
        const one = await request(prompts[next++ % prompts.length]);
        tokens += one.tokens;
        ttfts.push(one.ttft);
        gaps.push(...one.gaps);
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  return {
    streams,
    requests: streams * requests,
    tokens,
    seconds,
    tokensPerSecond: tokens / seconds,
    interToken: quantiles(gaps),
    ttft: quantiles(ttfts),
    loadBefore,
    loadAfter: loadavg()[0],
  };
}

function quantiles(values: number[]) {
  const sorted = [...values].sort((a, b) => a - b);
  const q = (p: number) =>
    sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
  return { p50: q(0.5), p90: q(0.9), p99: q(0.99), max: sorted.at(-1) ?? 0 };
}
