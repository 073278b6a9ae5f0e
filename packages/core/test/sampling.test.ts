import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, NonFiniteError } from '../src/errors.js';
import {
  applyRepetitionPenalty,
  argmax,
  createRng,
  createSampler,
  greedyToken,
  processLogits,
  type Rng,
  type SamplingOptions,
  sampleFrom,
  validateSampling,
} from '../src/sampling/index.js';

// Every expected value below is computed here from the definitions, in float64,
// independently of the module under test.

/** exp(l/T) / Σ exp(l/T); logits in these tests are small, so no shift is needed. */
function softmax(logits: readonly number[], temperature = 1): number[] {
  const weights = logits.map((l) => Math.exp(l / temperature));
  const sum = weights.reduce((a, b) => a + b, 0);
  return weights.map((w) => w / sum);
}

/** p restricted to `keep` and rescaled to sum to 1. */
function renormalizedOver(p: readonly number[], keep: readonly number[]): number[] {
  const mass = keep.reduce((sum, i) => sum + p[i], 0);
  return p.map((value, i) => (keep.includes(i) ? value / mass : 0));
}

function expectDistribution(actual: Float32Array, expected: readonly number[], tolerance = 1e-6): void {
  expect(actual.length).toBe(expected.length);
  // One assertion for the whole row (150k separate expect calls would dominate the run time).
  const worst = expected.findIndex((value, i) => !(Math.abs(actual[i] - value) <= tolerance));
  const where = worst < 0 ? '' : `index ${worst}: got ${actual[worst]}, expected ${expected[worst]}`;
  expect(where).toBe('');
}

const f32 = (values: readonly number[]) => Float32Array.from(values);
const logs = (probs: readonly number[]) => f32(probs.map(Math.log));

/** Pearson's statistic Σ (observed − expected)² / expected. */
function chiSquare(counts: readonly number[], probs: readonly number[]): number {
  const draws = counts.reduce((a, b) => a + b, 0);
  return counts.reduce(
    (sum, observed, i) => sum + (observed - draws * probs[i]) ** 2 / (draws * probs[i]),
    0,
  );
}

function histogram(draw: () => number, draws: number, categories: number): number[] {
  const counts = new Array<number>(categories).fill(0);
  for (let n = 0; n < draws; n++) counts[draw()]++;
  return counts;
}

/** Chi-square critical values at p = 0.001. */
const CRITICAL_5_DOF = 20.52;
const CRITICAL_2_DOF = 13.82;

describe('validateSampling', () => {
  it('fills documented defaults (greedy, no filters) and returns a new object', () => {
    const options = {};
    const normalized = validateSampling(options);
    expect(normalized).toEqual({
      temperature: 0,
      topK: 0,
      topP: 1,
      minP: 0,
      repetitionPenalty: 1,
      seed: undefined,
    });
    expect(normalized).not.toBe(options);
    expect(options).toEqual({});
  });

  it('accepts the edges of each valid range', () => {
    expect(() => validateSampling({ temperature: 0, topK: 0, topP: 1, minP: 0 })).not.toThrow();
    expect(() => validateSampling({ temperature: 1e-3, topK: 1, topP: 1e-9, minP: 0.999 })).not.toThrow();
    expect(() => validateSampling({ repetitionPenalty: 0.5, seed: -3 })).not.toThrow();
  });

  const bad: Array<[string, number]> = [
    ['temperature', -0.5],
    ['temperature', Number.NaN],
    ['temperature', Number.POSITIVE_INFINITY],
    ['topK', 2.5],
    ['topK', -1],
    ['topK', Number.NaN],
    ['topP', 0],
    ['topP', -0.2],
    ['topP', 1.5],
    ['topP', Number.NaN],
    ['minP', 1],
    ['minP', -0.1],
    ['minP', Number.NaN],
    ['repetitionPenalty', 0],
    ['repetitionPenalty', -1],
    ['repetitionPenalty', Number.NaN],
    ['seed', Number.NaN],
  ];
  it.each(bad)('rejects %s = %s, naming the field and the value', (field, value) => {
    const call = () => validateSampling({ [field]: value });
    expect(call).toThrow(InvalidArgumentError);
    expect(call).toThrow(field);
    expect(call).toThrow(String(value));
  });

  it('is applied by processLogits and createSampler too', () => {
    expect(() => processLogits(f32([0, 1]), { topP: 0 })).toThrow(InvalidArgumentError);
    expect(() => createSampler({ temperature: -1 })).toThrow(/temperature/);
  });
});

describe('createRng', () => {
  it('gives the same stream for the same seed, values in [0, 1)', () => {
    const a = createRng(42);
    const b = createRng(42);
    const streamA = Array.from({ length: 1000 }, a);
    const streamB = Array.from({ length: 1000 }, b);
    expect(streamA).toEqual(streamB);
    for (const u of streamA) {
      expect(u).toBeGreaterThanOrEqual(0);
      expect(u).toBeLessThan(1);
    }
  });

  it('gives different streams for different seeds, and for two unseeded generators', () => {
    const first = (rng: Rng) => Array.from({ length: 20 }, rng);
    expect(first(createRng(1))).not.toEqual(first(createRng(2)));
    expect(first(createRng())).not.toEqual(first(createRng()));
  });

  it('rejects a non-finite seed', () => {
    expect(() => createRng(Number.NaN)).toThrow(InvalidArgumentError);
  });
});

describe('argmax', () => {
  it('returns the index of the largest value, ties to the lowest index', () => {
    expect(argmax([1, 5, 2])).toBe(1);
    expect(argmax([1, 5, 5, 2])).toBe(1);
    expect(argmax([-Infinity, -3, -3])).toBe(1);
    expect(() => argmax([])).toThrow(InvalidArgumentError);
  });
});

describe('greedyToken', () => {
  it('is the argmax, ties to the lowest index, masks skipped', () => {
    expect(greedyToken(f32([1, 5, 2]))).toBe(1);
    expect(greedyToken(f32([1, 5, 5, 2]))).toBe(1);
    expect(greedyToken(f32([-Infinity, -3, -3]))).toBe(1);
    expect(greedyToken(f32([-Infinity, -Infinity, -1e30]))).toBe(2);
    // A long random row against a plain scan written here.
    const row = f32(
      Array.from(
        { length: 5000 },
        (_, i) => Math.sin(i * 12.9898) * 43758.5453 - Math.floor(Math.sin(i * 12.9898) * 43758.5453),
      ),
    );
    let best = 0;
    for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
    expect(greedyToken(row)).toBe(best);
  });

  it('refuses what sampling refuses, with the same errors', () => {
    for (const bad of [
      [0, 1, Number.NaN, Number.NaN],
      [Number.NaN, 1],
      [0, Number.POSITIVE_INFINITY, Number.NaN],
      [3, 1, Number.POSITIVE_INFINITY],
      [Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY],
    ]) {
      const expected = (() => {
        try {
          processLogits(f32(bad), {});
        } catch (error) {
          return error as Error;
        }
      })();
      expect(expected).toBeInstanceOf(NonFiniteError);
      expect(() => greedyToken(f32(bad))).toThrow(expected?.message);
    }
    expect(() => greedyToken(f32([-Infinity, -Infinity]))).toThrow(InvalidArgumentError);
    expect(() => greedyToken(new Float32Array(0))).toThrow(InvalidArgumentError);
  });
});

describe('applyRepetitionPenalty', () => {
  it('divides positive logits, multiplies negative ones, once per distinct id', () => {
    const logits = f32([2, -2, 0.5, -1, 3, 0]);
    const before = logits.slice();
    // Ids 0 and 1 appear twice: applying the rule twice would give 0.5 and -8.
    const history = [0, 1, 1, 0, 3, 5];
    const penalized = applyRepetitionPenalty(logits, history, 2);
    expect(Array.from(penalized)).toEqual([2 / 2, -2 * 2, 0.5, -1 * 2, 3, 0]);
    expect(logits).toEqual(before);
    expect(history).toEqual([0, 1, 1, 0, 3, 5]);
  });

  it('with a penalty below 1 makes seen tokens more likely by the same rule', () => {
    expect(Array.from(applyRepetitionPenalty(f32([2, -2]), [0, 1], 0.5))).toEqual([4, -1]);
  });

  it('rejects ids outside the vocabulary and bad penalties', () => {
    expect(() => applyRepetitionPenalty(f32([0, 0]), [2], 1.2)).toThrow(/history\[0\]/);
    expect(() => applyRepetitionPenalty(f32([0, 0]), [0, 1.5], 1.2)).toThrow(/history\[1\]/);
    expect(() => applyRepetitionPenalty(f32([0, 0]), [0], 0)).toThrow(/repetitionPenalty/);
  });
});

describe('processLogits: temperature', () => {
  const logits = [1.2, -0.7, 3.1, 0, 2.2];

  it.each([0.25, 0.5, 1, 2, 7])('at T=%s equals exp(l/T)/Σ exp(l/T)', (temperature) => {
    const probs = processLogits(f32(logits), { temperature });
    expectDistribution(probs, softmax(logits, temperature));
  });

  it('is stable for large logits (no overflow)', () => {
    // exp(1000) overflows; the closed form after dividing through by exp(1000):
    const probs = processLogits(f32([1000, 999]), { temperature: 1 });
    expectDistribution(probs, [1 / (1 + Math.exp(-1)), Math.exp(-1) / (1 + Math.exp(-1))]);
  });

  it('gives -Infinity (masked) tokens zero probability', () => {
    const probs = processLogits(f32([1, -Infinity, 2]), { temperature: 1 });
    const finite = softmax([1, 2]);
    expectDistribution(probs, [finite[0], 0, finite[1]]);
  });
});

describe('processLogits: greedy', () => {
  it('is the one-hot of the argmax when temperature is 0 or undefined, whatever the filters', () => {
    const logits = f32([0.3, 2.5, -1, 2.4]);
    expect(Array.from(processLogits(logits, {}))).toEqual([0, 1, 0, 0]);
    expect(Array.from(processLogits(logits, { temperature: 0, topK: 3, topP: 0.5, minP: 0.2 }))).toEqual([
      0, 1, 0, 0,
    ]);
  });

  it('breaks ties toward the lowest id', () => {
    expect(Array.from(processLogits(f32([1, 7, 3, 7]), {}))).toEqual([0, 1, 0, 0]);
  });

  it('takes the argmax after the repetition penalty', () => {
    // 3 / 2 = 1.5 < 2.5: the penalty moves the winner from id 0 to id 1.
    const probs = processLogits(f32([3, 2.5]), { repetitionPenalty: 2 }, [0]);
    expect(Array.from(probs)).toEqual([0, 1]);
  });
});

describe('processLogits: top-k', () => {
  it('keeps exactly the k largest logits, renormalized', () => {
    const logits = [0.1, 2.0, -1.0, 1.5, 0.7, 3.0, -0.2];
    const temperature = 0.8;
    for (let k = 1; k <= logits.length; k++) {
      const largest = logits
        .map((value, id) => ({ value, id }))
        .sort((a, b) => b.value - a.value)
        .slice(0, k)
        .map(({ id }) => id);
      const probs = processLogits(f32(logits), { temperature, topK: k });
      expectDistribution(probs, renormalizedOver(softmax(logits, temperature), largest));
      expect(probs.filter((p) => p > 0).length).toBe(k);
    }
  });

  it('breaks ties toward lower ids and never keeps masked tokens', () => {
    // Three tokens tie at 3; with k = 2 the two lowest ids (1, 2) stay.
    expectDistribution(processLogits(f32([1, 3, 3, 3, 0]), { temperature: 1, topK: 2 }), [0, 0.5, 0.5, 0, 0]);
    // Only two unmasked tokens: k = 3 keeps both and nothing masked.
    const probs = processLogits(f32([-Infinity, 1, -Infinity, 0]), { temperature: 1, topK: 3 });
    const kept = softmax([1, 0]);
    expectDistribution(probs, [0, kept[0], 0, kept[1]]);
  });
});

describe('processLogits: top-p', () => {
  const p = [0.5, 0.3, 0.15, 0.05];

  it('keeps the minimal prefix whose mass reaches topP (boundary cases)', () => {
    // 0.5 + 0.3 = 0.8 reaches 0.8 exactly: two tokens.
    expectDistribution(processLogits(logs(p), { temperature: 1, topP: 0.8 }), renormalizedOver(p, [0, 1]));
    // 0.8 falls short of 0.81: the third token is needed (0.95).
    expectDistribution(
      processLogits(logs(p), { temperature: 1, topP: 0.81 }),
      renormalizedOver(p, [0, 1, 2]),
    );
    // 0.5 alone reaches 0.5.
    expectDistribution(processLogits(logs(p), { temperature: 1, topP: 0.5 }), [1, 0, 0, 0]);
    // topP 1 keeps everything.
    expectDistribution(processLogits(logs(p), { temperature: 1, topP: 1 }), p);
  });

  it('ranks by probability, not by position', () => {
    const shuffled = [0.15, 0.05, 0.5, 0.3];
    const probs = processLogits(logs(shuffled), { temperature: 1, topP: 0.8 });
    expectDistribution(probs, renormalizedOver(shuffled, [2, 3]));
  });

  it('always keeps at least the most probable token', () => {
    expectDistribution(processLogits(logs(p), { temperature: 1, topP: 1e-9 }), [1, 0, 0, 0]);
  });

  it('is computed on the tempered distribution', () => {
    // T=1: 0.4 + 0.3 = 0.7 ≥ 0.65 keeps two. T=2: p ∝ √p = [0.325, 0.282, 0.230, 0.163]:
    // 0.607 < 0.65, so a third token is needed.
    const q = [0.4, 0.3, 0.2, 0.1];
    expectDistribution(processLogits(logs(q), { temperature: 1, topP: 0.65 }), renormalizedOver(q, [0, 1]));
    const tempered = softmax(q.map(Math.log), 2);
    expectDistribution(
      processLogits(logs(q), { temperature: 2, topP: 0.65 }),
      renormalizedOver(tempered, [0, 1, 2]),
    );
  });

  it('applies after top-k, to the renormalized top-k distribution', () => {
    // top-2 of [0.4, 0.3, 0.2, 0.1] renormalizes to [4/7, 3/7]; 4/7 ≥ 0.5 alone.
    // (On the original distribution 0.4 < 0.5 would have needed two tokens.)
    expectDistribution(
      processLogits(logs([0.4, 0.3, 0.2, 0.1]), { temperature: 1, topK: 2, topP: 0.5 }),
      [1, 0, 0, 0],
    );
  });

  it('breaks ties toward lower ids across a large flat tail', () => {
    // One token at logit 10 among V-1 at 0: p_top = e^10 / Z, every other p = 1 / Z.
    // topP is placed half a tail token past p_top + n·p_tail, so exactly n + 1 tail tokens
    // (the lowest ids) are needed.
    const vocab = 150_000;
    const top = 777;
    const logits = new Float32Array(vocab);
    logits[top] = 10;
    const z = Math.exp(10) + (vocab - 1);
    const pTop = Math.exp(10) / z;
    const pTail = 1 / z;
    const n = 60_000;
    const topP = pTop + (n + 0.5) * pTail;
    const probs = processLogits(logits, { temperature: 1, topP });
    const tailKept = n + 1;
    const mass = pTop + tailKept * pTail;
    // Tail ids in order, skipping the top token: 0..776, 778..tailKept.
    const lastTailId = tailKept; // one id is skipped (777), so the run ends at tailKept.
    expect(probs[top]).toBeCloseTo(pTop / mass, 6);
    expect(probs[0]).toBeCloseTo(pTail / mass, 9);
    expect(probs[lastTailId]).toBeCloseTo(pTail / mass, 9);
    expect(probs[lastTailId + 1]).toBe(0);
    expect(probs.filter((value) => value > 0).length).toBe(tailKept + 1);
  });
});

describe('processLogits: min-p', () => {
  const p = [0.5, 0.3, 0.15, 0.05];

  it('drops tokens below minP × the top probability, renormalized', () => {
    // threshold 0.2 × 0.5 = 0.1: drops 0.05 only.
    expectDistribution(processLogits(logs(p), { temperature: 1, minP: 0.2 }), renormalizedOver(p, [0, 1, 2]));
    // threshold 0.31 × 0.5 = 0.155: drops 0.15 and 0.05.
    expectDistribution(processLogits(logs(p), { temperature: 1, minP: 0.31 }), renormalizedOver(p, [0, 1]));
  });

  it('comes after top-p: top-p sees the distribution before min-p', () => {
    // q = [0.4, 0.3, 0.2, 0.1], topP 0.75 needs 0.4 + 0.3 + 0.2 = 0.9 (three tokens);
    // min-p 0.3 (threshold 0.12) then keeps all three. Done the other way round, min-p
    // would first renormalize to [0.444, 0.333, 0.222] and top-p would stop at two.
    const q = [0.4, 0.3, 0.2, 0.1];
    expectDistribution(
      processLogits(logs(q), { temperature: 1, topP: 0.75, minP: 0.3 }),
      renormalizedOver(q, [0, 1, 2]),
    );
  });
});

describe('processLogits: repetition penalty', () => {
  it('is applied before temperature, to positive and negative logits', () => {
    // [2, 1, -1] with ids 0 and 2 seen (0 twice) and penalty 2 → [1, 1, -2].
    const probs = processLogits(f32([2, 1, -1]), { temperature: 0.7, repetitionPenalty: 2 }, [0, 2, 0]);
    expectDistribution(probs, softmax([1, 1, -2], 0.7));
  });

  it('does nothing without history or with penalty 1', () => {
    const logits = [0.5, -0.5, 1.5];
    expectDistribution(processLogits(f32(logits), { temperature: 1, repetitionPenalty: 3 }), softmax(logits));
    expectDistribution(processLogits(f32(logits), { temperature: 1 }, [0, 1]), softmax(logits));
  });
});

describe('processLogits: bad logits', () => {
  it('throws NonFiniteError naming the position of the first NaN or +Infinity', () => {
    const nan = () => processLogits(f32([0, 1, Number.NaN, Number.NaN]), { temperature: 1 });
    expect(nan).toThrow(NonFiniteError);
    expect(nan).toThrow(/logits\[2\] is NaN/);
    const inf = () => processLogits(f32([0, Number.POSITIVE_INFINITY, Number.NaN]), {});
    expect(inf).toThrow(NonFiniteError);
    expect(inf).toThrow(/logits\[1\] is Infinity/);
  });

  it('rejects a row with nothing left to choose', () => {
    expect(() => processLogits(f32([-Infinity, -Infinity]), {})).toThrow(InvalidArgumentError);
    expect(() => processLogits(new Float32Array(0), {})).toThrow(InvalidArgumentError);
  });

  it('does not mutate its inputs', () => {
    const logits = f32([2, -1, 0.5, 3]);
    const logitsBefore = logits.slice();
    const history = [0, 1, 1];
    const options = { temperature: 0.9, topK: 3, topP: 0.9, minP: 0.05, repetitionPenalty: 1.3 };
    const optionsBefore = { ...options };
    processLogits(logits, options, history);
    expect(logits).toEqual(logitsBefore);
    expect(history).toEqual([0, 1, 1]);
    expect(options).toEqual(optionsBefore);
  });
});

describe('processLogits: large vocabulary against a full-sort reference', () => {
  // Reference pipeline written the slow, obvious way: full softmax, full sort
  // (ties to the lower id), prefix sums. The ranking does not depend on T, so
  // it is sorted once per row.
  function ranking(logits: Float32Array): number[] {
    return Array.from(logits, (_, id) => id).sort((a, b) => logits[b] - logits[a] || a - b);
  }

  function reference(
    logits: Float32Array,
    order: number[],
    options: Required<Omit<SamplingOptions, 'seed' | 'repetitionPenalty'>>,
  ): number[] {
    const { temperature, topK, topP, minP } = options;
    const max = logits[order[0]];
    const weights = Array.from(logits, (l) => Math.exp((l - max) / temperature));
    const topIds = topK > 0 ? order.slice(0, topK) : order;
    const topMass = topIds.reduce((sum, id) => sum + weights[id], 0);
    const kept: number[] = [];
    let cumulative = 0;
    for (const id of topIds) {
      kept.push(id);
      cumulative += weights[id] / topMass;
      // The documented tolerance: mass within 1e-6 of topP counts as reaching it.
      if (cumulative >= topP - 1e-6) break;
    }
    const final = kept.filter((id) => weights[id] >= minP * weights[kept[0]]);
    const mass = final.reduce((sum, id) => sum + weights[id], 0);
    const out = new Array<number>(logits.length).fill(0);
    for (const id of final) out[id] = weights[id] / mass;
    return out;
  }

  const vocab = 150_000;
  const rng = createRng(99);
  // Roughly normal logits (sum of uniforms): "spread" gives a nucleus of tens of
  // thousands of tokens, "peaked" (like a confident LM head) one of hundreds.
  const rows = {
    spread: Float32Array.from({ length: vocab }, () => 3 * (rng() + rng() + rng() + rng() - 2)),
    peaked: Float32Array.from({ length: vocab }, () => 12 * (rng() + rng() + rng() + rng() - 2)),
  };
  const orders = { spread: ranking(rows.spread), peaked: ranking(rows.peaked) };

  it.each([
    ['spread', 1, 50, 1, 0],
    ['spread', 1, 50, 0.9, 0],
    ['spread', 1, 0, 0.95, 0],
    ['spread', 0.6, 0, 0.9, 0.01],
    ['spread', 1, 1000, 1, 0.05],
    ['peaked', 1, 0, 0.9, 0],
    ['peaked', 1.5, 0, 0.99, 0],
    ['peaked', 1, 200, 0.8, 0.001],
  ] as const)('%s row, T %s, topK %s, topP %s, minP %s', (row, temperature, topK, topP, minP) => {
    const options = { temperature, topK, topP, minP };
    const probs = processLogits(rows[row], options);
    expectDistribution(probs, reference(rows[row], orders[row], options), 1e-7);
  });
});

describe('sampleFrom', () => {
  const constant =
    (u: number): Rng =>
    () =>
      u;

  it('inverts the CDF at the closed-form boundaries and never draws zero-probability tokens', () => {
    const probs = f32([0, 0.25, 0.75, 0]);
    expect(sampleFrom(probs, constant(0))).toBe(1);
    expect(sampleFrom(probs, constant(0.2499))).toBe(1);
    expect(sampleFrom(probs, constant(0.2501))).toBe(2);
    // Intervals are half-open, [0, 0.25) and [0.25, 1): a draw exactly on the boundary goes up.
    expect(sampleFrom(probs, constant(0.25))).toBe(2);
    expect(sampleFrom(probs, constant(1 - 2 ** -32))).toBe(2);
  });

  it('scales by the total, so unnormalized weights work', () => {
    // Weights [1, 3]: the boundary is at u = 1/4.
    expect(sampleFrom(f32([1, 3]), constant(0.24))).toBe(0);
    expect(sampleFrom(f32([1, 3]), constant(0.26))).toBe(1);
  });

  it('rejects negative, non-finite or massless input', () => {
    expect(() => sampleFrom(f32([0.5, -0.1]), constant(0))).toThrow(InvalidArgumentError);
    expect(() => sampleFrom(f32([0.5, Number.NaN]), constant(0))).toThrow(NonFiniteError);
    expect(() => sampleFrom(f32([0, 0]), constant(0))).toThrow(InvalidArgumentError);
  });

  describe('chi-square goodness of fit (20,000 draws, 6 categories, p = 0.001)', () => {
    const probs = [0.05, 0.1, 0.15, 0.2, 0.22, 0.28];
    const draws = 20_000;
    const rng = createRng(2024);
    const counts = histogram(() => sampleFrom(f32(probs), rng), draws, probs.length);

    it('does not reject the distribution it was given', () => {
      expect(counts.reduce((a, b) => a + b, 0)).toBe(draws);
      expect(chiSquare(counts, probs)).toBeLessThan(CRITICAL_5_DOF);
    });

    it('rejects a deliberately wrong distribution (the test has power)', () => {
      // Only 0.02 of mass moved between the first two categories.
      const wrong = [0.07, 0.08, 0.15, 0.2, 0.22, 0.28];
      expect(chiSquare(counts, wrong)).toBeGreaterThan(CRITICAL_5_DOF);
      // And a sampler with a classic off-by-one (returns the next category) is caught.
      const shifted = histogram(() => (sampleFrom(f32(probs), rng) + 1) % probs.length, draws, probs.length);
      expect(chiSquare(shifted, probs)).toBeGreaterThan(CRITICAL_5_DOF);
    });
  });
});

describe('createSampler', () => {
  it('draws from the tempered softmax (chi-square, p = 0.001)', () => {
    const logits = [0.2, -1.1, 1.4, 0.9, -0.3, 0.6];
    const temperature = 0.7;
    const sampler = createSampler({ temperature }, 11);
    const counts = histogram(() => sampler.sample(f32(logits)), 20_000, logits.length);
    expect(chiSquare(counts, softmax(logits, temperature))).toBeLessThan(CRITICAL_5_DOF);
  });

  it('with top-k draws only the kept tokens, in renormalized proportions', () => {
    const logits = [0.2, -1.1, 1.4, 0.9, -0.3, 0.6];
    const sampler = createSampler({ temperature: 1, topK: 3 }, 12);
    const counts = histogram(() => sampler.sample(f32(logits)), 20_000, logits.length);
    const kept = [2, 3, 5];
    for (const id of [0, 1, 4]) expect(counts[id]).toBe(0);
    const expected = renormalizedOver(softmax(logits), kept);
    const keptCounts = kept.map((id) => counts[id]);
    expect(
      chiSquare(
        keptCounts,
        kept.map((id) => expected[id]),
      ),
    ).toBeLessThan(CRITICAL_2_DOF);
  });

  it('is reproducible for a seed and differs between seeds', () => {
    const logits = new Float32Array(50); // uniform over 50 tokens
    const run = (seed: number) => {
      const sampler = createSampler({ temperature: 1 }, seed);
      return Array.from({ length: 200 }, () => sampler.sample(logits));
    };
    expect(run(5)).toEqual(run(5));
    expect(run(5)).not.toEqual(run(6));
    // The seed may also come in the options; the explicit argument is the same seed.
    const fromOptions = createSampler({ temperature: 1, seed: 5 });
    expect(Array.from({ length: 200 }, () => fromOptions.sample(logits))).toEqual(run(5));
  });

  it('exposes normalized options, its rng, and probs equal to processLogits', () => {
    const sampler = createSampler({ temperature: 0.5, topK: 2 }, 3);
    expect(sampler.options).toEqual({
      temperature: 0.5,
      topK: 2,
      topP: 1,
      minP: 0,
      repetitionPenalty: 1,
      seed: 3,
    });
    const logits = f32([0.1, 0.9, 0.4]);
    expect(sampler.probs(logits)).toEqual(processLogits(logits, { temperature: 0.5, topK: 2 }));
    expect(Array.from({ length: 5 }, sampler.rng)).toEqual(Array.from({ length: 5 }, createRng(3)));
  });

  it('greedy always returns the argmax', () => {
    const sampler = createSampler({}, 1);
    for (let n = 0; n < 50; n++) expect(sampler.sample(f32([0.1, 2, 2, -1]))).toBe(1);
  });
});
