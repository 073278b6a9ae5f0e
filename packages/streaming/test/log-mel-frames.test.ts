import { concatFloat32 } from '@specstream/core';
import { rawLogMelFrames } from '@specstream/models';
import { from, lastValueFrom, toArray } from 'rxjs';
import { expect, test } from 'vitest';
import { logMelFrames } from '../src/log-mel-frames.js';

test('streamed log-mel frames are bit-identical to the offline computation, for random chunkings', async () => {
  let seed = 77;
  const rand = () => {
    seed = (seed * 48271) % 2147483647;
    return seed / 2147483647;
  };
  const audio = Float32Array.from(
    { length: 16000 * 1.3 },
    (_, i) => 0.3 * Math.sin(i * 0.05) + 0.05 * (rand() - 0.5),
  );
  const offline = rawLogMelFrames(audio, { padTo: false });
  for (let trial = 0; trial < 5; trial++) {
    const chunks: Float32Array[] = [];
    for (let at = 0; at < audio.length; ) {
      const n = Math.min(audio.length - at, 1 + Math.floor(rand() * 3000));
      chunks.push(audio.slice(at, at + n));
      at += n;
    }
    const parts = await lastValueFrom(from(chunks).pipe(logMelFrames(), toArray()));
    expect(concatFloat32(parts)).toEqual(offline);
  }
});

test('bad audio arrives as an error notification', async () => {
  await expect(lastValueFrom(from([Float32Array.of(Number.NaN, 0, 0)]).pipe(logMelFrames()))).rejects.toThrow(
    /NaN|finite/,
  );
});
