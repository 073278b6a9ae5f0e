/**
 * `pnpm bench --only speech --backends wasm`: the shipped speech models (models/SPEECH.md) on
 * held-out sentences, as a user runs them:
 *
 *   1. recognizer, with each decoder --speech-decoder lists (default greedy,beam:32:lm; beam:N, a
 *      CTC prefix beam search of width N; beam:N:lm, with the recognizer's character LM and the α,
 *      β, γ bench/speech/tune-beam.ts chose on other held-out sentences, 41–289):
 *      word error rate offline and streamed in 320 ms chunks, in trained voices and
 *      in flite's kal16 (never trained on); real-time factor of the stream (log-mel, encoder and
 *      decoding); partial-result latency with audio arriving at 4× real time (no queueing at
 *      these speeds), from the arrival of the audio that completes an encoder chunk to its event;
 *   2. synthesizer: round trip (speak with Griffin-Lim, recognise with each decoder) word and character error
 *      rates, real-time factor, and time to first audio after the first text, with the text
 *      arriving whole and a word every 20 ms (an LM writing ~50 words/s).
 *
 * The audio comes from tools/speech/render_heldout.py (espeak-ng and flite from Debian,
 * unpacked by tools/speech/fetch-tts.sh, which this runs once if .tts/ is missing). Run from
 * the repository root; bench/speech/speech-results.ts writes bench-results/speech.json and
 * RESULTS.md's speech section.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { kernelThreadCount } from '@specstream/core';
import {
  CTC_BEAM_WIDTH,
  type CtcDecoder,
  characterErrorRate,
  editDistance,
  loadSpeechRecognizer,
  loadSpeechRecognizerLm,
  loadSpeechSynthesizer,
  RECOGNIZER_TAIL_PADDING_SECONDS,
  recognizeAudio,
  type SpeechRecognizer,
  type SpeechSynthesizer,
  speechFrameBudget,
  synthesizeSpeech,
} from '@specstream/models';
import { concatMap, from, lastValueFrom, map, of, timer, toArray } from 'rxjs';
import { decodeWav } from '../src/audio/wav-decode.js';
import { ctcTranscription, speakText } from '../src/index.js';

export const SPEECH_ARGS = {
  'speech-sentences': { type: 'string' },
  'speech-decoder': { type: 'string' },
} as const;

export interface SpeechSettings {
  sentences: number;
  results: string;
  /**
   * Recognizer decoders to compare, each greedy | beam:N | beam:N:lm (the recognizer's character
   * and word LMs, CTC_BEAM_LM_WEIGHT, CTC_BEAM_LENGTH_BONUS, CTC_BEAM_OOV_PENALTY and
   * CTC_BEAM_WORD_LM_WEIGHT); default greedy and the CLI's beam:32:lm.
   */
  decoders: string[];
}

export function speechSettings(values: {
  'speech-sentences'?: string;
  'speech-decoder'?: string;
}): SpeechSettings {
  const decoders = (values['speech-decoder'] ?? `greedy,beam:${CTC_BEAM_WIDTH}:lm`).split(',');
  for (const decoder of decoders) {
    if (!/^(greedy|beam:[1-9]\d*(:lm)?)$/.test(decoder)) {
      throw new Error(`--speech-decoder takes greedy, beam:N or beam:N:lm (comma-separated), got ${decoder}`);
    }
  }
  return { sentences: Number(values['speech-sentences'] ?? 40), results: 'RESULTS.md', decoders };
}

const RECOGNIZER = 'models/specstream-speech-recognizer';

/** The --speech-decoder setting as a decoder, its LM trained on the recognizer folder's text. */
async function decoderOf(setting: string, recognizer: SpeechRecognizer): Promise<CtcDecoder> {
  if (setting === 'greedy') return 'greedy';
  const [, width, lm] = setting.split(':');
  if (lm === undefined) return { beamWidth: Number(width) };
  return { beamWidth: Number(width), lm: await loadSpeechRecognizerLm(RECOGNIZER, recognizer.config) };
}

interface Utterance {
  wav: string;
  text: string;
  transcript: string;
  voice: string;
  heldout_voice: boolean;
  samples: Float32Array;
}

const CHUNK_SECONDS = 0.32;
const SAMPLE_RATE = 16000;

function renderHeldout(count: number): Utterance[] {
  if (!existsSync('.tts/root')) execFileSync('bash', ['tools/speech/fetch-tts.sh'], { stdio: 'inherit' });
  const dir = join(tmpdir(), `specstream-speech-bench-${count}`);
  if (!existsSync(join(dir, 'manifest.json'))) {
    execFileSync('python3', ['tools/speech/render_heldout.py', '--out', dir, '--count', String(count)], {
      stdio: 'inherit',
    });
  }
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Omit<
    Utterance,
    'samples'
  >[];
  return manifest.map((u) => ({ ...u, samples: decodeWav(readFileSync(join(dir, u.wav)), u.wav).mono }));
}

const words = (text: string) => text.split(/\s+/).filter((w) => w !== '');
const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
};
const round = (x: number, digits = 3) => Number(x.toFixed(digits));

/** Word errors and reference words summed over utterances (corpus WER, not a mean of ratios). */
class Tally {
  errors = 0;
  words = 0;
  add(reference: string, hypothesis: string) {
    this.errors += editDistance(words(reference), words(hypothesis));
    this.words += words(reference).length;
  }
  get rate() {
    return round(this.errors / Math.max(1, this.words), 4);
  }
}

/** Streams one utterance in 320 ms chunks at `pace`× real time; the final text and the partials' latencies. */
async function streamed(
  recognizer: SpeechRecognizer,
  decoder: CtcDecoder,
  samples: Float32Array,
  pace: number | null,
) {
  const chunk = Math.round(CHUNK_SECONDS * SAMPLE_RATE);
  const chunks = Array.from({ length: Math.ceil(samples.length / chunk) }, (_, i) =>
    samples.subarray(i * chunk, (i + 1) * chunk),
  );
  const source =
    pace === null
      ? from(chunks)
      : from(chunks).pipe(
          concatMap((c, i) => (i === 0 ? of(c) : timer((CHUNK_SECONDS * 1000) / pace).pipe(map(() => c)))),
        );
  const start = performance.now();
  const events = await lastValueFrom(source.pipe(ctcTranscription(recognizer, { decoder }), toArray()));
  const ms = performance.now() - start;
  const final = events.at(-1);
  if (final?.type !== 'final') throw new Error('the transcription ended without a final event');
  const latencies = events.flatMap((e) => (e.type === 'partial' ? [e.latencyMs] : []));
  return { text: final.text, ms, latencies };
}

async function recognizerBench(
  recognizer: SpeechRecognizer,
  decoder: CtcDecoder,
  utterances: Utterance[],
  log: (l: string) => void,
) {
  const offline = { trained: new Tally(), heldout: new Tally() };
  const stream = { trained: new Tally(), heldout: new Tally() };
  let audioSeconds = 0;
  let streamMs = 0;
  let offlineMs = 0;
  let differing = 0;
  for (const u of utterances) {
    const kind = u.heldout_voice ? 'heldout' : 'trained';
    let t = performance.now();
    const whole = (await recognizeAudio(recognizer, u.samples, { decoder })).text;
    offlineMs += performance.now() - t;
    t = performance.now();
    const live = await streamed(recognizer, decoder, u.samples, null);
    streamMs += live.ms;
    audioSeconds += u.samples.length / SAMPLE_RATE;
    offline[kind].add(u.transcript, whole);
    stream[kind].add(u.transcript, live.text);
    if (live.text !== whole) differing++;
  }
  // Latency: a few utterances paced at 4× real time, so a chunk never waits behind another.
  const latencies: number[] = [];
  for (const u of utterances.slice(0, 6))
    latencies.push(...(await streamed(recognizer, decoder, u.samples, 4)).latencies);
  const result = {
    utterances: utterances.length,
    audioSeconds: round(audioSeconds, 1),
    // recognizeAudio's and the stream's default: fed after each utterance, timed, not counted as audio.
    tailPaddingSeconds: RECOGNIZER_TAIL_PADDING_SECONDS,
    wer: {
      trainedVoices: {
        offline: offline.trained.rate,
        streamed: stream.trained.rate,
        words: offline.trained.words,
      },
      heldoutVoice: {
        offline: offline.heldout.rate,
        streamed: stream.heldout.rate,
        words: offline.heldout.words,
      },
    },
    streamedTextsDifferingFromOffline: differing,
    realTimeFactor: {
      streamed: round(streamMs / 1000 / audioSeconds, 4),
      offline: round(offlineMs / 1000 / audioSeconds, 4),
    },
    partialLatencyMs: {
      computeP50: round(percentile(latencies, 0.5), 1),
      computeP95: round(percentile(latencies, 0.95), 1),
      worstCaseP95: round(CHUNK_SECONDS * 1000 + percentile(latencies, 0.95), 1),
      partials: latencies.length,
    },
  };
  log(`recognizer: ${JSON.stringify(result)}`);
  return result;
}

async function synthesizerBench(
  synthesizer: SpeechSynthesizer,
  recognizer: SpeechRecognizer,
  decoders: Map<string, CtcDecoder>,
  texts: string[],
  log: (l: string) => void,
) {
  const heardBy = new Map([...decoders.keys()].map((name) => [name, { tally: new Tally(), charErrors: 0 }]));
  let chars = 0;
  let audioSeconds = 0;
  let ms = 0;
  let stopped = 0;
  const examples: { text: string; heard: string }[] = [];
  for (const text of texts) {
    const t = performance.now();
    const spoken = await synthesizeSpeech(synthesizer, text);
    ms += performance.now() - t;
    audioSeconds += spoken.samples.length / spoken.sampleRate;
    if (spoken.stopped) stopped++;
    const reference = words(text.replace(/[.,?!]/g, ' ')).join(' ');
    chars += reference.length;
    for (const [name, decoder] of decoders) {
      const heard = (await recognizeAudio(recognizer, spoken.samples, { decoder })).text;
      const score = heardBy.get(name)!;
      score.tally.add(reference, heard);
      score.charErrors += characterErrorRate(reference, heard) * reference.length;
      if (examples.length < 4 && name === 'greedy') examples.push({ text: reference, heard });
    }
  }
  const firstAudio = async (pieces: string[], gapMs: number) => {
    const text = pieces.join('');
    const maxFrames = speechFrameBudget(synthesizer.config.model, synthesizer.textToIds(text).length);
    const source = from(pieces).pipe(
      concatMap((p, i) => (i === 0 || gapMs === 0 ? of(p) : timer(gapMs).pipe(map(() => p)))),
    );
    const chunks = await lastValueFrom(source.pipe(speakText(synthesizer, { maxFrames }), toArray()));
    return chunks[0].ms;
  };
  const whole: number[] = [];
  const wordByWord: number[] = [];
  for (const text of texts.slice(0, 8)) {
    whole.push(await firstAudio([text], 0));
    wordByWord.push(await firstAudio(text.split(/(?<= )/), 20));
  }
  const result = {
    sentences: texts.length,
    roundTrip: [...heardBy].map(([decoder, score]) => ({
      decoder,
      wer: score.tally.rate,
      cer: round(score.charErrors / Math.max(1, chars), 4),
      words: score.tally.words,
    })),
    stopped,
    audioSeconds: round(audioSeconds, 1),
    realTimeFactor: round(ms / 1000 / audioSeconds, 4),
    timeToFirstAudioMs: {
      textWholeP50: round(percentile(whole, 0.5), 1),
      wordEvery20msP50: round(percentile(wordByWord, 0.5), 1),
      wordEvery20msMax: round(Math.max(...wordByWord), 1),
    },
    examples,
  };
  log(`synthesizer: ${JSON.stringify(result)}`);
  return result;
}

export type SpeechResult = Awaited<ReturnType<typeof runSpeechBench>>;

export async function runSpeechBench(s: SpeechSettings, log: (line: string) => void) {
  const utterances = renderHeldout(s.sentences);
  const recognizer = await loadSpeechRecognizer(RECOGNIZER);
  const synthesizer = await loadSpeechSynthesizer('models/specstream-speech-synthesizer');
  const loadBefore = loadavg()[0];
  try {
    const decoders = new Map<string, CtcDecoder>();
    for (const name of s.decoders) decoders.set(name, await decoderOf(name, recognizer));
    const recognition = [];
    for (const [name, decoder] of decoders) {
      recognition.push({ decoder: name, ...(await recognizerBench(recognizer, decoder, utterances, log)) });
    }
    const texts = utterances.filter((u) => !u.heldout_voice).map((u) => u.text);
    const synthesis = await synthesizerBench(synthesizer, recognizer, decoders, texts, log);
    return {
      date: new Date().toISOString(),
      machine: `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores`,
      backend: 'wasm',
      threads: kernelThreadCount(),
      load: { before: round(loadBefore, 2), after: round(loadavg()[0], 2) },
      recognition,
      synthesis,
    };
  } finally {
    recognizer.dispose();
    synthesizer.dispose();
  }
}
