/**
 * Where should the log-mel FFT run? Times the power spectra of every frame of
 * 30 s of 16 kHz audio (3001 frames of 400 samples) in JS and on tfjs's cpu
 * backend (the wasm backend has no FFT kernel), plus the whole front end.
 *
 *   node --conditions=@specstream/source --import tsx packages/models/bench/logmel-bench.ts
 *
 * Prints a table and writes bench-results/logmel.json at the repository root.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import FFT from 'fft.js';
import { createBluesteinDft } from '../src/audio/bluestein.js';
import { frameStart, gatherFrame } from '../src/audio/framing.js';
import { logMelSpectrogram } from '../src/audio/log-mel.js';
import { periodicHann } from '../src/audio/log-mel-frame.js';
import { createLogMelStream } from '../src/audio/log-mel-stream.js';
import { createRealDft } from '../src/audio/real-dft.js';

const N_FFT = 400;
const HOP = 160;
const SECONDS = 30;
const SAMPLES = SECONDS * 16000;
const FRAMES = 1 + SAMPLES / HOP; // what torch.stft computes before Whisper drops one

/** Deterministic speech-like test signal: two gliding tones plus LCG noise. */
function syntheticAudio(): Float32Array {
  const audio = new Float32Array(SAMPLES);
  let seed = 12345;
  for (let i = 0; i < SAMPLES; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    const t = i / 16000;
    const glide = 2 * Math.PI * (220 * t + 40 * Math.sin(0.7 * t));
    audio[i] = 0.3 * Math.sin(glide) + 0.1 * Math.sin(3.1 * glide) + 0.02 * (seed / 2 ** 32 - 0.5);
  }
  return audio;
}

/** Windowed frames [FRAMES × N_FFT], centre reflect-padded as torch.stft does. */
function windowedFrames(audio: Float32Array): Float32Array {
  const window = periodicHann(N_FFT);
  const frame = new Float64Array(N_FFT);
  const out = new Float32Array(FRAMES * N_FFT);
  for (let t = 0; t < FRAMES; t++) {
    gatherFrame(frame, audio, 0, frameStart(t, HOP, N_FFT), audio.length);
    for (let i = 0; i < N_FFT; i++) out[t * N_FFT + i] = frame[i] * window[i];
  }
  return out;
}

interface Timing {
  name: string;
  exact: boolean;
  firstMs: number;
  medianMs: number;
  runs: number;
}

function time(name: string, exact: boolean, runs: number, fn: () => void): Timing {
  const samples: number[] = [];
  for (let r = 0; r < runs; r++) {
    const start = performance.now();
    fn();
    samples.push(performance.now() - start);
  }
  const sorted = [...samples].sort((a, b) => a - b);
  return { name, exact, firstMs: samples[0], medianMs: sorted[Math.floor(runs / 2)], runs };
}

function jsPowerSpectra(frames: Float32Array, dft: ReturnType<typeof createRealDft>): Float64Array {
  const power = new Float64Array(FRAMES * dft.bins);
  const frame = new Float64Array(N_FFT);
  const row = new Float64Array(dft.bins);
  for (let t = 0; t < FRAMES; t++) {
    for (let i = 0; i < N_FFT; i++) frame[i] = frames[t * N_FFT + i];
    dft.powerSpectrum(frame, row);
    power.set(row, t * dft.bins);
  }
  return power;
}

/** fft.js's own real transform needs a power of two: zero-padding to 512 moves the bins (wrong for Whisper). */
function fftJsPadded512(frames: Float32Array): void {
  const fft = new FFT(512);
  const input = new Float64Array(512);
  const out = new Float64Array(1024);
  const power = new Float64Array(FRAMES * 257);
  for (let t = 0; t < FRAMES; t++) {
    for (let i = 0; i < N_FFT; i++) input[i] = frames[t * N_FFT + i];
    fft.realTransform(out, input);
    for (let k = 0; k < 257; k++) power[t * 257 + k] = out[2 * k] ** 2 + out[2 * k + 1] ** 2;
  }
}

function tfjsPowerSpectra(frames: Float32Array, fftLength: number): Float32Array {
  return tf
    .tidy(() => {
      const spectrum = tf.spectral.rfft(tf.tensor2d(frames, [FRAMES, N_FFT]), fftLength);
      const re = tf.real(spectrum);
      const im = tf.imag(spectrum);
      return tf.add(tf.square(re), tf.square(im));
    })
    .dataSync() as Float32Array;
}

async function setupTfjsCpu(): Promise<void> {
  // The cpu backend is a dependency of @specstream/core, not of this package: resolve it from there.
  const requireFromCore = createRequire(new URL('../../core/package.json', import.meta.url));
  await import(requireFromCore.resolve('@tensorflow/tfjs-backend-cpu'));
  await tf.setBackend('cpu');
  await tf.ready();
}

function maxRelativeDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let peak = 0;
  for (let i = 0; i < a.length; i++) peak = Math.max(peak, Math.abs(a[i]));
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max / peak;
}

async function main(): Promise<void> {
  const audio = syntheticAudio();
  const frames = windowedFrames(audio);
  const mixedRadix = createRealDft(N_FFT);
  const bluestein = createRealDft(N_FFT, createBluesteinDft);
  const timings: Timing[] = [
    time('js mixed-radix 4·2·5·5 (real 400 → complex 200)', true, 15, () =>
      jsPowerSpectra(frames, mixedRadix),
    ),
    time('js Bluestein-400 on fft.js (2× complex 512)', true, 15, () => jsPowerSpectra(frames, bluestein)),
    time('js fft.js realTransform 512, zero-padded', false, 15, () => fftJsPadded512(frames)),
  ];

  await setupTfjsCpu();
  // One run each: at ~20–30 s a run, the verdict does not need a median.
  let tfjsSpectra: Float32Array = new Float32Array(0);
  timings.push(
    time('tfjs cpu tf.spectral.rfft 400', true, 1, () => {
      tfjsSpectra = tfjsPowerSpectra(frames, N_FFT);
    }),
  );
  timings.push(
    time('tfjs cpu tf.spectral.rfft 512, zero-padded', false, 1, () => tfjsPowerSpectra(frames, 512)),
  );
  const agreement = maxRelativeDiff(jsPowerSpectra(frames, mixedRadix), tfjsSpectra);

  const endToEnd = [
    time('logMelSpectrogram, 30 s (whole front end)', true, 15, () => logMelSpectrogram(audio)),
    time('createLogMelStream, 30 s in 100 ms chunks', true, 15, () => streamAll(audio, 1600)),
  ];

  const rows = [...timings, ...endToEnd].map((t) => ({
    case: t.name,
    exact: t.exact ? 'yes' : 'NO (bins moved)',
    'first ms': t.firstMs.toFixed(2),
    'median ms': t.medianMs.toFixed(2),
    runs: t.runs,
  }));
  console.log(`power spectra of ${FRAMES} frames (${SECONDS} s at 16 kHz, n_fft ${N_FFT}, hop ${HOP})`);
  console.table(rows);
  console.log(`mixed-radix vs tfjs rfft-400 power spectra: max diff / peak = ${agreement.toExponential(2)}`);

  const result = {
    bench: 'logmel',
    date: new Date().toISOString(),
    node: process.version,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    tfjs: tf.version_core,
    frames: FRAMES,
    nFft: N_FFT,
    hop: HOP,
    seconds: SECONDS,
    fft: timings,
    endToEnd,
    jsVsTfjsMaxRelDiff: agreement,
    chosen: timings.reduce((a, b) => (b.exact && b.medianMs < a.medianMs ? b : a)).name,
  };
  const dir = new URL('../../../bench-results/', import.meta.url);
  mkdirSync(dir, { recursive: true });
  writeFileSync(new URL('logmel.json', dir), `${JSON.stringify(result, null, 2)}\n`);
  console.log(`fastest exact: ${result.chosen}; wrote bench-results/logmel.json`);
}

function streamAll(audio: Float32Array, chunk: number): void {
  const stream = createLogMelStream();
  for (let at = 0; at < audio.length; at += chunk) stream.push(audio.subarray(at, at + chunk));
  stream.flush();
}

await main();
