/**
 * LocalAgreement-2 (Macháček et al., 2023, "Turning Whisper into Real-Time
 * Transcription System"): a token is committed once two consecutive
 * hypotheses over the growing audio buffer agree on it and on everything
 * before it. Committed tokens are final; the rest is a partial hypothesis.
 *
 * Hypotheses cover the audio buffer from its start. After the buffer is
 * trimmed, a new hypothesis may begin by re-transcribing the end of what was
 * already committed: that overlap (the longest match of up to `maxOverlap`
 * tokens between the committed tail and the hypothesis head) is removed.
 * Hypotheses are aligned to the commit point by length otherwise: committed
 * text is final, so a later revision of a committed token is ignored.
 */
export interface LocalAgreement {
  /** Every committed token, in order. */
  readonly committed: readonly number[];
  /**
   * How many tokens at the head of the current buffer's hypotheses are
   * committed; undefined right after a trim, until a hypothesis realigns.
   */
  readonly committedInBuffer: number | undefined;
  /** Feeds the hypothesis for the current buffer; returns the tokens it commits and the partial rest. */
  update(hypothesis: readonly number[]): { committed: number[]; partial: number[] };
  /** The buffer was cut: hypotheses no longer start with the tokens committed from it. */
  trimmed(): void;
  /** End of audio: commits the last hypothesis whole. */
  finish(): number[];
}

export function createLocalAgreement(maxOverlap = 64): LocalAgreement {
  const committed: number[] = [];
  /** Tokens committed from the audio now in the buffer (hypotheses start with them). */
  let fromBuffer = 0;
  let afterTrim = false;
  let previous: number[] | undefined;

  /** The part of a hypothesis that is not yet committed. */
  function fresh(hypothesis: readonly number[]): number[] {
    if (afterTrim) {
      const overlap = longestOverlap(committed, hypothesis, maxOverlap);
      return hypothesis.slice(overlap);
    }
    return hypothesis.slice(fromBuffer);
  }

  return {
    committed,
    get committedInBuffer() {
      return afterTrim ? undefined : fromBuffer;
    },
    update(hypothesis) {
      const current = fresh(hypothesis);
      const agreed = previous === undefined ? 0 : commonPrefix(previous, current);
      const newly = current.slice(0, agreed);
      committed.push(...newly);
      if (afterTrim) {
        // From here on, hypotheses are aligned to the commit point by length again.
        fromBuffer = hypothesis.length - current.length + agreed;
        if (agreed > 0) afterTrim = false;
      } else {
        fromBuffer += agreed;
      }
      previous = current.slice(agreed);
      return { committed: newly, partial: current.slice(agreed) };
    },
    trimmed() {
      afterTrim = true;
      fromBuffer = 0;
    },
    finish() {
      const rest = previous ?? [];
      committed.push(...rest);
      previous = [];
      return rest;
    },
  };
}

function commonPrefix(a: readonly number[], b: readonly number[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

/** Largest n ≤ max such that the last n committed tokens equal the first n of the hypothesis. */
function longestOverlap(committed: readonly number[], hypothesis: readonly number[], max: number): number {
  for (let n = Math.min(max, committed.length, hypothesis.length); n > 0; n--) {
    let same = true;
    for (let i = 0; i < n && same; i++) same = committed[committed.length - n + i] === hypothesis[i];
    if (same) return n;
  }
  return 0;
}
