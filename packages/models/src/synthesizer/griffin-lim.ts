import {
  checkPositiveInteger,
  concatFloat32,
  DisposedError,
  InvalidArgumentError,
  type Vocoder,
  type VocoderState,
} from '@specstream/core';
import { periodicHann } from '../audio/log-mel-frame.js';
import { melFilterBank } from '../audio/mel-filter-bank.js';
import { createRealDft } from '../audio/real-dft.js';
import { createInverseRealDft } from './inverse-dft.js';
import { melPseudoInverse } from './mel-inverse.js';

/**
 * A vocoder with no weights: log10 mel power frames → linear magnitudes
 * (regularised pseudo-inverse of the mel bank, negatives clamped) → phase by
 * Griffin-Lim → overlap-add.
 *
 * Framing (shared with `analyze`): frame m is the periodic-Hann-windowed
 * nFft samples centred on sample m·hop (zeros outside the signal), so n
 * frames describe n·hop samples.
 *
 * Incremental design: classic Griffin-Lim iterates over the whole
 * spectrogram, so every sample depends on every frame and nothing could be
 * emitted before the end. This vocoder instead runs RTISI-LA (real-time
 * iterative spectrogram inversion with look-ahead; Zhu, Beauregard & Wyse,
 * 2007): frames are committed one at a time, in order. Committing frame n
 * runs `iterations` Griffin-Lim iterations over the window of frames
 * n..n+lookahead only, with the already committed frames' overlap-added
 * signal held fixed (it also seeds the phase of a frame entering the
 * window); then frame n's estimate is added to the output for good.
 * Samples that no uncommitted frame overlaps are final and are returned,
 * in whole hops.
 *
 * Latency: frame n is committed once frame n+lookahead has arrived, and
 * slot t's samples are final once frame t+⌈nFft/2/hop⌉ is committed, so
 * latencyFrames = lookahead + ⌈nFft/(2·hop)⌉ (22.05 kHz, nFft 1024, hop
 * 256, lookahead 3: 5 frames, 58 ms).
 *
 * Determinism: what happens at each commit depends only on the frames, so
 * the output does not depend on how frames are split across push calls:
 * streaming equals `vocode(all frames)` bit for bit. It is a different
 * algorithm from full-sequence Griffin-Lim (`vocodeClassic`), whose output
 * it does not reproduce (Griffin-Lim's phase is only defined up to the
 * iteration's path); the tests bound its spectral convergence against it.
 */
export interface GriffinLimOptions {
  sampleRate: number;
  nFft: number;
  hop: number;
  nMels: number;
  /** Griffin-Lim iterations per committed frame (each frame is updated (lookahead+1)·iterations times). Default 8. */
  iterations?: number;
  /** Frames after the one being committed that the iterations see. Default 3. */
  lookahead?: number;
  /** Mel bank range; default 0 to min(8000, sampleRate/2). */
  minHz?: number;
  maxHz?: number;
}

/** The vocoder's per-utterance state (buffers are internal). */
export type GriffinLimState = VocoderState;

export interface GriffinLimVocoder extends Vocoder<GriffinLimState> {
  readonly nFft: number;
  readonly iterations: number;
  readonly lookahead: number;
  readonly minHz: number;
  readonly maxHz: number;
  /** The frames this vocoder inverts: log10 mel power, frame-major, ⌈audio.length/hop⌉ frames. */
  analyze(audio: Float32Array): Float32Array;
  /** Linear magnitudes [n × (nFft/2+1)] the frames are inverted to. */
  magnitudes(frames: Float32Array): Float64Array;
  /** Offline run of the incremental algorithm (a fresh state, push everything, flush). */
  vocode(frames: Float32Array): Float32Array;
  /** Classic full-sequence Griffin-Lim (default iterations·(lookahead+1), the per-frame update count of `vocode`). */
  vocodeClassic(frames: Float32Array, iterations?: number): Float32Array;
  /** ‖|STFT(audio)| − magnitudes(frames)‖ / ‖magnitudes(frames)‖ over the frames' slots. */
  spectralConvergence(audio: Float32Array, frames: Float32Array): number;
}

interface MutableState {
  framesIn: number;
  samplesOut: number;
  flushed: boolean;
  disposed: boolean;
  /** Frames committed so far. */
  committed: number;
  /** Magnitudes and current time-domain estimates of the uncommitted frames (index m − committed). */
  pending: Float64Array[];
  estimates: (Float64Array | null)[];
  /** Overlap-added w·y and w² of the committed frames, index = sample − samplesOut. */
  acc: Float64Array;
  weight: Float64Array;
}

/** A phase below this squared magnitude is noise: a seeded random phase is used instead. */
const TINY_POWER = 1e-24;
const LOG_FLOOR = 1e-10;

export function createGriffinLimVocoder(options: GriffinLimOptions): GriffinLimVocoder {
  const { sampleRate, nFft, hop, nMels, iterations = 8, lookahead = 3 } = options;
  checkPositiveInteger('sampleRate', sampleRate);
  checkPositiveInteger('nMels', nMels);
  checkPositiveInteger('hop', hop);
  checkPositiveInteger('iterations', iterations);
  if (!Number.isInteger(nFft) || nFft < 4 || nFft % 2 !== 0) {
    throw new InvalidArgumentError(`nFft must be an even integer >= 4, got ${nFft}`);
  }
  if (hop > nFft / 2) {
    throw new InvalidArgumentError(`hop (${hop}) must be at most nFft/2 (${nFft / 2}): frames must overlap`);
  }
  if (!Number.isInteger(lookahead) || lookahead < 0) {
    throw new InvalidArgumentError(`lookahead must be a non-negative integer, got ${lookahead}`);
  }
  const minHz = options.minHz ?? 0;
  const maxHz = options.maxHz ?? Math.min(8000, sampleRate / 2);
  if (!(minHz >= 0 && minHz < maxHz && maxHz <= sampleRate / 2)) {
    throw new InvalidArgumentError(`need 0 <= minHz < maxHz <= sampleRate/2, got ${minHz}, ${maxHz}`);
  }
  const bins = nFft / 2 + 1;
  if (nMels >= bins) throw new InvalidArgumentError(`nMels (${nMels}) must be below nFft/2+1 (${bins})`);
  const half = nFft / 2;
  const bank = melFilterBank({ nMels, nFft, sampleRate, minHz, maxHz });
  const pinv = melPseudoInverse(bank);
  const window = Float64Array.from(periodicHann(nFft));
  const windowSquared = window.map((w) => w * w);
  const forward = createRealDft(nFft);
  const inverse = createInverseRealDft(nFft);
  const latencyFrames = lookahead + Math.ceil(half / hop);
  const bufferLength = nFft + (lookahead + 2) * hop;
  // Scratch shared by all states (calls are synchronous).
  const regionMax = lookahead * hop + nFft;
  const num = new Float64Array(regionMax);
  const den = new Float64Array(regionMax);
  const signal = new Float64Array(regionMax);
  const frame = new Float64Array(nFft);
  const re = new Float64Array(bins);
  const im = new Float64Array(bins);
  const melPower = new Float64Array(nMels);
  let disposed = false;

  function checkFrames(frames: Float32Array): void {
    if (!(frames instanceof Float32Array)) throw new InvalidArgumentError('frames must be a Float32Array');
    if (frames.length % nMels !== 0) {
      throw new InvalidArgumentError(
        `frames has ${frames.length} values, not a multiple of nMels (${nMels})`,
      );
    }
    for (let i = 0; i < frames.length; i++) {
      if (!Number.isFinite(frames[i])) {
        throw new InvalidArgumentError(`frames has a non-finite value (${frames[i]}) at index ${i}`);
      }
    }
  }

  function magnitudeOf(frames: Float32Array, index: number, out: Float64Array): void {
    for (let m = 0; m < nMels; m++) melPower[m] = 10 ** frames[index * nMels + m];
    for (let k = 0; k < bins; k++) {
      let power = 0;
      const row = k * nMels;
      for (let m = 0; m < nMels; m++) power += pinv[row + m] * melPower[m];
      out[k] = power > 0 ? Math.sqrt(power) : 0;
    }
  }

  /** The Griffin-Lim projection: keep the phase of `frame`'s spectrum, impose `magnitude`; writes the IDFT to `out`. */
  function project(frameIndex: number, magnitude: Float64Array, out: Float64Array): void {
    forward.transform(frame, re, im);
    for (let k = 0; k < bins; k++) {
      const power = re[k] * re[k] + im[k] * im[k];
      if (k === 0 || k === half) {
        re[k] = re[k] < 0 ? -magnitude[k] : magnitude[k];
        im[k] = 0;
      } else if (power > TINY_POWER) {
        const scale = magnitude[k] / Math.sqrt(power);
        re[k] *= scale;
        im[k] *= scale;
      } else {
        const phase = hashPhase(frameIndex, k);
        re[k] = magnitude[k] * Math.cos(phase);
        im[k] = magnitude[k] * Math.sin(phase);
      }
    }
    inverse.transform(re, im, out);
  }

  function createVocoderState(): GriffinLimState {
    if (disposed) throw new InvalidArgumentError('the vocoder was disposed');
    const state: MutableState = {
      framesIn: 0,
      samplesOut: 0,
      flushed: false,
      disposed: false,
      committed: 0,
      pending: [],
      estimates: [],
      acc: new Float64Array(bufferLength),
      weight: new Float64Array(bufferLength),
    };
    return state;
  }

  /** Commits the oldest uncommitted frame after `iterations` Griffin-Lim iterations over its look-ahead window. */
  function commit(s: MutableState): void {
    const n = s.committed;
    const count = Math.min(lookahead, s.framesIn - 1 - n) + 1;
    const start = n * hop - half;
    const length = (count - 1) * hop + nFft;
    for (let it = 0; it < iterations; it++) {
      for (let t = 0; t < length; t++) {
        const i = start + t - s.samplesOut;
        const inside = start + t >= 0;
        num[t] = inside ? s.acc[i] : 0;
        den[t] = inside ? s.weight[i] : 0;
      }
      for (let j = 0; j < count; j++) {
        const estimate = s.estimates[j];
        if (estimate === null) continue;
        const offset = j * hop;
        for (let i = 0; i < nFft; i++) {
          num[offset + i] += window[i] * estimate[i];
          den[offset + i] += windowSquared[i];
        }
      }
      for (let t = 0; t < length; t++) signal[t] = start + t >= 0 && den[t] > 0 ? num[t] / den[t] : 0;
      for (let j = 0; j < count; j++) {
        const offset = j * hop;
        for (let i = 0; i < nFft; i++) frame[i] = window[i] * signal[offset + i];
        const estimate = s.estimates[j] ?? new Float64Array(nFft);
        project(n + j, s.pending[j], estimate);
        s.estimates[j] = estimate;
      }
    }
    const estimate = s.estimates[0]!;
    for (let i = 0; i < nFft; i++) {
      if (start + i < 0) continue;
      s.acc[start + i - s.samplesOut] += window[i] * estimate[i];
      s.weight[start + i - s.samplesOut] += windowSquared[i];
    }
    s.pending.shift();
    s.estimates.shift();
    s.committed++;
  }

  /** Normalised output of samples [samplesOut, limit) (all their frames committed); shifts the buffers. */
  function emit(s: MutableState, limit: number, pieces: Float32Array[]): void {
    const count = limit - s.samplesOut;
    if (count <= 0) return;
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = s.weight[i] > 0 ? s.acc[i] / s.weight[i] : 0;
    s.acc.copyWithin(0, count);
    s.acc.fill(0, bufferLength - count);
    s.weight.copyWithin(0, count);
    s.weight.fill(0, bufferLength - count);
    s.samplesOut = limit;
    pieces.push(out);
  }

  /** After committing frame n-1, samples before frame n's first sample are final (in whole hops). */
  const finalLimit = (committed: number) => Math.floor((committed * hop - half) / hop) * hop;

  function checkOpen(s: MutableState): void {
    if (disposed) throw new InvalidArgumentError('the vocoder was disposed');
    if (s.disposed) throw new DisposedError('the vocoder state was disposed; create a new one');
    if (s.flushed) throw new InvalidArgumentError('the vocoder state was flushed; create a new one');
  }

  function push(state: GriffinLimState, frames: Float32Array): Float32Array {
    const s = state as MutableState;
    checkOpen(s);
    checkFrames(frames);
    const n = frames.length / nMels;
    for (let t = 0; t < n; t++) {
      const magnitude = new Float64Array(bins);
      magnitudeOf(frames, t, magnitude);
      s.pending.push(magnitude);
      s.estimates.push(null);
      s.framesIn++;
    }
    const pieces: Float32Array[] = [];
    while (s.framesIn - 1 - s.committed >= lookahead) {
      commit(s);
      emit(s, finalLimit(s.committed), pieces);
    }
    return concat(pieces);
  }

  function flush(state: GriffinLimState): Float32Array {
    const s = state as MutableState;
    checkOpen(s);
    const pieces: Float32Array[] = [];
    while (s.committed < s.framesIn) {
      commit(s);
      emit(s, finalLimit(s.committed), pieces);
    }
    emit(s, s.framesIn * hop, pieces);
    s.flushed = true;
    s.pending = [];
    s.estimates = [];
    return concat(pieces);
  }

  function magnitudes(frames: Float32Array): Float64Array {
    checkFrames(frames);
    const n = frames.length / nMels;
    const out = new Float64Array(n * bins);
    for (let t = 0; t < n; t++) magnitudeOf(frames, t, out.subarray(t * bins, (t + 1) * bins));
    return out;
  }

  /** Windowed frame m of `audio` (zeros outside it) into `frame`. */
  function gather(audio: ArrayLike<number>, m: number): void {
    const start = m * hop - half;
    for (let i = 0; i < nFft; i++) {
      const t = start + i;
      frame[i] = t >= 0 && t < audio.length ? window[i] * audio[t] : 0;
    }
  }

  function analyze(audio: Float32Array): Float32Array {
    if (!(audio instanceof Float32Array) || audio.length === 0) {
      throw new InvalidArgumentError('audio must be a non-empty Float32Array');
    }
    const n = Math.ceil(audio.length / hop);
    const out = new Float32Array(n * nMels);
    const power = new Float64Array(bins);
    for (let m = 0; m < n; m++) {
      gather(audio, m);
      forward.powerSpectrum(frame, power);
      for (let b = 0; b < nMels; b++) {
        let sum = 0;
        const row = b * bins;
        for (let k = 0; k < bins; k++) sum += bank.weights[row + k] * power[k];
        out[m * nMels + b] = Math.log10(Math.max(sum, LOG_FLOOR));
      }
    }
    return out;
  }

  function vocodeClassic(
    frames: Float32Array,
    classicIterations = iterations * (lookahead + 1),
  ): Float32Array {
    checkPositiveInteger('iterations', classicIterations);
    const mags = magnitudes(frames);
    const n = frames.length / nMels;
    if (n === 0) return new Float32Array(0);
    // Samples [-half, (n-1)·hop + half): every frame's full support.
    const length = (n - 1) * hop + nFft;
    const total = new Float64Array(length);
    const weight = new Float64Array(length);
    for (let m = 0; m < n; m++) for (let i = 0; i < nFft; i++) weight[m * hop + i] += windowSquared[i];
    const estimates = Array.from({ length: n }, () => new Float64Array(nFft));
    // Start from random phase (zeros in `frame` make every bin take its seeded phase).
    frame.fill(0);
    for (let m = 0; m < n; m++) project(m, mags.subarray(m * bins, (m + 1) * bins), estimates[m]);
    const overlapAdd = () => {
      total.fill(0);
      for (let m = 0; m < n; m++) {
        for (let i = 0; i < nFft; i++) total[m * hop + i] += window[i] * estimates[m][i];
      }
      for (let t = 0; t < length; t++) total[t] = t >= half && weight[t] > 0 ? total[t] / weight[t] : 0;
    };
    for (let it = 0; it < classicIterations; it++) {
      overlapAdd();
      for (let m = 0; m < n; m++) {
        for (let i = 0; i < nFft; i++) frame[i] = window[i] * total[m * hop + i];
        project(m, mags.subarray(m * bins, (m + 1) * bins), estimates[m]);
      }
    }
    overlapAdd();
    return Float32Array.from(total.subarray(half, half + n * hop));
  }

  function spectralConvergence(audio: Float32Array, frames: Float32Array): number {
    const mags = magnitudes(frames);
    const n = frames.length / nMels;
    const power = new Float64Array(bins);
    let diff = 0;
    let ref = 0;
    for (let m = 0; m < n; m++) {
      gather(audio, m);
      forward.powerSpectrum(frame, power);
      for (let k = 0; k < bins; k++) {
        const target = mags[m * bins + k];
        diff += (Math.sqrt(power[k]) - target) ** 2;
        ref += target * target;
      }
    }
    return Math.sqrt(diff / ref);
  }

  const vocoder: GriffinLimVocoder = {
    sampleRate,
    hop,
    nMels,
    nFft,
    iterations,
    lookahead,
    minHz,
    maxHz,
    latencyFrames,
    createVocoderState,
    push,
    flush,
    disposeVocoderState(state) {
      const s = state as MutableState;
      s.disposed = true;
      s.pending = [];
      s.estimates = [];
    },
    dispose() {
      disposed = true;
    },
    analyze,
    magnitudes,
    vocode(frames) {
      const state = createVocoderState();
      const head = push(state, frames);
      const tail = flush(state);
      return concat([head, tail]);
    },
    vocodeClassic,
    spectralConvergence,
  };
  return vocoder;
}

function concat(pieces: Float32Array[]): Float32Array {
  return pieces.length === 1 ? pieces[0] : concatFloat32(pieces);
}

/** A seeded phase in [0, 2π) for frame m, bin k (an integer hash: the same on every engine). */
function hashPhase(m: number, k: number): number {
  let h = Math.imul(m + 1, 0x9e3779b1) ^ Math.imul(k + 1, 0x85ebca77);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  h ^= h >>> 12;
  h = Math.imul(h, 0x297a2d39);
  h ^= h >>> 15;
  return ((h >>> 0) / 4294967296) * 2 * Math.PI;
}
