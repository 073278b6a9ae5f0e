import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { markdownTable, replaceMarkedSection } from '../../packages/speculative/bench/pair-report.js';
import type { SpeechResult, SpeechSettings } from '../../packages/streaming/bench/speech-bench.js';
import { benchCommit } from '../../scripts/lib/bench-commit.js';

/** bench-results/speech.json and RESULTS.md's speech section, from packages/streaming/bench/speech-bench.ts's run. */
export function speechMarkdownSection(r: SpeechResult & { commit: ReturnType<typeof benchCommit> }): string {
  const syn = r.synthesis;
  const first = r.recognition[0];
  const met = (ok: boolean) => (ok ? 'met' : 'missed');
  const rows: string[][] = [];
  for (const rec of r.recognition) {
    const d = rec.decoder;
    rows.push(
      [
        `recognizer WER, trained voices, ${d} (offline / streamed 320 ms)`,
        `${pct2(rec.wer.trainedVoices.offline)} / ${pct2(rec.wer.trainedVoices.streamed)}`,
        `≤ 10%: ${met(Math.max(rec.wer.trainedVoices.offline, rec.wer.trainedVoices.streamed) <= 0.1)}`,
      ],
      [
        `recognizer WER, held-out voice, ${d} (offline / streamed)`,
        `${pct2(rec.wer.heldoutVoice.offline)} / ${pct2(rec.wer.heldoutVoice.streamed)}`,
        `≤ 25%: ${met(Math.max(rec.wer.heldoutVoice.offline, rec.wer.heldoutVoice.streamed) <= 0.25)}`,
      ],
      [
        `streamed texts differing from offline, ${d}`,
        `${rec.streamedTextsDifferingFromOffline} of ${rec.utterances}`,
        `streamed WER within 1% of offline: ${met(Math.abs(rec.wer.trainedVoices.streamed - rec.wer.trainedVoices.offline) <= 0.01 && Math.abs(rec.wer.heldoutVoice.streamed - rec.wer.heldoutVoice.offline) <= 0.01)}`,
      ],
      [
        `recognizer real-time factor, streamed, ${d}`,
        `${rec.realTimeFactor.streamed}`,
        `≤ 0.1: ${met(rec.realTimeFactor.streamed <= 0.1)}`,
      ],
      [
        `partial latency, ${d}: compute p50 / p95; chunk + p95`,
        `${rec.partialLatencyMs.computeP50} / ${rec.partialLatencyMs.computeP95} ms; ${rec.partialLatencyMs.worstCaseP95} ms`,
        `≤ 400 ms: ${met(rec.partialLatencyMs.worstCaseP95 <= 400)}`,
      ],
    );
  }
  for (const trip of syn.roundTrip) {
    rows.push([
      `synthesizer round trip WER (CER), heard with ${trip.decoder}`,
      `${pct2(trip.wer)} (${pct(trip.cer)})`,
      `≤ 20%: ${met(trip.wer <= 0.2)}`,
    ]);
  }
  rows.push(
    [
      'synthesizer time to first audio: text whole / a word every 20 ms',
      `${syn.timeToFirstAudioMs.textWholeP50} / ${syn.timeToFirstAudioMs.wordEvery20msP50} ms (max ${syn.timeToFirstAudioMs.wordEvery20msMax})`,
      `≤ 300 ms: ${met(syn.timeToFirstAudioMs.wordEvery20msMax <= 300)}`,
    ],
    [
      'synthesizer real-time factor (Griffin-Lim included)',
      `${syn.realTimeFactor}`,
      `≤ 0.3: ${met(syn.realTimeFactor <= 0.3)}`,
    ],
  );
  return [
    `Shipped speech models on ${r.backend} (${r.threads} threads), ${r.machine}, commit ${r.commit.hash}${r.commit.dirty ? ' (dirty)' : ''}, ${r.date.slice(0, 10)}; load ${r.load.before} → ${r.load.after}. ${first.utterances} held-out utterances (${first.audioSeconds} s): sentences never trained on, half in trained voices, half in flite kal16 (never trained on). The beam's character and word LM weights, length bonus and OOV penalty were chosen by \`bench/speech/tune-beam.ts\` on other held-out sentences (41–289, trained voices), so none of these sentences informed them${first.utterances / 2 > 40 ? " (this run's sentences after the 40th are among them)" : ''}. Each utterance is followed by the recognizer's ${first.tailPaddingSeconds} s tail padding (faint noise that lets the causal encoder emit the last word), whose compute the real-time factors include and whose seconds they do not count.`,
    '',
    ...markdownTable(['measure', 'value', 'goal (issue 22)'], rows, [false, false, false]),
    '',
    `Round trip examples (greedy): ${syn.examples.map((e) => `"${e.text}" → "${e.heard}"`).join('; ')}.`,
  ].join('\n');
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
// Word error rates to two places, so a rate just over a goal does not print as the goal.
const pct2 = (x: number) => `${(100 * x).toFixed(2)}%`;

const SPEECH_INTRO = [
  '## Speech (issue 22)',
  '',
  "`pnpm bench --only speech --backends wasm` (packages/streaming/bench/speech-bench.ts, written by bench/speech/speech-results.ts). Peers, for orientation only: the data differ (real read speech there, synthetic held-out sentences here) and so do the models (70 M against 2 × 6.6 M parameters). icefall's streaming Zipformer transducer, the family sherpa-onnx runs (pruned_transducer_stateless7_streaming, LibriSpeech + GigaSpeech), reports 2.47% / 6.13% WER on LibriSpeech test-clean / test-other at 320 ms chunks, greedy, chunk-wise (icefall egs/librispeech/ASR/RESULTS.md). Whisper-Streaming (Macháček et al., 2023) reports 3.3 s latency on long-form speech with local agreement.",
].join('\n');

export function writeSpeechResults(run: SpeechResult, s: SpeechSettings, log: (line: string) => void): void {
  const result = { ...run, commit: benchCommit() };
  mkdirSync('bench-results', { recursive: true });
  writeFileSync('bench-results/speech.json', `${JSON.stringify(result, null, 2)}\n`);
  log('wrote bench-results/speech.json');
  let doc = existsSync(s.results) ? readFileSync(s.results, 'utf8') : '# Results\n';
  if (!doc.includes('<!-- speech:wasm:start -->')) doc = `${doc.trimEnd()}\n\n${SPEECH_INTRO}\n`;
  doc = replaceMarkedSection(doc, 'speech:wasm', speechMarkdownSection(result));
  writeFileSync(s.results, doc);
  log(`wrote ${s.results} (section speech:wasm)`);
}
