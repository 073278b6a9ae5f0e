// The speech models shipped in models/ (tools/train/train_speech.py, models/SPEECH.md). The
// recognizer is an ensemble of two trained recognizers (config.json's ensemble). Each training run
// wrote, beside its recognizer, held-out WAVs (sentences never trained on; two in flite's kal16, a
// voice never trained on) with their texts, the PyTorch twin's greedy transcripts, and for one of
// each kind the twin's raw log-mel and logits from the exported f16 weights: each member must
// compute the same logits and transcripts, and the ensemble transcribe the speech.
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { initBackend } from '@specstream/core';
import {
  CHAR_LM_DEFAULT_ORDER,
  type CharNgramLm,
  CTC_BEAM_LENGTH_BONUS,
  CTC_BEAM_LM_WEIGHT,
  CTC_BEAM_OOV_PENALTY,
  CTC_BEAM_WIDTH,
  CTC_BEAM_WORD_LM_WEIGHT,
  characterErrorRate,
  editDistance,
  loadSpeechRecognizer,
  loadSpeechRecognizerLm,
  loadSpeechSynthesizer,
  recognizeAudio,
  recognizerLogits,
  type SpeechRecognizer,
  type SpeechSynthesizer,
  synthesizeSpeech,
} from '@specstream/models';
import * as tf from '@tensorflow/tfjs-core';
import { from, lastValueFrom, toArray } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maxAbsDiff } from '../../../test-support/max-abs-diff.js';
import { shippedModel } from '../../../test-support/shipped-models.js';
import { decodeWav } from '../src/audio/wav-decode.js';
import { ctcTranscription } from '../src/ctc-transcription.js';

const RECOGNIZER = shippedModel('specstream-speech-recognizer');
const REFERENCE = join(RECOGNIZER, 'reference');
const SYNTHESIZER = shippedModel('specstream-speech-synthesizer');

interface Reference {
  wav: string;
  voice: string;
  transcript: string;
  hypothesis: string;
  mel_file?: string;
  mel_frames?: number;
  logits?: number[][];
}
const references = JSON.parse(readFileSync(join(REFERENCE, 'reference.json'), 'utf8')) as Reference[];
/** Each ensemble member and what its training run recorded (the second run's kal16 WAVs are the first's). */
const MEMBERS: [string, Reference[]][] = [
  ['model.safetensors', references],
  [
    'model-gnuspeech-mix.safetensors',
    JSON.parse(readFileSync(join(REFERENCE, 'reference-gnuspeech-mix.json'), 'utf8')) as Reference[],
  ],
];
const MEMBER_REFERENCES = MEMBERS.flatMap(([member, refs]) => refs.map((r) => ({ member, ...r })));
const heldoutVoice = (r: Reference) => r.voice.startsWith('flite:kal16');

const words = (text: string) => text.split(' ').filter((w) => w !== '');

/** What `specstream transcribe` decodes with: the tuned beam and the folder's character LM. */
async function cliDecoder(recognizer: SpeechRecognizer) {
  const lm = (await loadSpeechRecognizerLm(RECOGNIZER, recognizer.config)) as CharNgramLm;
  return {
    beamWidth: CTC_BEAM_WIDTH,
    lm,
    lmWeight: CTC_BEAM_LM_WEIGHT,
    lengthBonus: CTC_BEAM_LENGTH_BONUS,
    oovPenalty: CTC_BEAM_OOV_PENALTY,
    wordLmWeight: CTC_BEAM_WORD_LM_WEIGHT,
  };
}

async function wavSamples(name: string): Promise<Float32Array> {
  const wav = decodeWav(new Uint8Array(await readFile(join(REFERENCE, name))), name);
  return wav.mono;
}

describe('shipped speech recognizer', () => {
  let recognizer: SpeechRecognizer;
  beforeAll(async () => {
    await initBackend({ backend: 'wasm' });
    recognizer = await loadSpeechRecognizer(RECOGNIZER);
  });
  afterAll(() => recognizer?.dispose());

  const melOf = (r: Reference) => {
    const bytes = readFileSync(join(REFERENCE, r.mel_file!));
    return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  };

  it('is the ensemble config.json lists', () => {
    expect(recognizer.config.ensemble).toEqual(MEMBERS.map(([member]) => member));
  });

  it.each(MEMBER_REFERENCES.filter((r) => r.mel_file))(
    '$member: logits on the twin’s log-mel of $wav match PyTorch’s (≤ 1e-4)',
    async (r) => {
      const member = await loadSpeechRecognizer(RECOGNIZER, { member: r.member });
      try {
        const mel = melOf(r);
        expect(mel.length).toBe(r.mel_frames! * member.config.encoder.nMels);
        const before = tf.memory().numTensors;
        const logits = await recognizerLogits(member, mel);
        expect(tf.memory().numTensors).toBe(before);
        const expected = Float32Array.from(r.logits!.flat());
        expect(logits.length).toBe(expected.length);
        expect(maxAbsDiff(logits, expected)).toBeLessThan(1e-4);
      } finally {
        member.dispose();
      }
    },
  );

  it('the ensemble’s logits are the mean of the twins’ log-softmaxed logits', async () => {
    const r = references.find((x) => x.mel_file && heldoutVoice(x))!;
    const twins = MEMBERS.map(([, refs]) => refs.find((x) => x.wav === r.wav)!.logits!);
    const logSoftmax = (row: number[]) => {
      const max = Math.max(...row);
      const logSum = max + Math.log(row.reduce((sum, x) => sum + Math.exp(x - max), 0));
      return row.map((x) => x - logSum);
    };
    const expected = Float32Array.from(
      twins[0].flatMap((_, f) => {
        const rows = twins.map((logits) => logSoftmax(logits[f]));
        return rows[0].map((_, i) => rows.reduce((sum, row) => sum + row[i], 0) / rows.length);
      }),
    );
    const logits = await recognizerLogits(recognizer, melOf(r));
    expect(maxAbsDiff(logits, expected)).toBeLessThan(1e-4);
  });

  it.each(MEMBER_REFERENCES)('$member: transcribes $wav ($voice) as the PyTorch twin does', async (r) => {
    const member = await loadSpeechRecognizer(RECOGNIZER, { member: r.member });
    try {
      // The twin read the audio alone, without the tail padding.
      const text = (await recognizeAudio(member, await wavSamples(r.wav), { tailPaddingSeconds: 0 })).text;
      // Our log-mel and PyTorch's differ by ~1e-5, which can flip a near-tie between two labels.
      expect(characterErrorRate(r.hypothesis, text)).toBeLessThan(0.03);
    } finally {
      member.dispose();
    }
  });

  it('streamed in 320 ms chunks, gives the offline transcript; tensors freed', async () => {
    const samples = await wavSamples(references[0].wav);
    const offline = (await recognizeAudio(recognizer, samples)).text;
    const before = tf.memory().numTensors;
    const chunk = 5120;
    const chunks = Array.from({ length: Math.ceil(samples.length / chunk) }, (_, i) =>
      samples.subarray(i * chunk, (i + 1) * chunk),
    );
    const events = await lastValueFrom(from(chunks).pipe(ctcTranscription(recognizer), toArray()));
    const final = events.at(-1)!;
    expect(final.type).toBe('final');
    expect(final.text).toBe(offline);
    expect(events.filter((e) => e.type === 'partial').length).toBeGreaterThan(1);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('the CLI’s beam with the shipped LM makes fewer word errors than greedy, streamed = offline; tensors freed', async () => {
    const decoder = await cliDecoder(recognizer);
    expect(decoder.lm.order).toBe(CHAR_LM_DEFAULT_ORDER);
    let greedyErrors = 0;
    let beamErrors = 0;
    const before = tf.memory().numTensors;
    for (const r of references.filter((x) => !heldoutVoice(x))) {
      const samples = await wavSamples(r.wav);
      const greedy = (await recognizeAudio(recognizer, samples)).text;
      const beam = await recognizeAudio(recognizer, samples, { decoder });
      greedyErrors += editDistance(words(r.transcript), words(greedy));
      beamErrors += editDistance(words(r.transcript), words(beam.text));
      const chunks = Array.from({ length: Math.ceil(samples.length / 5120) }, (_, i) =>
        samples.subarray(i * 5120, (i + 1) * 5120),
      );
      const events = await lastValueFrom(
        from(chunks).pipe(ctcTranscription(recognizer, { decoder }), toArray()),
      );
      expect(events.at(-1)).toMatchObject({ type: 'final', text: beam.text, words: beam.words });
    }
    expect(tf.memory().numTensors).toBe(before);
    // Measured (the 2026-12-07 ensemble, with or without the tail padding, either LM text and the
    // word LM): 1 word error greedy, none with the beam, the LMs and the OOV penalty, of 35 words
    // (the first member alone: 6 and 1). α, β, γ and δ were tuned on other sentences
    // (bench/speech/tune-beam.ts: 41–289).
    expect(beamErrors).toBeLessThanOrEqual(greedyErrors / 2);
  });

  // The bounds below are the shipped model's (a random or broken one scores ~100%), not the
  // issue's goals, which the benchmark measures on 80 utterances (RESULTS.md).
  const wordErrors = async (refs: Reference[], decoder?: Parameters<typeof recognizeAudio>[2]) => {
    let errors = 0;
    let total = 0;
    for (const r of refs) {
      const text = (await recognizeAudio(recognizer, await wavSamples(r.wav), decoder)).text;
      errors += editDistance(words(r.transcript), words(text));
      total += words(r.transcript).length;
    }
    return errors / total;
  };

  it('transcribes held-out sentences in trained voices, greedy (WER ≤ 15%; measured 3%)', async () => {
    expect(await wordErrors(references.filter((x) => !heldoutVoice(x)))).toBeLessThanOrEqual(0.15);
  });

  it('transcribes the committed held-out-voice WAVs with the CLI’s decoder under the issue’s 25% WER (measured 11%)', async () => {
    // Issue 22's bound for the held-out voice, on the two WAVs the training run committed: 4
    // word errors of 35 (11.4%) with the 2026-12-07 ensemble, the tail padding, the larger LM
    // text and the word LM (5 without the word LM; the first member alone, with the decoder tuned
    // for it: 5; the first session's models: 8); a ninth would fail it. On the benchmark's 40
    // sentences the same decoder does worse, 24.95% (RESULTS.md), just inside the same goal.
    const decoder = await cliDecoder(recognizer);
    expect(await wordErrors(references.filter(heldoutVoice), { decoder })).toBeLessThanOrEqual(0.25);
  });
});

describe('shipped speech synthesizer, heard by the shipped recognizer', () => {
  let recognizer: SpeechRecognizer;
  let synthesizer: SpeechSynthesizer;
  beforeAll(async () => {
    await initBackend({ backend: 'wasm' });
    recognizer = await loadSpeechRecognizer(RECOGNIZER);
    synthesizer = await loadSpeechSynthesizer(SYNTHESIZER);
  });
  afterAll(() => {
    recognizer?.dispose();
    synthesizer?.dispose();
  });

  it('speaks held-out sentences so that the recognizer reads them back (greedy CER ≤ 20%, beam + LM WER ≤ 25%)', async () => {
    const sentences = references.filter((r) => !heldoutVoice(r)).map((r) => r.transcript);
    const decoder = await cliDecoder(recognizer);
    const before = tf.memory().numTensors;
    let characterErrors = 0;
    let characters = 0;
    let wordErrors = 0;
    let wordCount = 0;
    for (const text of sentences) {
      const spoken = await synthesizeSpeech(synthesizer, `${text}.`);
      expect(spoken.stopped).toBe(true);
      const greedy = (await recognizeAudio(recognizer, spoken.samples)).text;
      characterErrors += characterErrorRate(text, greedy) * text.length;
      characters += text.length;
      const beam = (await recognizeAudio(recognizer, spoken.samples, { decoder })).text;
      wordErrors += editDistance(words(text), words(beam));
      wordCount += words(text).length;
    }
    expect(tf.memory().numTensors).toBe(before);
    // Measured with the 2026-12-07 ensemble: greedy CER 4%, the CLI's decoder 4 word errors of
    // 35.
    // Noise or a broken synthesizer is heard as ~100%. The 20% round-trip goal is the
    // benchmark's (40 sentences, RESULTS.md), not this two-sentence check's.
    expect(characterErrors / characters).toBeLessThan(0.2);
    expect(wordErrors / wordCount).toBeLessThanOrEqual(0.25);
  });
});
