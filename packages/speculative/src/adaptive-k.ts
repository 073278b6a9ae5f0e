import { getLogger, InvalidArgumentError } from '@specstream/core';
import { checkK, expectedTokens, type IterationReport, type KPolicy } from './k-policy.js';

export interface AdaptiveKOptions {
  /**
   * Smallest k (default 0). k = 0 is a plain target step with no drafting: chosen when the
   * draft does not pay for itself (on a 2-core wasm machine a layer-skip draft ran at 0.98× of
   * plain decoding at its best k), with k = 1 tried now and then in case acceptance rises.
   */
  minK?: number;
  maxK?: number;
  /** k of the first iteration, before anything is measured (default 4). */
  initialK?: number;
  /** Weight of the newest observation in the running estimates (default 0.1). */
  smoothing?: number;
  /** Every this many iterations try a neighbour of the best k, to keep its cost estimate fresh (default 8). */
  exploreEvery?: number;
  /**
   * What an earlier policy learned (its `state()`): start from its acceptance and timings instead
   * of probing. A 96-token reply is about 40 iterations, and a fresh policy spends several of them
   * on probes of k that turn out worse; one started from the last reply's state skips them. Its
   * timings keep being updated (a new one weighs a third at first), so a machine that got slower
   * or busier since is followed within a few iterations. Entries for k outside [minK, maxK] are
   * left out.
   */
  state?: AdaptiveKState;
}

/** What an adaptive policy has learned, as plain JSON: `adaptiveK({ state })` starts from it. */
export interface AdaptiveKState {
  version: 1;
  /** Decayed counts of accepted drafted tokens and of rejections (α = accepted / (accepted + rejected)). */
  accepted: number;
  rejected: number;
  /** Per k timed: the iteration's and its verify pass's estimated ms, and how often it was timed. */
  timings: { k: number; iterationMs: number; verifyMs: number; timed: number }[];
}

/** An adaptiveK policy: a KPolicy that can hand over what it has learned. */
export interface AdaptiveKPolicy extends KPolicy {
  state(): AdaptiveKState;
}

/** How much evidence a restored state keeps: α as if from this many drafted runs at most. */
const RESTORED_EVIDENCE = 4;
/** A restored timing counts as this many observations (so the next one weighs 1/RESTORED_TIMED). */
const RESTORED_TIMED = 3;

/** Standard errors added to α when weighing plain steps against drafting (see choose). */
const HOPE = 1;

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
 * two iterations try initialK and half of it, to seed that line (double it
 * was a third probe until the shipped pair: on wasm a k = 8 verify pass costs
 * two steps, and the replay in bench/adaptive-sim.ts gained 0.4–2.9% for a
 * fresh policy on every curve and α without it); a k
 * timed once whose timing alone keeps it from being chosen is timed again.
 * k = 0 (a plain step: E = 1) is timed on its own, outside the line, since it
 * has no proposal at all (until timed, it is estimated by the cheapest verify
 * pass); a k = 1 tried after plain steps also pays the draft's catch-up on
 * them, which is the real price of switching back. Replayed on measured wasm
 * and H200 costs (bench/adaptive-sim.ts, 8 seeds), allowing k = 0 changed
 * throughput by −0.4% to +0.3% where drafting pays (α = 0.8), and by +7% and
 * +33% on wasm where it does not (α = 0.5, 0.2).
 */
export function adaptiveK(options: AdaptiveKOptions = {}): AdaptiveKPolicy {
  const minK = options.minK ?? 0;
  const maxK = options.maxK ?? 8;
  checkK(maxK, 'maxK');
  if (!Number.isInteger(minK) || minK < 0 || minK > maxK) {
    throw new InvalidArgumentError(`minK must be an integer in [0, maxK = ${maxK}], got ${minK}`);
  }
  const initialK = Math.min(Math.max(options.initialK ?? 4, minK, 1), maxK);
  const w = options.smoothing ?? 0.1;
  const exploreEvery = options.exploreEvery ?? 8;
  const log = getLogger('speculative');

  // Decayed counts, with a weak prior of α = 0.5.
  let accepted = 1;
  let rejected = 1;
  const iterationMs = new Map<number, number>();
  // Verify passes alone, per k: what a plain step is estimated from when its own timing is in doubt.
  const verifyMs = new Map<number, number>();
  const seenAt = new Map<number, number>();
  const rechecked = new Set<number>();
  let iteration = 0;
  // The first timing of a window size may carry one-time costs (a GPU shader compile, first
  // allocations: 400 ms against 20 ms seen on webgpu), and any timing may carry a pause (GC, the
  // host: 5–9 ms among 0.3–0.5 ms steps seen on wasm), so the second timing keeps the smaller
  // of the two; then a plain mean until 1/w observations, then an exponential average, where a
  // timing counts for at most twice the estimate. Without that, one pause made plain steps look
  // costlier than drafting with a useless draft, and k = 0 is timed again only when explored.
  const average = (old: number | undefined, x: number, n: number) =>
    old === undefined
      ? x
      : n === 2
        ? Math.min(old, x)
        : old + Math.max(w, 1 / (n - 1)) * (Math.min(x, 2 * old) - old);
  let best = initialK;

  const alpha = () => accepted / (accepted + rejected);
  let warmup = [...new Set([initialK, Math.max(minK, 1, Math.floor(initialK / 2))])];

  if (options.state !== undefined) {
    const restored = checkAdaptiveKState(options.state);
    const n = restored.accepted + restored.rejected;
    const scale = n > RESTORED_EVIDENCE ? RESTORED_EVIDENCE / n : 1;
    accepted = restored.accepted * scale;
    rejected = restored.rejected * scale;
    for (const t of restored.timings) {
      if (t.k < minK || t.k > maxK) continue;
      iterationMs.set(t.k, t.iterationMs);
      verifyMs.set(t.k, t.verifyMs);
      seenAt.set(t.k, Math.min(t.timed, RESTORED_TIMED));
    }
    // With two drafting k timed the cost line stands on measurements: no probes.
    if ([...iterationMs.keys()].filter((k) => k > 0).length >= 2) warmup = [];
  }

  /**
   * Measured iteration time at k, or else: for k ≥ 1 the line through the other k ≥ 1 (all but
   * `doubted`) at k; for a plain step (k = 0) the cheapest verify pass seen, since one position
   * costs no more than several (undefined before any).
   */
  function cost(k: number, doubted?: number): number | undefined {
    const known = k === doubted ? undefined : iterationMs.get(k);
    if (known !== undefined) return known;
    if (k === 0) {
      const passes = [...verifyMs.entries()].filter(([x]) => x > 0).map(([, t]) => t);
      return passes.length > 0 ? Math.min(...passes) : undefined;
    }
    const points = [...iterationMs.entries()].filter(([x]) => x !== doubted && x > 0);
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
    for (let k = Math.max(minK, 1); k <= maxK; k++) {
      const t = cost(k, doubted);
      if (t === undefined) continue;
      const rate = expectedTokens(a, k) / t;
      if (rate > bestRate) {
        bestRate = rate;
        bestK = k;
      }
    }
    // Plain steps teach nothing about α, so a low estimate would keep k at 0 for good: they are
    // chosen only when they beat drafting even at an optimistic α (one standard error up).
    const plain = minK === 0 ? cost(0, doubted) : undefined;
    if (plain !== undefined) {
      const n = accepted + rejected;
      const hopeful = Math.min(1, a + HOPE * Math.sqrt((a * (1 - a)) / n) + 1 / n);
      let draftingRate = 0;
      for (let k = 1; k <= maxK; k++) {
        const t = cost(k, doubted);
        if (t !== undefined) draftingRate = Math.max(draftingRate, expectedTokens(hopeful, k) / t);
      }
      if (1 / plain > draftingRate) return 0;
    }
    return bestK;
  }

  return {
    maxK,
    state() {
      return {
        version: 1,
        accepted,
        rejected,
        timings: [...iterationMs.entries()]
          .sort(([a], [b]) => a - b)
          .map(([k, ms]) => ({ k, iterationMs: ms, verifyMs: verifyMs.get(k)!, timed: seenAt.get(k)! })),
      };
    },
    next() {
      iteration++;
      // Two spread-out k first, so the cost line rests on measurements, not a guess.
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
      // The cost line is only a line: a neighbour of the best never timed may be cheaper than
      // it predicts (on wasm the verify pass grows in steps). Timing each once as soon as it
      // borders the best climbs to the real optimum within a few iterations, where waiting for
      // the periodic exploration left a fresh policy on a worse k for most of a short reply.
      for (const neighbour of seenAt.has(best) ? [best + 1, best - 1] : []) {
        if (neighbour >= Math.max(minK, 1) && neighbour <= maxK && !seenAt.has(neighbour)) return neighbour;
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
      // A plain step says nothing about acceptance: α decays only on drafted tokens.
      if (report.k > 0) {
        accepted = (1 - w) * accepted + acc;
        rejected = (1 - w) * rejected + rej;
      }
      const seen = (seenAt.get(report.k) ?? 0) + 1;
      seenAt.set(report.k, seen);
      iterationMs.set(report.k, average(iterationMs.get(report.k), report.draftMs + report.verifyMs, seen));
      verifyMs.set(report.k, average(verifyMs.get(report.k), report.verifyMs, seen));
      log.debug({ k: report.k, alpha: alpha(), iterationMs: iterationMs.get(report.k), best }, 'adaptive k');
    },
  };
}

/** A state from outside (a file, a request): every field checked, so a bad one is named. */
export function checkAdaptiveKState(state: AdaptiveKState): AdaptiveKState {
  const bad = (what: string) => new InvalidArgumentError(`adaptiveK state: ${what}`);
  if (typeof state !== 'object' || state === null) throw bad(`must be an object, got ${String(state)}`);
  if (state.version !== 1) throw bad(`version must be 1, got ${JSON.stringify(state.version)}`);
  for (const name of ['accepted', 'rejected'] as const) {
    const x = state[name];
    if (typeof x !== 'number' || !Number.isFinite(x) || x < 0)
      throw bad(`${name} must be a finite number >= 0, got ${JSON.stringify(x)}`);
  }
  if (state.accepted + state.rejected <= 0) throw bad('accepted + rejected must be > 0');
  if (!Array.isArray(state.timings)) throw bad('timings must be an array');
  const seen = new Set<number>();
  state.timings.forEach((t, i) => {
    if (typeof t !== 'object' || t === null) throw bad(`timings[${i}] must be an object`);
    if (!Number.isInteger(t.k) || t.k < 0 || t.k > 64)
      throw bad(`timings[${i}].k must be an integer in [0, 64], got ${JSON.stringify(t.k)}`);
    if (seen.has(t.k)) throw bad(`timings[${i}]: k = ${t.k} appears twice`);
    seen.add(t.k);
    for (const name of ['iterationMs', 'verifyMs'] as const) {
      const x = t[name];
      if (typeof x !== 'number' || !Number.isFinite(x) || x <= 0)
        throw bad(`timings[${i}].${name} must be a finite number > 0, got ${JSON.stringify(x)}`);
    }
    if (!Number.isInteger(t.timed) || t.timed < 1)
      throw bad(`timings[${i}].timed must be an integer >= 1, got ${JSON.stringify(t.timed)}`);
  });
  return state;
}
