import { describe, expect, test } from 'vitest';
import {
  type AdaptiveKState,
  adaptiveK,
  expectedTokens,
  type IterationReport,
  type KPolicy,
} from '../src/index.js';
import { lookup } from '../src/prompt-lookup.js';

describe('prompt lookup', () => {
  test('proposes what followed the latest earlier match of the longest suffix n-gram', () => {
    //            0  1  2  3  4  5  6  7  8  9
    const text = [1, 2, 3, 4, 9, 2, 3, 5, 7, 2, 3];
    // Suffix [2,3] last occurred at 5..6, followed by 5, 7, 2, 3.
    expect(lookup(text, 3, 1, 3)).toEqual([5, 7, 2]);
    // The 3-gram [7,2,3] never occurred earlier, so the 2-gram decides.
    expect(lookup(text, 10, 3, 3)).toEqual([]);
    expect(lookup([4, 4, 4, 4], 2, 1, 2)).toEqual([4]);
    expect(lookup([8], 4, 1, 3)).toEqual([]);
    expect(lookup([1, 2, 1], 4, 1, 3)).toEqual([2, 1]);
  });
});

describe('adaptive k', () => {
  const report = (
    k: number,
    acceptedEach: number,
    draftStepMs: number,
    verifyMs: number,
  ): IterationReport => ({
    k,
    proposed: [k],
    accepted: [Math.min(k, acceptedEach)],
    draftSteps: k,
    draftMs: k * draftStepMs,
    verifyMs,
  });

  /** Runs `policy` for `iterations`, each reported by `reportOf(k)`; returns the k of every iteration. */
  const drive = (policy: KPolicy, iterations: number, reportOf: (k: number) => IterationReport) =>
    Array.from({ length: iterations }, () => {
      const k = policy.next();
      policy.observe(reportOf(k));
      return k;
    });
  /** A draft step of 0.1 ms whose every token is accepted; verify 10 + 0.2k ms. */
  const alwaysRight = (k: number) => report(k, k, 0.1, 10 + k * 0.2);
  /** A draft step of 2 ms whose every token is rejected; verify 10 + k ms. */
  const alwaysWrong = (k: number) => report(k, 0, 2, 10 + k);

  /**
   * Feeds `policy` `iterations` reports with per-token acceptance 0.8 (a seeded coin) and the
   * given costs; `force` may override its k at iteration i. Returns the k of every iteration.
   */
  function replay(
    policy: KPolicy,
    iterations: number,
    seed: number,
    draftMs: (k: number) => number,
    verifyMs: (k: number) => number,
    force: (i: number) => number | undefined = () => undefined,
  ): number[] {
    let state = seed;
    const coin = () => {
      state = (state * 16807) % 2147483647;
      return state / 2147483647;
    };
    return Array.from({ length: iterations }, (_, i) => {
      const k = force(i) ?? policy.next();
      let accepted = 0;
      while (accepted < k && coin() < 0.8) accepted++;
      policy.observe({
        k,
        proposed: [k],
        accepted: [accepted],
        draftSteps: k,
        draftMs: draftMs(k),
        verifyMs: verifyMs(k),
      });
      return k;
    });
  }

  test('expected tokens per iteration is the truncated geometric mean', () => {
    expect(expectedTokens(0, 5)).toBe(1);
    expect(expectedTokens(1, 5)).toBe(6);
    expect(expectedTokens(0.5, 2)).toBeCloseTo(1 + 0.5 + 0.25, 12);
  });

  test('a cheap, always-right draft drives k to its maximum', () => {
    const policy = adaptiveK({ maxK: 8, exploreEvery: 1000 });
    drive(policy, 40, alwaysRight);
    expect(policy.next()).toBe(8);
  });

  test('a draft that is always wrong drives k to its minimum: plain steps, or 1 when minK is 1', () => {
    for (const [minK, want] of [
      [undefined, 0],
      [1, 1],
    ] as const) {
      const policy = adaptiveK({ minK, maxK: 8, exploreEvery: 1000 });
      drive(policy, 40, alwaysWrong);
      expect(policy.next()).toBe(want);
    }
  });

  test('plain steps win when the draft costs more than its accepted tokens save, and lose when it pays', () => {
    // α = 0.8, verify 10 + k ms, plain step 10 ms. A draft step of 12 ms: E(k)/t peaks at
    // k = 1 with 1.8/23 per ms, under a plain step's 1/10. A draft step of 1 ms: k = 4 gives 3.36/18.
    const run = (draftStepMs: number) =>
      replay(
        adaptiveK({ maxK: 8, exploreEvery: 16, smoothing: 0.05 }),
        600,
        7,
        (k) => k * draftStepMs,
        (k) => 10 + k,
      ).slice(-200);
    const costly = run(12);
    // Mostly plain steps, with k = 1 tried now and then to follow α.
    expect(costly.filter((k) => k === 0).length).toBeGreaterThan(180);
    expect(costly.filter((k) => k === 1).length).toBeGreaterThan(0);
    expect(costly.every((k) => k <= 1)).toBe(true);
    const cheap = run(1);
    expect(cheap.filter((k) => k === 0).length).toBe(0);
    expect(cheap.filter((k) => k >= 3 && k <= 6).length).toBeGreaterThan(180);
  });

  test('after a stretch of plain steps, a draft that turns good is drafted with again', () => {
    // Cheap draft (1 ms a step), verify 10 + k ms, plain step 10 ms. First every draft is
    // rejected (plain steps win), then every draft is accepted (k = 8 wins by far).
    const policy = adaptiveK({ maxK: 8 });
    const run = (iterations: number, right: boolean) =>
      Array.from({ length: iterations }, () => {
        const k = policy.next();
        policy.observe({
          k,
          proposed: [k],
          accepted: [right ? k : 0],
          draftSteps: k,
          draftMs: k,
          verifyMs: 10 + k,
        });
        return k;
      });
    const bad = run(60, false);
    expect(bad.slice(-20).filter((k) => k === 0).length).toBeGreaterThan(15);
    const good = run(120, true);
    expect(good.slice(-40).every((k) => k >= 7)).toBe(true);
  });

  test('minK out of range is refused by name', () => {
    expect(() => adaptiveK({ minK: -1 })).toThrow(/minK must be an integer in \[0, maxK = 8\], got -1/);
    expect(() => adaptiveK({ minK: 5, maxK: 4 })).toThrow(
      /minK must be an integer in \[0, maxK = 4\], got 5/,
    );
  });

  test('one slow first timing (a shader compile) does not hold k down for long', () => {
    // Verify is flat in k (a GPU), α = 1: k = 8 is best. The first pass at k = 8 is slow.
    const policy = adaptiveK({ maxK: 8, exploreEvery: 1000 });
    const chosen: number[] = [];
    for (let i = 0; i < 12; i++) {
      const k = policy.next();
      chosen.push(k);
      const slowFirst = k === 8 && !chosen.slice(0, -1).includes(8);
      policy.observe(report(k, k, 0.5, slowFirst ? 400 : 20));
    }
    // Probes 4, 2, 8; the line through 2 and 4 says 8 would be best, so 8 is timed again
    // and the second timing replaces the first.
    expect(chosen.slice(0, 4)).toEqual([4, 2, 8, 8]);
    expect(chosen.slice(-4)).toEqual([8, 8, 8, 8]);
  });

  test('a verify pass that grows in steps: the untimed neighbours of the best k are timed at once', () => {
    // Verify 10 ms up to 4 positions, 20 ms from 5 (wasm's passes grow in steps like this), draft
    // steps of 1 ms, α = 0.8. The warm-up times k = 4 (24 ms) and k = 2 (12 ms); the line through
    // them prices k = 3 at 18 ms, under k = 2's rate, though it costs 13 ms and is the best.
    const verifyMs = (k: number) => (k <= 3 ? 10 : 20);
    const rate = (k: number) => expectedTokens(0.8, k) / (k + verifyMs(k));
    expect([1, 2, 3, 4, 5, 6, 7, 8].reduce((b, k) => (rate(k) > rate(b) ? k : b))).toBe(3);
    for (const seed of [3, 5, 7]) {
      const policy = adaptiveK({ maxK: 8, exploreEvery: 1000 });
      const chosen = replay(policy, 30, seed, (k) => k, verifyMs);
      expect(chosen.slice(0, 2)).toEqual([4, 2]);
      expect(chosen.slice(2, 6)).toContain(3);
      expect(chosen.slice(-10).filter((k) => k === 3).length).toBeGreaterThanOrEqual(9);
    }
  });

  test("a policy started from another's state skips the probes and keeps its best k", () => {
    // The stepped verify pass above: k = 3 is best, and a fresh policy probes 4 and 2 first.
    const verifyMs = (k: number) => (k <= 3 ? 10 : 20);
    for (const seed of [3, 5, 7]) {
      const first = adaptiveK({ maxK: 8, exploreEvery: 1000 });
      replay(first, 40, seed, (k) => k, verifyMs);
      // Plain JSON, as a file would hold it.
      const state = JSON.parse(JSON.stringify(first.state())) as AdaptiveKState;
      expect(state.timings.map((t) => t.k)).toEqual(expect.arrayContaining([2, 3, 4]));
      const next = adaptiveK({ maxK: 8, exploreEvery: 1000, state });
      const chosen = replay(next, 30, seed + 1, (k) => k, verifyMs);
      expect(chosen[0]).toBe(3);
      expect(chosen.filter((k) => k === 3).length).toBeGreaterThanOrEqual(28);
      const fresh = replay(adaptiveK({ maxK: 8, exploreEvery: 1000 }), 30, seed + 1, (k) => k, verifyMs);
      expect(fresh.slice(0, 2)).toEqual([4, 2]);
    }
  });

  test('a restored state is only a start: a draft that turned useless is dropped within 30 iterations', () => {
    const good = adaptiveK({ maxK: 8, exploreEvery: 1000 });
    drive(good, 40, alwaysRight);
    expect(good.next()).toBe(8);
    const policy = adaptiveK({ maxK: 8, exploreEvery: 1000, state: good.state() });
    // Now every drafted token is rejected and draft steps cost 2 ms (as in the always-wrong test
    // above; a fresh policy gets to plain steps after 17).
    const chosen = drive(policy, 40, alwaysWrong);
    expect(chosen[0]).toBe(8);
    expect(chosen.indexOf(0)).toBeGreaterThan(0);
    expect(chosen.indexOf(0)).toBeLessThanOrEqual(30);
    expect(chosen.slice(-5)).toEqual([0, 0, 0, 0, 0]);
  });

  test('timings for k outside [minK, maxK] are left out of a restored state', () => {
    const state: AdaptiveKState = {
      version: 1,
      accepted: 9,
      rejected: 1,
      timings: [
        { k: 2, iterationMs: 12, verifyMs: 10, timed: 5 },
        { k: 12, iterationMs: 13, verifyMs: 10, timed: 5 },
        { k: 16, iterationMs: 14, verifyMs: 10, timed: 5 },
      ],
    };
    const policy = adaptiveK({ maxK: 4, state });
    expect(policy.state().timings.map((t) => t.k)).toEqual([2]);
    expect(policy.next()).toBeLessThanOrEqual(4);
  });

  test('a malformed state is refused, naming the field', () => {
    const ok: AdaptiveKState = {
      version: 1,
      accepted: 3,
      rejected: 1,
      timings: [{ k: 2, iterationMs: 12, verifyMs: 10, timed: 2 }],
    };
    const cases: [unknown, RegExp][] = [
      [null, /adaptiveK state: must be an object, got null/],
      [{ ...ok, version: 2 }, /version must be 1, got 2/],
      [{ ...ok, accepted: -1 }, /accepted must be a finite number >= 0, got -1/],
      [{ ...ok, rejected: 'x' }, /rejected must be a finite number >= 0, got "x"/],
      [{ ...ok, accepted: 0, rejected: 0 }, /accepted \+ rejected must be > 0/],
      [{ ...ok, timings: {} }, /timings must be an array/],
      [{ ...ok, timings: [null] }, /timings\[0\] must be an object/],
      [
        { ...ok, timings: [{ ...ok.timings[0], k: 1.5 }] },
        /timings\[0\]\.k must be an integer in \[0, 64\], got 1.5/,
      ],
      [{ ...ok, timings: [ok.timings[0], ok.timings[0]] }, /timings\[1\]: k = 2 appears twice/],
      [
        { ...ok, timings: [{ ...ok.timings[0], iterationMs: 0 }] },
        /timings\[0\]\.iterationMs must be a finite number > 0, got 0/,
      ],
      [
        { ...ok, timings: [{ ...ok.timings[0], verifyMs: null }] },
        /timings\[0\]\.verifyMs must be a finite number > 0, got null/,
      ],
      [
        { ...ok, timings: [{ ...ok.timings[0], timed: 0 }] },
        /timings\[0\]\.timed must be an integer >= 1, got 0/,
      ],
    ];
    for (const [state, message] of cases) {
      expect(() => adaptiveK({ state: state as AdaptiveKState })).toThrow(message);
    }
    expect(adaptiveK({ state: ok }).state().timings).toEqual(ok.timings);
  });

  /**
   * Runs `policy` for 3,000 iterations with per-token acceptance 0.8 (a seeded coin) and iterations
   * costing draftMs(k) + verifyMs(k); the first `sweep` iterations try k = 1…8 in turn. Returns its
   * next k and the k that truly maximises E(k)/t_iteration(k).
   */
  function settle(
    seed: number,
    draftMs: (k: number) => number,
    verifyMs: (k: number) => number,
    sweep = 0,
  ): { chosen: number; best: number } {
    const policy = adaptiveK({ maxK: 8, exploreEvery: 1000, smoothing: 0.02 });
    replay(policy, 3000, seed, draftMs, verifyMs, (i) => (i < sweep ? 1 + (i % 8) : undefined));
    const rate = (k: number) => expectedTokens(0.8, k) / (draftMs(k) + verifyMs(k));
    const best = [1, 2, 3, 4, 5, 6, 7, 8].reduce((b, k) => (rate(k) > rate(b) ? k : b));
    return { chosen: policy.next(), best };
  }

  test('a proposal with a fixed cost (catch-up, one read) and cheap chained steps: k is chosen on the whole iteration', () => {
    // A proposal costs 6 + k ms, verify 10 + k/2 ms: the best k is 6. The previous model charged
    // k × the mean time per draft step ((6 + k)/k ms, largest at small k) and settled at k = 1.
    const { chosen, best } = settle(
      5,
      (k) => 6 + k,
      (k) => 10 + k / 2,
    );
    expect(best).toBe(6);
    expect(Math.abs(chosen - best)).toBeLessThanOrEqual(1);
  });

  test('the choice maximises E(k)/t_iteration(k) for the observed α', () => {
    // Draft steps of 3 ms, verify 10 + k ms, every k tried first.
    const { chosen, best } = settle(
      3,
      (k) => 3 * k,
      (k) => 10 + k,
      16,
    );
    expect(Math.abs(chosen - best)).toBeLessThanOrEqual(1);
  });
});
