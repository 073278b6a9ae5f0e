import { getLogger } from '@specstream/core';
import { checkK, expectedTokens, type IterationReport, type KPolicy } from './k-policy.js';

export interface AdaptiveKOptions {
  minK?: number;
  maxK?: number;
  /** k of the first iteration, before anything is measured (default 4). */
  initialK?: number;
  /** Weight of the newest observation in the running estimates (default 0.1). */
  smoothing?: number;
  /** Every this many iterations try a neighbour of the best k, to keep its cost estimate fresh (default 8). */
  exploreEvery?: number;
}

/**
 * Picks k each iteration to maximise expected tokens per second:
 * E(k) / t_iteration(k), with α estimated from the acceptances seen so far
 * (each rejection ends a geometric run, so α = accepted / (accepted +
 * rejections)) and t_iteration(k) the measured time of an iteration at k:
 * the draft's proposal plus the k+1-position verify pass, a least-squares
 * line in k through the k values tried, so untried k are extrapolated. A
 * proposal is not k times a step: a model drafter catches up on the accepted
 * text and reads its picks once, so it costs a + b·k (on webgpu, where the
 * steps chain on the device, b came out about 20% under a step timed alone). The first
 * three iterations try initialK, half and double it, to seed that line; a k
 * timed once whose timing alone keeps it from being chosen is timed again.
 */
export function adaptiveK(options: AdaptiveKOptions = {}): KPolicy {
  const minK = options.minK ?? 1;
  const maxK = options.maxK ?? 8;
  checkK(minK, 'minK');
  checkK(maxK, 'maxK');
  const initialK = Math.min(Math.max(options.initialK ?? 4, minK), maxK);
  const w = options.smoothing ?? 0.1;
  const exploreEvery = options.exploreEvery ?? 8;
  const log = getLogger('speculative');

  // Decayed counts, with a weak prior of α = 0.5.
  let accepted = 1;
  let rejected = 1;
  const iterationMs = new Map<number, number>();
  const seenAt = new Map<number, number>();
  const rechecked = new Set<number>();
  let iteration = 0;
  // The first timing of a window size carries one-time costs (a GPU shader compile, first
  // allocations: 400 ms against 20 ms seen on webgpu), so the second replaces it; then a
  // plain mean until 1/w observations, then an exponential average.
  const average = (old: number | undefined, x: number, n: number) =>
    old === undefined || n <= 2 ? x : old + Math.max(w, 1 / (n - 1)) * (x - old);
  let best = initialK;

  const alpha = () => accepted / (accepted + rejected);
  const warmup = [
    ...new Set([initialK, Math.max(minK, Math.floor(initialK / 2)), Math.min(maxK, 2 * initialK)]),
  ];

  /** Measured iteration time at k, or the line through the other k's (all but `doubted`) at k. */
  function cost(k: number, doubted?: number): number {
    const known = k === doubted ? undefined : iterationMs.get(k);
    if (known !== undefined) return known;
    const points = [...iterationMs.entries()].filter(([x]) => x !== doubted);
    if (points.length === 0) return 1;
    if (points.length === 1) return points[0][1]; // flat until a second k is measured
    const n = points.length;
    const mx = points.reduce((s, [x]) => s + x, 0) / n;
    const my = points.reduce((s, [, y]) => s + y, 0) / n;
    const sxx = points.reduce((s, [x]) => s + (x - mx) ** 2, 0);
    const slope = Math.max(0, points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0) / sxx);
    return Math.max(1e-3, my + slope * (k - mx));
  }

  function choose(doubted?: number): number {
    const a = alpha();
    let bestK = minK;
    let bestRate = -1;
    for (let k = minK; k <= maxK; k++) {
      const rate = expectedTokens(a, k) / cost(k, doubted);
      if (rate > bestRate) {
        bestRate = rate;
        bestK = k;
      }
    }
    return bestK;
  }

  return {
    maxK,
    next() {
      iteration++;
      // Three spread-out k first, so the cost line rests on measurements, not a guess.
      const probe = warmup.find((k) => !seenAt.has(k));
      if (probe !== undefined && iteration <= warmup.length) return probe;
      best = choose();
      // A k timed only once may owe its cost to a one-time outlier (see average) and would
      // then never be picked again to correct it: if the other timings say it would be the
      // best, time it once more.
      for (const [k, n] of seenAt) {
        if (n === 1 && k !== best && !rechecked.has(k) && choose(k) === k) {
          rechecked.add(k);
          return k;
        }
      }
      if (iteration % exploreEvery === 0) {
        const neighbour = best + ((iteration / exploreEvery) % 2 === 0 ? 1 : -1);
        if (neighbour >= minK && neighbour <= maxK) return neighbour;
      }
      return best;
    },
    observe(report: IterationReport) {
      let acc = 0;
      let rej = 0;
      report.proposed.forEach((m, i) => {
        acc += report.accepted[i];
        if (report.accepted[i] < m) rej++;
      });
      accepted = (1 - w) * accepted + acc;
      rejected = (1 - w) * rejected + rej;
      const seen = (seenAt.get(report.k) ?? 0) + 1;
      seenAt.set(report.k, seen);
      iterationMs.set(report.k, average(iterationMs.get(report.k), report.draftMs + report.verifyMs, seen));
      log.debug({ k: report.k, alpha: alpha(), iterationMs: iterationMs.get(report.k), best }, 'adaptive k');
    },
  };
}
