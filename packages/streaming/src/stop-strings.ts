/**
 * Stop strings over streamed text: text is released as soon as it can no
 * longer be the start of a stop string, so a stop that spans several tokens
 * is caught and never emitted, and nothing else is delayed longer than needed.
 */
export function createStopMatcher(stops: readonly string[]) {
  const active = stops.filter((s) => s.length > 0);
  let held = '';
  return {
    /** Adds text; returns what may be emitted now, and whether a stop string was found. */
    push(text: string, final = false): { text: string; stopped: boolean } {
      held += text;
      let cut = -1;
      for (const stop of active) {
        const at = held.indexOf(stop);
        if (at >= 0 && (cut < 0 || at < cut)) cut = at;
      }
      if (cut >= 0) {
        const out = held.slice(0, cut);
        held = '';
        return { text: out, stopped: true };
      }
      const keep = final ? 0 : longestStopPrefixSuffix(held, active);
      const out = held.slice(0, held.length - keep);
      held = held.slice(held.length - keep);
      return { text: out, stopped: false };
    },
  };
}

/** Length of the longest suffix of `text` that is a proper prefix of some stop string. */
function longestStopPrefixSuffix(text: string, stops: readonly string[]): number {
  let best = 0;
  for (const stop of stops) {
    for (let n = Math.min(stop.length - 1, text.length); n > best; n--) {
      if (text.endsWith(stop.slice(0, n))) {
        best = n;
        break;
      }
    }
  }
  return best;
}
