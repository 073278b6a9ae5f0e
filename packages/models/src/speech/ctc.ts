import { STREAMING_ENCODER_BLANK_ID, STREAMING_ENCODER_SUBSAMPLING } from '../streaming-encoder/config.js';

/**
 * Greedy CTC decoding, chunk by chunk: each output frame's best label; a
 * label equal to the previous frame's is the same emission continuing, a
 * blank separates emissions and emits nothing. The state carries the last
 * frame's label across chunks, so a label held across a chunk boundary is
 * emitted once, and decoding any split of the frames emits exactly what
 * decoding them all at once does.
 */
export interface CtcGreedyState {
  /** Best label of the last frame decoded (the blank before any). */
  readonly previous: number;
  /** Output frames decoded so far: the stream index of the next one. */
  readonly frames: number;
}

export const CTC_GREEDY_START: CtcGreedyState = { previous: STREAMING_ENCODER_BLANK_ID, frames: 0 };

/** Labels a chunk emitted, each with the output frame (stream index) where its emission began. */
export interface CtcEmissions {
  labels: number[];
  frames: number[];
}

/**
 * Decodes the next output frames: `logits` [frames × vocabSize], frame-major
 * (a streaming encoder's output). Ties go to the lower label, as torch's
 * argmax does.
 */
export function ctcGreedyChunk(
  state: CtcGreedyState,
  logits: Float32Array,
  vocabSize: number,
): { state: CtcGreedyState; emitted: CtcEmissions } {
  const count = logits.length / vocabSize;
  const emitted: CtcEmissions = { labels: [], frames: [] };
  let previous = state.previous;
  for (let f = 0; f < count; f++) {
    const best = argmaxRow(logits, f * vocabSize, vocabSize);
    if (best !== previous && best !== STREAMING_ENCODER_BLANK_ID) {
      emitted.labels.push(best);
      emitted.frames.push(state.frames + f);
    }
    previous = best;
  }
  return { state: { previous, frames: state.frames + count }, emitted };
}

function argmaxRow(values: Float32Array, start: number, length: number): number {
  let best = 0;
  for (let i = 1; i < length; i++) if (values[start + i] > values[start + best]) best = i;
  return best;
}

/** The text of emitted labels. */
export function ctcText(labels: readonly number[], vocabulary: readonly string[]): string {
  let text = '';
  for (const label of labels) text += vocabulary[label];
  return text;
}

/** A word of a transcript and the audio it spans, in seconds from the stream's start. */
export interface CtcWord {
  word: string;
  start: number;
  end: number;
}

/** What turns output frames into seconds: the front end's hop and rate. */
export interface CtcTiming {
  hop: number;
  sampleRate: number;
}

/**
 * Output frame j reads input frames up to 4j+3 and covers input frames
 * 4j … 4j+3: it starts at 4j·hop and ends (is complete) at (4j+4)·hop
 * samples. Integer numerator, one division: 0.12, not 0.12000000000000001.
 */
export function outputFrameStart(frame: number, timing: CtcTiming): number {
  return (STREAMING_ENCODER_SUBSAMPLING * frame * timing.hop) / timing.sampleRate;
}

export function outputFrameEnd(frame: number, timing: CtcTiming): number {
  return outputFrameStart(frame + 1, timing);
}

/**
 * `words` with times past `seconds` moved back to it: letters a causal recogniser emits during the
 * tail padding (tail-padding.ts) belong to the audio's last sound, not to the padding.
 */
export function clampWordTimes(words: CtcWord[], seconds: number): CtcWord[] {
  return words.map((w) => ({ ...w, start: Math.min(w.start, seconds), end: Math.min(w.end, seconds) }));
}

/**
 * Words of emitted labels: runs of labels whose text is not whitespace. A
 * word starts where its first label's frame starts and ends where its last
 * label's frame ends (CTC emits a label at one frame, often before the
 * sound is over, so these are approximate spans, good to ±1 frame).
 */
export function ctcWords(
  emissions: CtcEmissions,
  vocabulary: readonly string[],
  timing: CtcTiming,
): CtcWord[] {
  const words: CtcWord[] = [];
  let current: { word: string; first: number; last: number } | undefined;
  const close = () => {
    if (current === undefined) return;
    words.push({
      word: current.word,
      start: outputFrameStart(current.first, timing),
      end: outputFrameEnd(current.last, timing),
    });
    current = undefined;
  };
  emissions.labels.forEach((label, i) => {
    const text = vocabulary[label];
    const frame = emissions.frames[i];
    if (text.trim() === '') {
      close();
      return;
    }
    if (current === undefined) current = { word: text, first: frame, last: frame };
    else {
      current.word += text;
      current.last = frame;
    }
  });
  close();
  return words;
}
