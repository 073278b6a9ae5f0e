import { join } from 'node:path';
import { initBackend } from '@specstream/core';
import { loadWhisper, openSafetensors, type Whisper } from '@specstream/models';
import * as tf from '@tensorflow/tfjs-core';
import { from, lastValueFrom, toArray } from 'rxjs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { fixturePath } from '../../../test-support/fixtures.js';
import { createLocalAgreement } from '../src/local-agreement.js';
import { streamingTranscription, type Transcriber, type TranscriptEvent } from '../src/transcribe.js';
import { whisperTranscriber } from '../src/whisper-transcriber.js';

const committedOf = (events: TranscriptEvent[]) =>
  events.filter((e) => e.type === 'committed').flatMap((e) => e.tokens);

function chunked(audio: Float32Array, size: number): Float32Array[] {
  const out: Float32Array[] = [];
  for (let i = 0; i < audio.length; i += size) out.push(audio.slice(i, i + size));
  return out;
}

describe('LocalAgreement-2', () => {
  test('commits what two consecutive hypotheses agree on; the rest is partial', () => {
    const la = createLocalAgreement();
    expect(la.update([5, 6])).toEqual({ committed: [], partial: [5, 6] });
    expect(la.update([5, 6, 9])).toEqual({ committed: [5, 6], partial: [9] });
    // Whisper revises its guess: nothing new is agreed.
    expect(la.update([5, 6, 8, 1])).toEqual({ committed: [], partial: [8, 1] });
    expect(la.update([5, 6, 8, 1, 2])).toEqual({ committed: [8, 1], partial: [2] });
    expect(la.finish()).toEqual([2]);
    expect(la.committed).toEqual([5, 6, 8, 1, 2]);
  });

  test('after a trim, the re-transcribed committed tail is not committed twice', () => {
    const la = createLocalAgreement();
    la.update([1, 2, 3, 4]);
    la.update([1, 2, 3, 4, 7]); // commits 1 2 3 4
    la.trimmed(); // the buffer now starts inside "3"
    // The head 3 4 repeats the committed tail; 7 agrees with the previous partial.
    expect(la.update([3, 4, 7, 8])).toEqual({ committed: [7], partial: [8] });
    expect(la.update([3, 4, 7, 8, 9])).toEqual({ committed: [8], partial: [9] });
    // Hypotheses align to the commit point by length: revising a committed token (8 → 6) changes nothing.
    expect(la.update([3, 4, 7, 6, 9, 10])).toEqual({ committed: [9], partial: [10] });
    expect(la.committed).toEqual([1, 2, 3, 4, 7, 8, 9]);
  });
});

/**
 * A perfectly aligned fake recogniser: the audio is piecewise constant, each
 * 0.1 s piece holding one token id as its sample value; a run of at least
 * 25 ms is heard as its token.
 */
const fakeTranscriber: Transcriber = async (audio) => {
  const ids: number[] = [];
  let runStart = 0;
  for (let i = 1; i <= audio.length; i++) {
    if (i === audio.length || audio[i] !== audio[runStart]) {
      if (i - runStart >= 400) ids.push(audio[runStart]);
      runStart = i;
    }
  }
  return ids;
};

describe('streamingTranscription', () => {
  test('long audio with buffer trimming: every token committed once, in order (fake recogniser)', async () => {
    let seed = 9;
    const tokens: number[] = [];
    while (tokens.length < 400) {
      seed = (seed * 16807) % 2147483647;
      const id = 1 + (seed % 50);
      if (id !== tokens.at(-1)) tokens.push(id);
    }
    const audio = new Float32Array(tokens.length * 1600);
    for (const [i, id] of tokens.entries()) audio.fill(id, i * 1600, (i + 1) * 1600);
    const calls: number[] = [];
    const transcribe: Transcriber = async (buffer) => {
      calls.push(buffer.length);
      return fakeTranscriber(buffer);
    };
    // 40 s of audio, 3 s buffer limit: trimmed many times.
    const events = await lastValueFrom(
      from(chunked(audio, 2730)).pipe(
        streamingTranscription(transcribe, { stepSeconds: 0.5, maxBufferSeconds: 3, keepSeconds: 0.35 }),
        toArray(),
      ),
    );
    expect(committedOf(events)).toEqual(tokens);
    // The buffer is cut once it passes 3 s, so no call sees more than 3 s plus one step.
    expect(Math.max(...calls)).toBeLessThanOrEqual(3 * 16000 + 8000);
    expect(calls.length).toBe(Math.ceil(audio.length / 8000));
    expect(events.filter((e) => e.type === 'partial').length).toBeGreaterThan(40);
  });

  test('lossy mode drops the oldest waiting audio of a live source', async () => {
    const seen: number[] = [];
    const transcribe: Transcriber = async (buffer) => {
      seen.push(buffer.length);
      return [];
    };
    // 10 s arrive at once: lossless would transcribe 10 times; with 2 s of queue, the
    // first step (1 s) runs and then only the newest 2 s remain.
    const events = await lastValueFrom(
      from(chunked(new Float32Array(160000), 16000)).pipe(
        streamingTranscription(transcribe, { stepSeconds: 1, maxQueuedSeconds: 2 }),
        toArray(),
      ),
    );
    expect(seen).toEqual([16000, 32000, 48000]);
    expect(events.at(-1)?.droppedSeconds).toBe(7);
  });

  test('errors from the recogniser arrive as error notifications', async () => {
    const failing: Transcriber = async () => {
      throw new Error('decoder crashed');
    };
    const run = from([new Float32Array(20000)]).pipe(streamingTranscription(failing, { stepSeconds: 1 }));
    await expect(lastValueFrom(run)).rejects.toThrow('decoder crashed');
  });
});

describe('streaming Whisper transcription (HF fixture model)', () => {
  const dir = fixturePath('whisper/');
  let whisper: Whisper;
  let audio: Float32Array;

  beforeAll(async () => {
    await initBackend({ backend: 'wasm' });
    whisper = await loadWhisper(dir);
    const file = await openSafetensors(join(dir, 'reference.safetensors'));
    audio = (await file.readValues('audio')).values as Float32Array;
    await file.close();
  });
  afterAll(() => whisper?.dispose());

  test('the committed transcript of streamed audio equals offline transcription; no tensor leaks', async () => {
    const { decoderStartTokenId, eosTokenId } = whisper.config;
    const transcribe = whisperTranscriber(whisper, {
      prompt: [decoderStartTokenId],
      eosTokenId,
      maxNewTokens: 8,
    });
    const before = tf.memory().numTensors;
    const offline = await transcribe(audio);
    const events = await lastValueFrom(
      from(chunked(audio, 4000)).pipe(streamingTranscription(transcribe, { stepSeconds: 0.5 }), toArray()),
    );
    expect(committedOf(events)).toEqual(offline);
    expect(events.some((e) => e.type === 'partial')).toBe(true);
    // One hypothesis per 0.5 s (8000 samples) step, the last (the rest of the audio) commits
    // instead of giving a partial: 0.5, 1, 1.5 for the shared fixture's 2 s.
    const steps = Math.ceil(audio.length / 8000);
    const partialSeconds = Array.from({ length: steps - 1 }, (_, i) => (i + 1) * 0.5);
    expect(events.filter((e) => e.type === 'partial').map((e) => e.audioSeconds)).toEqual(partialSeconds);
    expect(tf.memory().numTensors).toBe(before);
  });
});
