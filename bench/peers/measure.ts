/** What the peers suite's contenders measure the same way, here and on the GPU machine (llama-gpu.ts). */

/** One timed generation: time to the first token, then the decode time of the rest. */
export interface Run {
  ttftMs: number;
  decodeMs: number;
  tokens: number[];
}

/** Drains `events` (token ids) up to `maxNewTokens`, timing the first token from `start` and the rest from it. */
export async function timed(
  events: AsyncIterable<number>,
  maxNewTokens: number,
  start: number,
): Promise<Run> {
  const tokens: number[] = [];
  let first = start;
  for await (const token of events) {
    if (tokens.length === 0) first = performance.now();
    tokens.push(token);
    if (tokens.length >= maxNewTokens) break;
  }
  const end = performance.now();
  return { ttftMs: first - start, decodeMs: end - first, tokens };
}

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** How many of the prompts both ran give the same ids, and where each first differs (null: same). */
export function agreement(
  a: number[][],
  b: number[][],
): { same: number; of: number; first: (number | null)[] } {
  const n = Math.min(a.length, b.length);
  const first: (number | null)[] = [];
  for (let i = 0; i < n; i++) {
    const len = Math.max(a[i].length, b[i].length);
    let at: number | null = null;
    for (let j = 0; j < len; j++) {
      if (a[i][j] !== b[i][j]) {
        at = j;
        break;
      }
    }
    first.push(at);
  }
  return { same: first.filter((x) => x === null).length, of: n, first };
}

/** A contender's decode figures as the JSON reports them: tokens after the first over their time. */
export function decodeSummary(outputs: number[][], tokens: number, ms: number) {
  return {
    prompts: outputs.length,
    tokens,
    ms: Number(ms.toFixed(1)),
    tokensPerS: Number(((1000 * tokens) / ms).toFixed(2)),
    outputs,
  };
}
