/**
 * Recognition error rates: the Levenshtein distance between a reference and a
 * hypothesis (substitutions, insertions and deletions, each costing 1) over
 * the reference's length, in words (WER, split on whitespace) or characters
 * (CER). An empty reference scores 0 against an empty hypothesis, else 1.
 */
export function wordErrorRate(reference: string, hypothesis: string): number {
  return errorRate(words(reference), words(hypothesis));
}

export function characterErrorRate(reference: string, hypothesis: string): number {
  return errorRate([...reference], [...hypothesis]);
}

/** Edits turning `reference` into `hypothesis` (one row of the table at a time). */
export function editDistance<T>(reference: readonly T[], hypothesis: readonly T[]): number {
  let row = Array.from({ length: hypothesis.length + 1 }, (_, j) => j);
  for (let i = 1; i <= reference.length; i++) {
    const next = [i];
    for (let j = 1; j <= hypothesis.length; j++) {
      const substitution = row[j - 1] + (reference[i - 1] === hypothesis[j - 1] ? 0 : 1);
      next.push(Math.min(row[j] + 1, next[j - 1] + 1, substitution));
    }
    row = next;
  }
  return row[hypothesis.length];
}

function errorRate<T>(reference: readonly T[], hypothesis: readonly T[]): number {
  if (reference.length === 0) return hypothesis.length === 0 ? 0 : 1;
  return editDistance(reference, hypothesis) / reference.length;
}

function words(text: string): string[] {
  return text.split(/\s+/).filter((w) => w.length > 0);
}
