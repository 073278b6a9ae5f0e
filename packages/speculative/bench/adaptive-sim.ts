/**
 * Adaptive k replayed without a model: 16 calls of 96 tokens, per-token
 * acceptance α from a seeded coin, and iteration costs from measured curves
 * (ms; wasm: 2-core Xeon, docs/bench/2026-12-02d/speculative-wasm-final;
 * h200: ...-16p-4-adaptive0; pair-wasm: the shipped pair, docs/bench/2026-12-06), ±2.5% noise; 8 seeds. Prints each policy's
 * tokens per second as a fraction of the best fixed k's (k = 0: plain
 * steps), averaged over the seeds. Run:
 * node --conditions=@specstream/source --import tsx packages/speculative/bench/adaptive-sim.ts
 */
import { adaptiveK, fixedK, type KPolicy } from '../src/index.js';

interface Curve {
  draftStep: number;
  /** A proposal's first step after a full acceptance reads two tokens. */
  catchUpTwo: number;
  /** Verify pass over k + 1 positions, for k = 0…8 (k = 0: a plain step). */
  verify: number[];
}

const CURVES: Record<string, Curve> = {
  wasm: { draftStep: 9.8, catchUpTwo: 10.6, verify: [26.7, 36, 37.7, 39, 46, 49.7, 50.7, 52.5, 62] },
  h200: { draftStep: 1.9, catchUpTwo: 1.9, verify: [7.8, 7.9, 8.0, 8.3, 8.6, 9.0, 9.5, 10.0, 10.5] },
  // The shipped pair on a 2-core EPYC (2026-12-06): a plain step and the 4-position verify pass
  // timed inside the loop (3.3, 5.0 ms), the other widths from extendStep timed alone.
  'pair-wasm': { draftStep: 0.63, catchUpTwo: 0.7, verify: [3.3, 5.9, 4.8, 5.0, 6.3, 6.9, 7.2, 7.5, 8.9] },
  // The same with the draft in q4 (the CLI's default under f32 weights): a draft step timed alone
  // at 0.36 ms against 1.29 ms in f32 (2026-12-06, second session).
  'pair-wasm-q4': { draftStep: 0.36, catchUpTwo: 0.4, verify: [3.3, 5.9, 4.8, 5.0, 6.3, 6.9, 7.2, 7.5, 8.9] },
};
const plainOnly: KPolicy = { maxK: 0, next: () => 0, observe() {} };

function tokensPerSecond(
  curve: Curve,
  makePolicy: () => KPolicy,
  alpha: number,
  reuse: boolean,
  start: number,
): number {
  let seed = start;
  const coin = () => {
    seed = (seed * 16807) % 2147483647;
    return seed / 2147483647;
  };
  let tokens = 0;
  let ms = 0;
  let policy = makePolicy();
  for (let call = 0; call < 16; call++) {
    if (!reuse) policy = makePolicy();
    let made = 1;
    let fullLast = false;
    while (made < 96) {
      const k = Math.min(policy.next(), 96 - made - 1);
      let accepted = 0;
      while (accepted < k && coin() < alpha) accepted++;
      const noise = () => 1 + 0.05 * (coin() - 0.5);
      const draftMs =
        k === 0 ? 0 : ((fullLast ? curve.catchUpTwo : curve.draftStep) + (k - 1) * curve.draftStep) * noise();
      const verifyMs = curve.verify[k] * noise();
      fullLast = k > 0 && accepted === k;
      policy.observe({ k, proposed: [k], accepted: [accepted], draftSteps: k, draftMs, verifyMs });
      made += accepted + 1;
      tokens += accepted + 1;
      ms += draftMs + verifyMs;
    }
  }
  return (1000 * tokens) / ms;
}

const SEEDS = [5, 11, 17, 23, 29, 31, 37, 41];
/** Mean over the seeds of a policy's tokens per second over the best fixed k's (fixed k use the same seed). */
function share(curve: Curve, alpha: number, makePolicy: () => KPolicy, reuse: boolean): number {
  const ratios = SEEDS.map((seed) => {
    const fixed = [0, 1, 2, 3, 4, 5, 6, 7, 8].map((k) =>
      tokensPerSecond(curve, () => (k === 0 ? plainOnly : fixedK(k)), alpha, false, seed),
    );
    return tokensPerSecond(curve, makePolicy, alpha, reuse, seed) / Math.max(...fixed);
  });
  return ratios.reduce((a, b) => a + b, 0) / ratios.length;
}

for (const alpha of [0.8, 0.72, 0.5, 0.2]) {
  for (const [name, curve] of Object.entries(CURVES)) {
    const fixed = [0, 1, 2, 3, 4, 5, 6, 7, 8].map((k) =>
      tokensPerSecond(curve, () => (k === 0 ? plainOnly : fixedK(k)), alpha, false, SEEDS[0]),
    );
    const best = Math.max(...fixed);
    const f = (p: () => KPolicy, reuse: boolean) => share(curve, alpha, p, reuse).toFixed(3);
    console.log(
      `${name} α ${alpha}: best fixed k ${fixed.indexOf(best)} (plain steps ${(fixed[0] / best).toFixed(2)}); adaptive ${f(() => adaptiveK(), false)}, minK 1 ${f(() => adaptiveK({ minK: 1 }), false)}, one policy for all calls ${f(() => adaptiveK(), true)}`,
    );
  }
}
