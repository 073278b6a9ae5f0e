import { fileURLToPath } from 'node:url';
import { concatFloat32, initBackend } from '@specstream/core';
import { loadWhisper, rawLogMelFrames, type Whisper } from '@specstream/models';
import * as tf from '@tensorflow/tfjs-core';
import { lastValueFrom, reduce, toArray } from 'rxjs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { fixturePath } from '../../../test-support/fixtures.js';
import { logMelFrames, streamingTranscription, wavFileSource, whisperTranscriber } from '../src/index.js';

/** End to end on real speech (espeak-ng, see fixtures/README.md) read from its WAV file. */
const SPEECH = fileURLToPath(new URL('./fixtures/speech-16k.wav', import.meta.url));
const WHISPER = fixturePath('whisper/');

describe('speech WAV → features → Whisper, streamed vs offline', () => {
  let whisper: Whisper;
  beforeAll(async () => {
    await initBackend({ backend: 'wasm' });
    whisper = await loadWhisper(WHISPER);
  });
  afterAll(() => whisper?.dispose());

  test('streamed log-mel of the file equals the offline log-mel of its samples', async () => {
    const wav = await wavFileSource(SPEECH, { chunkSamples: 1234 });
    expect(wav.sampleRate).toBe(16000);
    const all = concatFloat32(await lastValueFrom(wav.samples.pipe(toArray())));
    const streamed = concatFloat32(await lastValueFrom(wav.samples.pipe(logMelFrames(), toArray())));
    expect(streamed).toEqual(rawLogMelFrames(all, { padTo: false }));
  });

  test('streaming transcription commits exactly the offline transcription; tensors freed', async () => {
    const wav = await wavFileSource(SPEECH, { chunkSamples: 3200 });
    const all = concatFloat32(await lastValueFrom(wav.samples.pipe(toArray())));
    const { decoderStartTokenId, eosTokenId } = whisper.config;
    const transcribe = whisperTranscriber(whisper, {
      prompt: [decoderStartTokenId],
      eosTokenId,
      maxNewTokens: 6,
    });
    const before = tf.memory().numTensors;
    const offline = await transcribe(all);
    const committed = await lastValueFrom(
      wav.samples.pipe(
        streamingTranscription(transcribe, { stepSeconds: 1 }),
        reduce((ids: number[], e) => (e.type === 'committed' ? [...ids, ...e.tokens] : ids), []),
      ),
    );
    expect(committed).toEqual(offline);
    expect(tf.memory().numTensors).toBe(before);
  });
});
