import { fileURLToPath } from 'node:url';
import { lastValueFrom, reduce } from 'rxjs';
import { describe, expect, test } from 'vitest';
import { wavFileSource } from '../src/audio/index.js';

// eSpeak NG saying "the quick brown fox jumps over the lazy dog"; fixtures/README.md says how it was made.
const fixture = fileURLToPath(new URL('./fixtures/speech-16k.wav', import.meta.url));

describe('speech fixture', () => {
  test('is 16 kHz mono 16-bit, about 2.9 s long', async () => {
    const wav = await wavFileSource(fixture);
    expect(wav).toMatchObject({
      sampleRate: 16000,
      channels: 1,
      bitDepth: 16,
      sampleFormat: 'int',
      frameCount: 46536,
    });
    expect(wav.durationSeconds).toBeCloseTo(2.9085, 4);
  });

  test('is speech, not silence: overall RMS > 0.03, and loud and quiet 20 ms frames both occur', async () => {
    const wav = await wavFileSource(fixture, { chunkSamples: 320 }); // 20 ms chunks
    const frameRms = await lastValueFrom(
      wav.samples.pipe(
        reduce((acc: number[], chunk) => {
          let sum = 0;
          for (const x of chunk) sum += x * x;
          acc.push(Math.sqrt(sum / chunk.length));
          return acc;
        }, []),
      ),
    );
    const overall = Math.sqrt(frameRms.reduce((s, r) => s + r * r * 320, 0) / wav.frameCount);
    expect(overall).toBeGreaterThan(0.03);
    expect(overall).toBeLessThan(0.5);
    const voiced = frameRms.filter((r) => r > 0.02).length / frameRms.length;
    // Words fill most of the clip; pauses between some words and at the ends are quiet.
    expect(voiced).toBeGreaterThan(0.4);
    expect(voiced).toBeLessThan(0.98);
  });
});
