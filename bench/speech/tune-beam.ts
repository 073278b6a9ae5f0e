/**
 * Tunes the CTC beam's LM weight α, length bonus β, out-of-vocabulary penalty γ and word LM
 * weight δ (packages/models/src/speech/ctc-beam.ts, CTC_BEAM_LM_WEIGHT, CTC_BEAM_LENGTH_BONUS,
 * CTC_BEAM_OOV_PENALTY and CTC_BEAM_WORD_LM_WEIGHT) for the shipped recognizer, on held-out sentences
 * the speech benchmark does not use: sentences 41 to 289 (all the rest) of
 * models/speech-heldout-sentences.json (the benchmark reads the first 40), in their trained voices only, so neither the benchmark's
 * sentences nor the held-out voice inform the choice. It prints every (α, β, γ, δ) point's WER, the
 * held-out voice's beside it for reading only, and the point with the lowest trained-voice WER.
 *
 *   node --conditions=@specstream/source --import tsx bench/speech/tune-beam.ts \
 *     [--skip 40] [--count 249] [--weights 0.5,0.7,...] [--bonuses 0.5,1,...] [--oov-penalties 0]
 *     [--word-weights 0,0.3,...] [--word-order 3]
 *     [--beam 32] [--order 8] [--tail-padding 0.3] [--recognizer models/specstream-speech-recognizer]
 *
 * The default grid (42 points over 498 utterances) takes about 9 minutes on 2 cores.
 *
 * Needs tools/speech/fetch-tts.sh (the Debian TTS engines) for the rendering.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend } from '@specstream/core';
import {
  CHAR_LM_DEFAULT_ORDER,
  CTC_BEAM_OOV_PENALTY,
  CTC_BEAM_WIDTH,
  CTC_BEAM_WORD_LM_WEIGHT,
  editDistance,
  loadSpeechRecognizer,
  loadSpeechRecognizerLm,
  RECOGNIZER_TAIL_PADDING_SECONDS,
  rawLogMelFrames,
  recognizerLogits,
  startCtcDecoding,
  transcriptOf,
  WORD_LM_DEFAULT_ORDER,
  withTailPadding,
} from '@specstream/models';
import { decodeWav } from '@specstream/streaming';

const { values } = parseArgs({
  options: {
    recognizer: { type: 'string', default: 'models/specstream-speech-recognizer' },
    skip: { type: 'string', default: '40' },
    count: { type: 'string', default: '249' },
    weights: { type: 'string', default: '0.5,0.7,0.9,1.1,1.3,1.5,1.7' },
    bonuses: { type: 'string', default: '0.5,1,1.5,2,2.5,3' },
    'oov-penalties': { type: 'string', default: String(CTC_BEAM_OOV_PENALTY) },
    'word-weights': { type: 'string', default: String(CTC_BEAM_WORD_LM_WEIGHT) },
    'word-order': { type: 'string', default: String(WORD_LM_DEFAULT_ORDER) },
    beam: { type: 'string', default: String(CTC_BEAM_WIDTH) },
    order: { type: 'string', default: String(CHAR_LM_DEFAULT_ORDER) },
    'tail-padding': { type: 'string', default: String(RECOGNIZER_TAIL_PADDING_SECONDS) },
  },
});
const numbers = (flag: string, text: string) =>
  text.split(',').map((v) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n))
      throw new Error(`--${flag} takes numbers separated by commas, got ${text}`);
    return n;
  });
const [skip, count, beamWidth, order, tailPaddingSeconds, wordOrder] = [
  'skip',
  'count',
  'beam',
  'order',
  'tail-padding',
  'word-order',
].map((flag) => numbers(flag, values[flag as 'skip'])[0]);
const weights = numbers('weights', values.weights);
const bonuses = numbers('bonuses', values.bonuses);
const penalties = numbers('oov-penalties', values['oov-penalties']);
const wordWeights = numbers('word-weights', values['word-weights']);
const RECOGNIZER = values.recognizer;

if (!existsSync('.tts/root')) execFileSync('bash', ['tools/speech/fetch-tts.sh'], { stdio: 'inherit' });
const dir = join(tmpdir(), `specstream-speech-tune-${skip}-${count}`);
if (!existsSync(join(dir, 'manifest.json'))) {
  const args = [
    'tools/speech/render_heldout.py',
    '--out',
    dir,
    '--skip',
    String(skip),
    '--count',
    String(count),
  ];
  execFileSync('python3', args, { stdio: 'inherit' });
}
const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as {
  wav: string;
  transcript: string;
  heldout_voice: boolean;
}[];

await initBackend({ backend: 'wasm' });
const recognizer = await loadSpeechRecognizer(RECOGNIZER);
const lm = await loadSpeechRecognizerLm(RECOGNIZER, recognizer.config, { order, wordOrder });
if (lm === undefined) throw new Error(`${RECOGNIZER} has no LM text: nothing to tune`);
const { nFft, hop, encoder } = recognizer.config;
// The encoder's logits do not depend on α or β: compute them once per utterance.
const utterances = [];
for (const u of manifest) {
  const samples = decodeWav(readFileSync(join(dir, u.wav)), u.wav).mono;
  // The tail padding recognizeAudio and the stream add (tail-padding.ts).
  const padded = withTailPadding(samples, tailPaddingSeconds, recognizer.config.sampleRate);
  const frames = rawLogMelFrames(padded, { padTo: false, nMels: encoder.nMels, nFft, hop });
  utterances.push({ ...u, logits: await recognizerLogits(recognizer, frames) });
}

const words = (text: string) => text.split(/\s+/).filter((w) => w !== '');
const rows: {
  lmWeight: number;
  lengthBonus: number;
  oovPenalty: number;
  wordLmWeight: number;
  trained: number;
  heldout: number;
}[] = [];
const grid = weights.flatMap((lmWeight) =>
  bonuses.flatMap((lengthBonus) =>
    penalties.flatMap((oovPenalty) =>
      wordWeights.map((wordLmWeight) => ({ lmWeight, lengthBonus, oovPenalty, wordLmWeight })),
    ),
  ),
);
for (const { lmWeight, lengthBonus, oovPenalty, wordLmWeight } of grid) {
  const errors = { trained: [0, 0], heldout: [0, 0] };
  for (const u of utterances) {
    const decoding = startCtcDecoding(
      { beamWidth, lm, lmWeight, lengthBonus, oovPenalty, wordLmWeight },
      encoder.vocabSize,
    );
    decoding.push(u.logits);
    const heard = transcriptOf(recognizer, decoding.finish()).text;
    const tally = errors[u.heldout_voice ? 'heldout' : 'trained'];
    tally[0] += editDistance(words(u.transcript), words(heard));
    tally[1] += words(u.transcript).length;
  }
  const row = {
    lmWeight,
    lengthBonus,
    oovPenalty,
    wordLmWeight,
    trained: errors.trained[0] / errors.trained[1],
    heldout: errors.heldout[0] / errors.heldout[1],
  };
  rows.push(row);
  console.log(
    `α ${lmWeight} β ${lengthBonus} γ ${oovPenalty} δ ${wordLmWeight}: WER trained voices ${(100 * row.trained).toFixed(2)}%, held-out voice ${(100 * row.heldout).toFixed(2)}%`,
  );
}
const best = rows.reduce((a, b) => (b.trained < a.trained ? b : a));
console.log(
  `best on trained voices, sentences ${skip + 1}–${skip + count}: α ${best.lmWeight} β ${best.lengthBonus} γ ${best.oovPenalty} δ ${best.wordLmWeight} ` +
    `(${(100 * best.trained).toFixed(2)}%; held-out voice ${(100 * best.heldout).toFixed(2)}%)`,
);
process.exit(0);
