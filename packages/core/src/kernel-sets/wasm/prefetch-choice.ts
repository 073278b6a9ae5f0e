/**
 * Whether a multi-row product loads each block of weights into the cache before its row tiles
 * (the `prefetch` argument of `product` and `dotsProduct`, scripts/wasm-kernels.ts). Those loads
 * paid on a 2-core Xeon (8 rows 109 → 77 ms) and cost on a 2-core EPYC (a 4-row verify pass of
 * the shipped target 4.5–4.7 → 3.7–3.9 ms without them), so the machine decides: the first
 * multi-row products large enough to time alternate between the two, each timing is divided by
 * the product's multiply-adds; the two are compared per weight shape (a model's products take
 * turns in a fixed order, so alternating across shapes would pit one shape against another),
 * and once `trials` shapes have timings of both, the flag that wins on most of them is kept, separately for a few rows (2–8: verify passes, batched decoding) and for many
 * (prefill chunks), since the loads can help one and hurt the other. The results are the same
 * either way; only the time differs. SPECSTREAM_WASM_PREFETCH=on|off fixes the choice.
 */
export interface PrefetchChoice {
  /** The flag for a product of `work` multiply-adds over `rows` rows of weight `shape` (any key). */
  flag(rows: number, work: number, shape: string): number;
  /** Reports how long a product run with `flag` took. */
  record(flag: number, rows: number, work: number, ms: number, shape: string): void;
  /** The kept flag for products of `rows` rows, once decided. */
  decided(rows: number): number | undefined;
}

/** Row counts up to this are "a few rows" (a verify pass of k ≤ 7, a small batch). */
export const FEW_ROWS = 8;

/** Below this many multiply-adds a timing is mostly call overhead and says nothing. */
export const TIMED_WORK = 1 << 20;

export function prefetchChoice(
  trials = 3,
  setting: string | undefined = globalThis.process?.env?.SPECSTREAM_WASM_PREFETCH,
): PrefetchChoice {
  if (setting !== undefined && setting !== 'on' && setting !== 'off' && setting !== 'auto') {
    throw new Error(`SPECSTREAM_WASM_PREFETCH must be on, off or auto, got "${setting}"`);
  }
  const fixed: number | undefined = setting === 'on' ? 1 : setting === 'off' ? 0 : undefined;
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  const classes = [0, 1].map(() => ({
    decided: fixed,
    shapes: new Map<string, { turn: number; timings: [number[], number[]] }>(),
  }));
  const classOf = (rows: number) => classes[rows <= FEW_ROWS ? 0 : 1];
  return {
    decided(rows) {
      return rows < 2 ? 0 : classOf(rows).decided;
    },
    flag(rows, work, shape) {
      if (rows < 2) return 0; // one row streams as fast without (and the kernels skip it anyway)
      const c = classOf(rows);
      if (c.decided !== undefined) return c.decided;
      if (work < TIMED_WORK) return 1;
      let entry = c.shapes.get(shape);
      if (entry === undefined) {
        entry = { turn: 0, timings: [[], []] };
        c.shapes.set(shape, entry);
      }
      entry.turn ^= 1;
      return entry.turn;
    },
    record(flag, rows, work, ms, shape) {
      if (rows < 2 || work < TIMED_WORK) return;
      const c = classOf(rows);
      const entry = c.shapes.get(shape);
      if (c.decided !== undefined || entry === undefined) return;
      entry.timings[flag].push(ms / work);
      const compared = [...c.shapes.values()].filter(
        (e) => e.timings[0].length >= 2 && e.timings[1].length >= 2,
      );
      if (compared.length >= trials || compared.some((e) => e.timings[0].length >= 2 * trials)) {
        const wins = compared.filter((e) => median(e.timings[1]) <= median(e.timings[0])).length;
        c.decided = 2 * wins >= compared.length ? 1 : 0;
      }
    },
  };
}
