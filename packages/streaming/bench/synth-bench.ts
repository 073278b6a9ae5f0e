/**
 * Streaming speech synthesis on the current backend: time to first audio and
 * real-time factor of the default preset (the reference synthesizer with
 * random weights, ≈ 6.8 M parameters, 4 frames a step; the Griffin-Lim
 * vocoder at 22.05 kHz, nFft 1024, hop 256, 8 iterations × 4-frame window).
 * Random weights never stop, so every run synthesizes exactly `seconds` of
 * audio.
 *
 *   node --conditions=@specstream/source --import tsx packages/streaming/bench/synth-bench.ts
 *
 * (initializes the wasm backend unless SPECSTREAM_BACKEND names another).
 */
import { pathToFileURL } from 'node:url';
import { type BackendName, currentBackend, initBackend } from '@specstream/core';
import {
  createGriffinLimVocoder,
  createReferenceSynthesizer,
  DEFAULT_SYNTHESIZER_CONFIG,
  DEFAULT_VOCODER_OPTIONS,
  type GriffinLimVocoder,
  type ReferenceSynthesizer,
  randomSynthesizerWeights,
} from '@specstream/models';
import { concatMap, from, lastValueFrom, map, type Observable, of, timer, toArray } from 'rxjs';
import { type AudioChunk, streamingSynthesize } from '../src/synthesize.js';

const TEXT = 'Streaming speech synthesis turns text into audio while the text is still arriving.';

export interface SynthBenchOptions {
  /** Audio per run. Default 4 s. */
  seconds?: number;
  /** Measured runs per case (after one warm-up); the median is reported. Default 3. */
  reps?: number;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const round = (value: number, digits = 2) => Number(value.toFixed(digits));

export async function runSynthBench(
  log: (line: string) => void,
  options: SynthBenchOptions = {},
): Promise<Record<string, unknown>> {
  const seconds = options.seconds ?? 4;
  const reps = options.reps ?? 3;
  const config = DEFAULT_SYNTHESIZER_CONFIG;
  const r = config.framesPerStep;
  const maxFrames = Math.round((seconds * config.sampleRate) / config.hop / r) * r;
  const audioSeconds = (maxFrames * config.hop) / config.sampleRate;
  const tokens = Array.from(new TextEncoder().encode(TEXT));
  const synth = createReferenceSynthesizer(config, randomSynthesizerWeights(config, 1, { stopBias: -20 }));
  const vocoder = createGriffinLimVocoder(DEFAULT_VOCODER_OPTIONS);
  log(
    `backend ${currentBackend() ?? 'unknown'}; ${tokens.length} text tokens → ${maxFrames} frames (${audioSeconds.toFixed(2)} s at ${config.sampleRate} Hz); vocoder latency ${vocoder.latencyFrames} frames (${((vocoder.latencyFrames * config.hop * 1000) / config.sampleRate).toFixed(0)} ms)`,
  );
  try {
    // Warm-up: wasm kernels, JIT.
    await stream(synth, vocoder, of(tokens), 4, maxFrames);

    const streaming: Record<string, unknown> = {};
    for (const stepsPerCall of [1, 4]) {
      const ttfa: number[] = [];
      const wall: number[] = [];
      for (let i = 0; i < reps; i++) {
        const run = await stream(synth, vocoder, of(tokens), stepsPerCall, maxFrames);
        ttfa.push(run.ttfaMs);
        wall.push(run.wallMs);
      }
      const entry = {
        ttfaMs: round(median(ttfa)),
        wallMs: round(median(wall)),
        rtf: round(median(wall) / 1000 / audioSeconds, 3),
      };
      streaming[`text at once, ${stepsPerCall} step(s)/call`] = entry;
      log(
        `text at once, stepsPerCall ${stepsPerCall}: time to first audio ${entry.ttfaMs} ms, ${entry.wallMs} ms for ${audioSeconds.toFixed(2)} s of audio → RTF ${entry.rtf}`,
      );
    }

    // Text as an LLM would emit it: one token every 20 ms (50 tokens/s, slower than speech needs at
    // first); time to first audio counts from the first token.
    const trickle = (): Observable<number[]> =>
      from(tokens).pipe(concatMap((t, i) => (i === 0 ? of([t]) : timer(20).pipe(map(() => [t])))));
    const trickled: number[] = [];
    for (let i = 0; i < reps; i++)
      trickled.push((await stream(synth, vocoder, trickle(), 4, maxFrames)).ttfaMs);
    const trickleTtfa = round(median(trickled));
    log(`text at 50 tokens/s, stepsPerCall 4: time to first audio ${trickleTtfa} ms after the first token`);

    // Components: the model's steps alone, the vocoder alone.
    const modelMs: number[] = [];
    const vocoderMs: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      const frames = await generateFrames(synth, tokens, 4, maxFrames);
      const t1 = performance.now();
      vocoder.vocode(frames);
      const t2 = performance.now();
      modelMs.push(t1 - t0);
      vocoderMs.push(t2 - t1);
    }
    const components = {
      modelMs: round(median(modelMs)),
      modelRtf: round(median(modelMs) / 1000 / audioSeconds, 3),
      msPerDecoderStep: round(median(modelMs) / (maxFrames / r), 3),
      vocoderMs: round(median(vocoderMs)),
      vocoderRtf: round(median(vocoderMs) / 1000 / audioSeconds, 3),
    };
    log(
      `model alone: ${components.modelMs} ms (${components.msPerDecoderStep} ms/step of ${r} frames, RTF ${components.modelRtf}); Griffin-Lim alone: ${components.vocoderMs} ms (RTF ${components.vocoderRtf})`,
    );
    return {
      backend: currentBackend(),
      preset: 'DEFAULT_SYNTHESIZER_CONFIG + DEFAULT_VOCODER_OPTIONS, random weights',
      textTokens: tokens.length,
      frames: maxFrames,
      audioSeconds: round(audioSeconds, 3),
      vocoderLatencyFrames: vocoder.latencyFrames,
      streaming,
      trickleTtfaMs: trickleTtfa,
      ...components,
    };
  } finally {
    synth.dispose();
    vocoder.dispose();
  }
}

async function stream(
  synth: ReferenceSynthesizer,
  vocoder: GriffinLimVocoder,
  source: Observable<number[]>,
  stepsPerCall: number,
  maxFrames: number,
): Promise<{ ttfaMs: number; wallMs: number }> {
  const start = performance.now();
  const chunks: AudioChunk[] = await lastValueFrom(
    source.pipe(streamingSynthesize(synth, vocoder, { stepsPerCall, maxFrames }), toArray()),
  );
  return { ttfaMs: chunks[0].ms, wallMs: performance.now() - start };
}

async function generateFrames(
  synth: ReferenceSynthesizer,
  tokens: number[],
  stepsPerCall: number,
  maxFrames: number,
): Promise<Float32Array> {
  const state = synth.createState({ batch: 1, maxFrames });
  const out = new Float32Array(maxFrames * synth.nMels);
  try {
    synth.appendText(state, [tokens]);
    synth.endText(state);
    let at = 0;
    while (synth.readySteps(state) > 0) {
      const { frames } = await synth.extendStep(state, Math.min(stepsPerCall, synth.readySteps(state)));
      const values = (await frames.data()) as Float32Array;
      frames.dispose();
      out.set(values, at);
      at += values.length;
    }
  } finally {
    synth.disposeState(state);
  }
  return out;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const backend = (process.env.SPECSTREAM_BACKEND as BackendName | undefined) ?? 'wasm';
  await initBackend({ backend });
  const result = await runSynthBench((line) => console.log(`  ${line}`));
  console.log(JSON.stringify(result, null, 2));
}
