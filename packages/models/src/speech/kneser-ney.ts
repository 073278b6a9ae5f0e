/**
 * Counting for the interpolated Kneser-Ney n-gram LMs (char-ngram-lm.ts, word-ngram-lm.ts). Their
 * symbols are integers below `base`; an n-gram is keyed history × base + symbol, its history the
 * symbols before it, most recent lowest, in base `base`. A sentence's history starts padded with
 * the `start` symbol, and the `end` symbol follows its last symbol.
 */
export interface NgramAlphabet {
  order: number;
  base: number;
  /** The sentence-start padding (never predicted). */
  start: number;
  /** The end of the sentence (predicted after the last symbol). */
  end: number;
}

/** The history of a sentence's first symbol: order-1 start symbols. */
export function paddedHistory({ order, base, start }: NgramAlphabet): number {
  let history = 0;
  for (let i = 0; i < order - 1; i++) history = history * base + start;
  return history;
}

/** The history after `history` followed by `symbol`: its last order-1 symbols. */
export function nextHistory({ order, base }: NgramAlphabet, history: number, symbol: number): number {
  return order === 1 ? 0 : (history % base ** Math.max(0, order - 2)) * base + symbol;
}

/**
 * Kneser-Ney counts per n-gram length (index k-1 for length k): the longest n-grams' raw counts;
 * a shorter n-gram's count is the number of distinct symbols seen before it, except when it starts
 * at the sentence start, where nothing but the padding precedes it and its raw count is kept.
 * Empty sentences are skipped.
 */
export function kneserNeyCounts(
  sentences: Iterable<readonly number[]>,
  alphabet: NgramAlphabet,
): Map<number, number>[] {
  const { order, base, start, end } = alphabet;
  const longest = new Map<number, number>();
  for (const symbols of sentences) {
    if (symbols.length === 0) continue;
    let history = paddedHistory(alphabet);
    for (const symbol of [...symbols, end]) {
      const key = history * base + symbol;
      longest.set(key, (longest.get(key) ?? 0) + 1);
      history = nextHistory(alphabet, history, symbol);
    }
  }
  const counts = [longest];
  for (let length = order - 1; length >= 1; length--) {
    const span = base ** length;
    const shorter = new Map<number, number>();
    for (const [key, count] of counts[0]) {
      const suffix = key % span;
      const fromStart = Math.floor(suffix / base ** (length - 1)) === start;
      shorter.set(suffix, (shorter.get(suffix) ?? 0) + (fromStart ? count : 1));
    }
    counts.unshift(shorter);
  }
  return counts;
}

/** Kneser-Ney's discount n1/(n1+2·n2) from the counts of counts, kept in [0.1, 0.95] so that every history leaves mass to the next order. */
export function kneserNeyDiscount(counts: Map<number, number>): number {
  let once = 0;
  let twice = 0;
  for (const count of counts.values()) {
    if (count === 1) once++;
    else if (count === 2) twice++;
  }
  const discount = once > 0 && twice > 0 ? once / (once + 2 * twice) : 0.5;
  return Math.min(0.95, Math.max(0.1, discount));
}
