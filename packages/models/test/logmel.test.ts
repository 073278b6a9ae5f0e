import { readFileSync } from 'node:fs';
import { concatFloat32, InvalidArgumentError } from '@specstream/core';
import { describe, expect, it } from 'vitest';
import { maxAbsDiff } from '../../../test-support/max-abs-diff.js';
import {
  createBluesteinDft,
  createLogMelStream,
  createMixedRadixDft,
  createRealDft,
  hzToMelSlaney,
  type LogMelOptions,
  logMelSpectrogram,
  melFilterBank,
  melToHzSlaney,
  normalizeLogMel,
  rawLogMelFrames,
} from '../src/audio/index.js';
import { FIXTURES_URL as fixtures, whisperFixture } from './fixtures.js';

/** Minimal safetensors reader (F32 only): u64 LE header length, JSON header, data. */
function readF32Tensors(url: URL): Record<string, { shape: number[]; data: Float32Array }> {
  const bytes = readFileSync(url);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8'));
  const out: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [name, info] of Object.entries<{ dtype: string; shape: number[]; data_offsets: number[] }>(
    header,
  )) {
    if (name === '__metadata__' || info.dtype !== 'F32') continue;
    const [begin, end] = info.data_offsets;
    const copy = bytes.buffer.slice(
      bytes.byteOffset + 8 + headerLength + begin,
      bytes.byteOffset + 8 + headerLength + end,
    );
    out[name] = { shape: info.shape, data: new Float32Array(copy) };
  }
  return out;
}

const reference = readF32Tensors(new URL('whisper/reference.safetensors', fixtures));
const audio = reference.audio.data;
/** The feature extractor's framing (preprocessor_config.json) and the model's mel bins. */
const W = whisperFixture();
const MELS = W.numMelBins;
const FRAMING = { nMels: MELS, nFft: W.nFft, hop: W.hop };
/** Frames of the audio alone (no padding) with the default framing (hop 160). */
const AUDIO_FRAMES = Math.floor(audio.length / 160);

/** mulberry32: small seeded PRNG so failures reproduce. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('slaney mel filter bank', () => {
  // Written independently of the source: the log branch as a base-6.4 logarithm.
  const mel = (hz: number) => (hz < 1000 ? hz / (200 / 3) : 15 + 27 * (Math.log(hz / 1000) / Math.log(6.4)));
  const hz = (m: number) => (m < 15 ? (m * 200) / 3 : 1000 * 6.4 ** ((m - 15) / 27));

  it('hz→mel→hz round-trips and matches the closed form', () => {
    expect(hzToMelSlaney(1000)).toBe(15);
    expect(hzToMelSlaney(8000)).toBeCloseTo(15 + 27 * 3 * (Math.log(2) / Math.log(6.4)), 12);
    for (let f = 0; f <= 8000; f += 37.5) {
      expect(hzToMelSlaney(f)).toBeCloseTo(mel(f), 10);
      expect(melToHzSlaney(hzToMelSlaney(f))).toBeCloseTo(f, 8);
      expect(melToHzSlaney(mel(f))).toBeCloseTo(hz(mel(f)), 8);
    }
  });

  for (const nMels of [80, 128]) {
    it(`${nMels} filters: peaks at their mel centres, unit area, closed-form row sums`, () => {
      const bank = melFilterBank({ nMels, nFft: 400 });
      expect(bank.nBins).toBe(201);
      const step = mel(8000) / (nMels + 1);
      const binHz = (k: number) => k * 40;
      for (let m = 0; m < nMels; m++) {
        const [lo, mid, hi] = [hz(m * step), hz((m + 1) * step), hz((m + 2) * step)];
        const triangle = (f: number) =>
          (2 / (hi - lo)) * Math.max(0, f <= mid ? (f - lo) / (mid - lo) : (hi - f) / (hi - mid));
        const row = bank.weights.subarray(m * 201, (m + 1) * 201);
        let sum = 0;
        let expectedSum = 0;
        let peak = 0;
        for (let k = 0; k < 201; k++) {
          expect(row[k]).toBeCloseTo(triangle(binHz(k)), 9);
          if (row[k] > row[peak]) peak = k;
          sum += row[k];
          expectedSum += triangle(binHz(k));
        }
        expect(sum).toBeCloseTo(expectedSum, 9);
        // The heaviest bin is one of the two bins around the centre frequency.
        expect(Math.abs(binHz(peak) - mid)).toBeLessThanOrEqual(40);
        // Slaney norm makes each triangle's area 1 in Hz; the 40 Hz Riemann sum
        // approximates it once the triangle spans several bins.
        if (hi - lo > 400) expect(Math.abs(sum * 40 - 1)).toBeLessThan(0.02);
      }
    });
  }
});

describe('DFT', () => {
  it('complex mixed-radix and Bluestein transforms match a naive O(n²) DFT', () => {
    for (const n of [2, 3, 5, 7, 8, 20, 50, 200, 201, 256]) {
      const random = rng(1000 + n);
      const xr = Float64Array.from({ length: n }, () => random() * 2 - 1);
      const xi = Float64Array.from({ length: n }, () => random() * 2 - 1);
      const candidates = [createBluesteinDft(n), createMixedRadixDft(n)].filter((d) => d !== null);
      // 2·5^k·4^j lengths must take the fast path; others must not.
      expect(createMixedRadixDft(n) === null).toBe([3, 7, 201].includes(n));
      for (const dft of candidates) {
        const re = new Float64Array(n);
        const im = new Float64Array(n);
        dft.transform(xr, xi, re, im);
        for (let k = 0; k < n; k++) {
          let sr = 0;
          let si = 0;
          for (let j = 0; j < n; j++) {
            const angle = (-2 * Math.PI * ((j * k) % n)) / n;
            sr += xr[j] * Math.cos(angle) - xi[j] * Math.sin(angle);
            si += xr[j] * Math.sin(angle) + xi[j] * Math.cos(angle);
          }
          expect(Math.abs(re[k] - sr)).toBeLessThan(1e-12 * n);
          expect(Math.abs(im[k] - si)).toBeLessThan(1e-12 * n);
        }
      }
    }
  });

  for (const [n, algorithm] of [
    [4, 'auto'],
    [6, 'auto'],
    [10, 'auto'],
    [64, 'auto'],
    [400, 'auto'],
    [400, 'bluestein'],
    [402, 'auto'],
    [512, 'auto'],
  ] as const) {
    it(`real DFT (${algorithm}) matches a naive O(n²) DFT for n = ${n}`, () => {
      const random = rng(n);
      const x = Float64Array.from({ length: n }, () => random() * 2 - 1);
      const dft = algorithm === 'auto' ? createRealDft(n) : createRealDft(n, createBluesteinDft);
      const re = new Float64Array(dft.bins);
      const im = new Float64Array(dft.bins);
      dft.transform(x, re, im);
      const power = new Float64Array(dft.bins);
      dft.powerSpectrum(x, power);
      for (let k = 0; k <= n / 2; k++) {
        let sr = 0;
        let si = 0;
        for (let j = 0; j < n; j++) {
          sr += x[j] * Math.cos((2 * Math.PI * ((j * k) % n)) / n);
          si -= x[j] * Math.sin((2 * Math.PI * ((j * k) % n)) / n);
        }
        expect(Math.abs(re[k] - sr)).toBeLessThan(1e-12 * n);
        expect(Math.abs(im[k] - si)).toBeLessThan(1e-12 * n);
        expect(power[k]).toBeCloseTo(sr * sr + si * si, 9);
      }
    });
  }
});

/**
 * Reference region bookkeeping: frames 0..LAST_AUDIO_FRAME lie wholly inside the audio
 * (0..198 of the shared fixture's 2 s); FRAMES is the padded 30 s window.
 */
const FRAMES = W.windowFrames;
const HALF = W.nFft / 2;
const LAST_AUDIO_FRAME = Math.floor((audio.length - HALF) / W.hop);

describe('offline log-mel vs WhisperFeatureExtractor', () => {
  it(`matches input_features [${MELS}, ${FRAMES}]`, () => {
    const features = reference.input_features;
    expect(features.shape).toEqual([1, MELS, FRAMES]);
    const ours = logMelSpectrogram(audio, { ...FRAMING, padTo: W.windowSamples });
    expect(ours.length).toBe(MELS * FRAMES);
    const worst = { audio: 0, edge: 0, padding: 0, nearPeak: 0 };
    for (let t = 0; t < FRAMES; t++) {
      let framePeak = Number.NEGATIVE_INFINITY;
      for (let m = 0; m < MELS; m++) framePeak = Math.max(framePeak, features.data[m * FRAMES + t]);
      for (let m = 0; m < MELS; m++) {
        const expected = features.data[m * FRAMES + t];
        const err = Math.abs(ours[m * FRAMES + t] - expected);
        const region = t <= LAST_AUDIO_FRAME ? 'audio' : t * W.hop - HALF < audio.length ? 'edge' : 'padding';
        worst[region] = Math.max(worst[region], err);
        // Normalised units are log10 / 4: within 0.25 is within one decade of the frame's peak.
        if (region === 'audio' && framePeak - expected <= 0.25)
          worst.nearPeak = Math.max(worst.nearPeak, err);
      }
    }
    console.log('log-mel max abs error vs HF reference', worst);
    // Measured: audio 3.6e-6, edge 5.4e-7, padding 0, near-peak 1.2e-7 (1 float32 ulp).
    // The reference ran torch.stft in float32, whose rounding noise is ~1e-7 of a frame's
    // energy; we compute in float64. The error therefore grows with how far a bin lies
    // below its frame's peak (≈1e-7 within a decade, 3.6e-6 five decades down), as log10
    // magnifies the reference's relative noise. Padding frames sit at the (max − 8) floor
    // on both sides and agree to one float32 ulp of the floor's value: 0 on the shared set,
    // 1.19e-7 (one ulp in [1, 2)) on two sets made by tools/fixtures/make_fixtures.py, where
    // the float64 and float32 maxima round apart.
    // Bins far below their frame's peak carry the reference's float32 noise magnified by log10:
    // 3.6e-6 on the shared set (80 bins, 2 s), 2.4e-5 on a generated one (128 bins, 1.5 s), whose
    // narrower low bins lie deeper. Within a decade of the peak the bound stays at 3e-7.
    expect(worst.audio).toBeLessThan(1e-4);
    expect(worst.nearPeak).toBeLessThan(3e-7);
    expect(worst.edge).toBeLessThan(1e-4);
    const floor = Math.abs(features.data[FRAMES - 1]);
    expect(worst.padding).toBeLessThanOrEqual(2 ** -23 * Math.max(1, 2 ** Math.floor(Math.log2(floor || 1))));
    expect(maxAbsDiff(ours, features.data)).toBeLessThan(1e-4);
  });

  it('supports 128 mel bins and explicit padding lengths', () => {
    // The defaults: 80 mels, 400/160 framing, 30 s at 16 kHz (3000 frames), 1 s = 100 frames.
    expect(logMelSpectrogram(audio, { nMels: 128 }).length).toBe(128 * 3000);
    expect(logMelSpectrogram(audio, { padTo: false }).length).toBe(80 * AUDIO_FRAMES);
    expect(logMelSpectrogram(audio, { chunkLength: 1 }).length).toBe(80 * 100);
    const ours = logMelSpectrogram(audio, { padTo: 16000 });
    expect(ours.length).toBe(80 * 100);
  });
});

/** Streams `signal` in chunks whose sizes come from `nextSize`; returns all frames. */
function streamInChunks(
  signal: Float32Array,
  nextSize: () => number,
  options: LogMelOptions = {},
): Float32Array {
  const stream = createLogMelStream(options);
  const parts: Float32Array[] = [];
  for (let at = 0; at < signal.length; ) {
    const size = Math.min(nextSize(), signal.length - at);
    parts.push(stream.push(signal.subarray(at, at + size)));
    at += size;
  }
  parts.push(stream.flush());
  return concatFloat32(parts);
}

describe('streaming raw log-mel', () => {
  const offline = rawLogMelFrames(audio, { padTo: false });

  it('reproduces the unpadded offline frames exactly for random chunkings', () => {
    expect(offline.length).toBe(80 * AUDIO_FRAMES);
    for (const seed of [1, 2, 3, 4, 5]) {
      const random = rng(seed);
      // Mix tiny and large chunks so frame boundaries fall everywhere.
      const nextSize = () =>
        random() < 0.3 ? 1 + Math.floor(random() * 8) : 1 + Math.floor(random() * 5000);
      expect(streamInChunks(audio, nextSize)).toEqual(offline);
    }
  });

  it('reproduces them with one-sample chunks, one big chunk, and 128 bins', () => {
    expect(streamInChunks(audio, () => 1)).toEqual(offline);
    expect(streamInChunks(audio, () => audio.length)).toEqual(offline);
    const random = rng(7);
    expect(streamInChunks(audio, () => 1 + Math.floor(random() * 5000), { nMels: 128 })).toEqual(
      rawLogMelFrames(audio, { nMels: 128, padTo: false }),
    );
  });

  it('stays exact for other framings: hop > nFft/2, and an nFft taking the Bluestein path', () => {
    for (const options of [{ hop: 300 }, { nFft: 402, hop: 100 }, { nFft: 512, hop: 256 }]) {
      const random = rng(options.hop);
      const streamed = streamInChunks(audio, () => 1 + Math.floor(random() * 700), options);
      const offline = rawLogMelFrames(audio, { ...options, padTo: false });
      expect(offline.length).toBe(80 * Math.floor(audio.length / options.hop));
      expect(streamed).toEqual(offline);
    }
  });

  it('emits frame t once t·hop + nFft/2 samples are in (frame 0: nFft/2 + 1)', () => {
    const stream = createLogMelStream();
    expect(stream.push(audio.subarray(0, 200)).length).toBe(0);
    expect(stream.push(audio.subarray(200, 201)).length).toBe(80);
    expect(stream.push(audio.subarray(201, 359)).length).toBe(0);
    expect(stream.push(audio.subarray(359, 360)).length).toBe(80);
    expect(stream.push(audio.subarray(360, 1000)).length).toBe(4 * 80); // frames 2..5 (5·160 + 200 = 1000)
    expect(stream.framesEmitted).toBe(6);
    expect(stream.samplesReceived).toBe(1000);
  });

  it('gives Whisper features when zero-padded to 30 s and normalised with the global max', () => {
    const padded = new Float32Array(W.windowSamples);
    padded.set(audio);
    const random = rng(11);
    const raw = streamInChunks(padded, () => 1 + Math.floor(random() * 5000), FRAMING);
    const features = logMelSpectrogram(audio, { ...FRAMING, padTo: W.windowSamples });
    expect(raw.length).toBe(MELS * FRAMES);
    // Stream output is [frames × nMels]; the features are [nMels × frames].
    const normalized = normalizeLogMel(raw);
    for (let t = 0; t < FRAMES; t += 7) {
      for (let m = 0; m < MELS; m++) expect(normalized[t * MELS + m]).toBe(features[m * FRAMES + t]);
    }
  });
});

describe('bad input', () => {
  const expectInvalid = (fn: () => unknown, message: RegExp) => {
    expect(fn).toThrow(InvalidArgumentError);
    expect(fn).toThrow(message);
  };

  it('rejects empty, too-short and non-finite audio', () => {
    expectInvalid(() => logMelSpectrogram(new Float32Array(0)), /audio is empty/);
    expectInvalid(() => logMelSpectrogram(new Float32Array(150), { padTo: false }), /150 samples.*201/);
    const withNaN = audio.slice(0, 1000);
    withNaN[5] = Number.NaN;
    expectInvalid(() => logMelSpectrogram(withNaN), /non-finite sample \(NaN\) at index 5/);
    withNaN[5] = Number.POSITIVE_INFINITY;
    expectInvalid(() => rawLogMelFrames(withNaN), /non-finite.*index 5/);
  });

  it('rejects unsupported options', () => {
    expectInvalid(() => logMelSpectrogram(audio, { nMels: 64 }), /nMels must be 80 or 128.*64/);
    expectInvalid(() => createLogMelStream({ nMels: 40 }), /nMels/);
    expectInvalid(() => logMelSpectrogram(audio, { nFft: 401 }), /nFft/);
    expectInvalid(() => logMelSpectrogram(audio, { hop: 0 }), /hop/);
    expectInvalid(() => logMelSpectrogram(audio, { padTo: 1.5 }), /padTo/);
    expectInvalid(() => logMelSpectrogram(audio, { chunkLength: -1 }), /chunkLength/);
  });

  it('leaves a stream usable after rejecting a chunk or a premature flush', () => {
    const stream = createLogMelStream();
    expectInvalid(() => stream.flush(), /streamed audio is empty/);
    expect(stream.push(audio.subarray(0, 100)).length).toBe(0);
    expectInvalid(() => stream.flush(), /100 samples.*201/);
    const bad = audio.slice(100, 200);
    bad[3] = Number.NaN;
    expectInvalid(() => stream.push(bad), /samples has a non-finite sample \(NaN\) at index 3/);
    expect(stream.samplesReceived).toBe(100);
    const rest = [stream.push(audio.subarray(100)), stream.flush()];
    expect(concatFloat32(rest)).toEqual(rawLogMelFrames(audio, { padTo: false }));
    expectInvalid(() => stream.push(audio.subarray(0, 10)), /already flushed/);
  });
});
