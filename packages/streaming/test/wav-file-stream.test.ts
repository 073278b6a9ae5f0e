import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { concat, from, lastValueFrom, Subject, throwError, toArray } from 'rxjs';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeWav } from '../src/audio/wav-encode.js';
import type { AudioChunk } from '../src/synthesize.js';
import { type WavFileProgress, wavFileStream } from '../src/wav-file-stream.js';

const RATE = 16000;
const dir = mkdtempSync(join(tmpdir(), 'specstream-wav-stream-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Chunks of 0.5·sin, of the given lengths (one empty), as the synthesizer emits them. */
function chunks(lengths: number[]): AudioChunk[] {
  let at = 0;
  return lengths.map((n) => {
    const samples = Float32Array.from({ length: n }, (_, i) => 0.5 * Math.sin((at + i) / 7));
    const chunk = { samples, sampleRate: RATE, frameStart: at / 64, ms: 0 };
    at += n;
    return chunk;
  });
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 30));

describe('wavFileStream', () => {
  it('writes each chunk as it comes and ends with the bytes writeWavFile would write', async () => {
    const path = join(dir, 'whole.wav');
    const input = chunks([640, 0, 64, 1000, 3]);
    const events = await lastValueFrom(from(input).pipe(wavFileStream(path, RATE), toArray()));
    expect(events.map((e) => e.done)).toEqual([false, false, false, false, true]);
    expect(events.map((e) => e.frameCount)).toEqual([640, 704, 1704, 1707, 1707]);
    const last = events.at(-1) as WavFileProgress;
    expect(last.durationSeconds).toBe(1707 / RATE);
    expect(
      Buffer.compare(
        readFileSync(path),
        Buffer.from(
          encodeWav(
            input.map((c) => c.samples),
            RATE,
            'int16',
          ).file,
        ),
      ),
    ).toBe(0);
    expect(statSync(path).size).toBe(last.fileBytes);
  });

  it('the samples are on disk when their progress arrives', async () => {
    const path = join(dir, 'live.wav');
    const audio = new Subject<AudioChunk>();
    const sizes: number[] = [];
    const done = new Promise<void>((resolve, reject) => {
      audio.pipe(wavFileStream(path, RATE)).subscribe({
        next: (e) => sizes.push(statSync(e.path).size),
        error: reject,
        complete: resolve,
      });
    });
    for (const chunk of chunks([100, 200])) audio.next(chunk);
    await settle();
    expect(sizes).toEqual([44 + 200, 44 + 600]);
    audio.complete();
    await done;
    expect(sizes).toEqual([44 + 200, 44 + 600, 44 + 600]);
  });

  it('an empty input gives a valid empty file', async () => {
    const path = join(dir, 'empty.wav');
    const events = await lastValueFrom(from<AudioChunk[]>([]).pipe(wavFileStream(path, RATE), toArray()));
    expect(events).toEqual([
      { path, sampleRate: RATE, frameCount: 0, durationSeconds: 0, fileBytes: 44, done: true },
    ]);
    expect(Buffer.compare(readFileSync(path), Buffer.from(encodeWav([], RATE, 'int16').file))).toBe(0);
  });

  it('on an input error or an unsubscription, the file holds what was written, with its header finalised', async () => {
    const input = chunks([300, 500]);
    const expected = Buffer.from(
      encodeWav(
        input.map((c) => c.samples),
        RATE,
        'int16',
      ).file,
    );
    const failedPath = join(dir, 'failed.wav');
    await expect(
      lastValueFrom(
        concat(
          from(input),
          throwError(() => new Error('synthesis failed')),
        ).pipe(wavFileStream(failedPath, RATE)),
      ),
    ).rejects.toThrow('synthesis failed');
    expect(Buffer.compare(readFileSync(failedPath), expected)).toBe(0);

    const stoppedPath = join(dir, 'stopped.wav');
    const open = new Subject<AudioChunk>();
    const subscription = open.pipe(wavFileStream(stoppedPath, RATE)).subscribe();
    for (const chunk of input) open.next(chunk);
    subscription.unsubscribe();
    await settle();
    expect(Buffer.compare(readFileSync(stoppedPath), expected)).toBe(0);
  });

  it('refuses chunks of another rate, and bad arguments', async () => {
    const path = join(dir, 'other-rate.wav');
    const [chunk] = chunks([10]);
    await expect(
      lastValueFrom(from([{ ...chunk, sampleRate: 22050 }]).pipe(wavFileStream(path, RATE))),
    ).rejects.toThrow(/expected audio chunks of 16000 Hz, got 22050/);
    expect(() => wavFileStream('', RATE)).toThrow(/path/);
    expect(() => wavFileStream(path, 0)).toThrow(/sampleRate/);
    await expect(
      lastValueFrom(from([chunk]).pipe(wavFileStream(join(dir, 'no-such-dir', 'x.wav'), RATE))),
    ).rejects.toThrow(/ENOENT/);
  });
});
