import { describe, expect, it } from 'vitest';
import { randomArray } from '../../../test-support/random-arrays.js';
import {
  CTC_GREEDY_START,
  type CtcEmissions,
  clampWordTimes,
  ctcGreedyChunk,
  ctcText,
  ctcWords,
  outputFrameEnd,
  outputFrameStart,
} from '../src/speech/ctc.js';

/** Small seeded LCG (Numerical Recipes constants), so a failing case reproduces. */
function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** The closed form: best label per frame, runs collapsed, blanks (0) dropped; first frame of each run. */
function collapse(best: number[]): CtcEmissions {
  const out: CtcEmissions = { labels: [], frames: [] };
  best.forEach((label, frame) => {
    if (label !== 0 && (frame === 0 || best[frame - 1] !== label)) {
      out.labels.push(label);
      out.frames.push(frame);
    }
  });
  return out;
}

function argmaxRows(logits: Float32Array, vocab: number): number[] {
  return Array.from({ length: logits.length / vocab }, (_, f) => {
    const row = Array.from(logits.subarray(f * vocab, (f + 1) * vocab));
    return row.indexOf(Math.max(...row));
  });
}

/** Decodes `logits` in chunks of the given frame counts, carrying the state. */
function decodeInChunks(logits: Float32Array, vocab: number, chunks: number[]): CtcEmissions {
  let state = CTC_GREEDY_START;
  const all: CtcEmissions = { labels: [], frames: [] };
  let at = 0;
  for (const frames of chunks) {
    const step = ctcGreedyChunk(state, logits.subarray(at * vocab, (at + frames) * vocab), vocab);
    state = step.state;
    all.labels.push(...step.emitted.labels);
    all.frames.push(...step.emitted.frames);
    at += frames;
  }
  expect(state.frames).toBe(at);
  return all;
}

/** Random logits over a small vocabulary whose best label often repeats and is often the blank. */
function peakyLogits(frames: number, vocab: number, random: () => number): Float32Array {
  const logits = randomArray(frames * vocab, random);
  let label = 0;
  for (let f = 0; f < frames; f++) {
    if (random() < 0.4) label = random() < 0.4 ? 0 : Math.floor(random() * vocab);
    logits[f * vocab + label] += 2;
  }
  return logits;
}

describe('greedy CTC decoding', () => {
  it.each([1, 2, 3])('chunked decoding equals the closed form on random logits (seed %i)', (seed) => {
    const random = seeded(seed);
    const vocab = 5;
    const frames = 200;
    const logits = peakyLogits(frames, vocab, random);
    const reference = collapse(argmaxRows(logits, vocab));
    // Repeats across chunk boundaries must occur for the test to mean anything.
    expect(reference.labels.length).toBeGreaterThan(10);
    expect(reference.labels.length).toBeLessThan(frames / 2);
    const splits = [[frames], Array(frames).fill(1), [7, 1, 1, 64, 0, 127]];
    const random3 = Array.from({ length: 40 }, () => Math.floor(random() * 6));
    splits.push([...random3, frames - random3.reduce((a, b) => a + b, 0)]);
    for (const chunks of splits) expect(decodeInChunks(logits, vocab, chunks)).toEqual(reference);
  });

  it('a label held across a chunk boundary is emitted once; after a blank, again', () => {
    const vocab = 3;
    const rows = (labels: number[]) => {
      const logits = new Float32Array(labels.length * vocab);
      labels.forEach((label, f) => {
        logits[f * vocab + label] = 1;
      });
      return logits;
    };
    const first = ctcGreedyChunk(CTC_GREEDY_START, rows([1, 1]), vocab);
    const second = ctcGreedyChunk(first.state, rows([1, 0, 1, 2]), vocab);
    expect(first.emitted).toEqual({ labels: [1], frames: [0] });
    expect(second.emitted).toEqual({ labels: [1, 2], frames: [4, 5] });
    expect(second.state).toEqual({ previous: 2, frames: 6 });
  });

  it('ties go to the lower label (as torch.argmax)', () => {
    const { emitted } = ctcGreedyChunk(CTC_GREEDY_START, new Float32Array([0, 1, 1]), 3);
    expect(emitted.labels).toEqual([1]);
  });
});

describe('CTC words and times', () => {
  const vocabulary = ['', ' ', "'", 'a', 'b', 'c'];
  const timing = { hop: 160, sampleRate: 16000 };

  it('output frame j spans input frames 4j … 4j+3: 40 ms a frame at a 10 ms hop', () => {
    expect(outputFrameStart(0, timing)).toBe(0);
    expect(outputFrameEnd(0, timing)).toBe(0.04);
    expect(outputFrameStart(3, timing)).toBe(0.12);
    expect(outputFrameEnd(24, timing)).toBe(1);
  });

  it('splits at whitespace labels, keeps apostrophes, spans first to last label', () => {
    // " ab  c'a " : leading, doubled and trailing spaces make no empty words.
    const emissions: CtcEmissions = {
      labels: [1, 3, 4, 1, 1, 5, 2, 3, 1],
      frames: [0, 2, 3, 5, 6, 9, 10, 12, 20],
    };
    expect(ctcText(emissions.labels, vocabulary)).toBe(" ab  c'a ");
    expect(ctcWords(emissions, vocabulary, timing)).toEqual([
      { word: 'ab', start: 0.08, end: 0.16 },
      { word: "c'a", start: 0.36, end: 0.52 },
    ]);
    expect(ctcWords({ labels: [], frames: [] }, vocabulary, timing)).toEqual([]);
  });

  it('clampWordTimes moves times past the end back to it and leaves the rest', () => {
    const words = [
      { word: 'ab', start: 0.08, end: 0.16 },
      { word: 'c', start: 0.36, end: 0.52 },
      { word: 'a', start: 0.6, end: 0.64 },
    ];
    expect(clampWordTimes(words, 0.4)).toEqual([
      { word: 'ab', start: 0.08, end: 0.16 },
      { word: 'c', start: 0.36, end: 0.4 },
      { word: 'a', start: 0.4, end: 0.4 },
    ]);
    expect(clampWordTimes(words, 1)).toEqual(words);
    expect(words[1].end).toBe(0.52);
  });
});
