import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { concatFloat32, InvalidArgumentError } from '@specstream/core';
import { firstValueFrom, lastValueFrom, take, toArray } from 'rxjs';
import { describe, expect, test } from 'vitest';
import { type PcmFormat, pcmReadableSource } from '../src/audio/index.js';
import { decodePcm } from '../src/audio/pcm-format.js';

/** Deterministic PRNG (mulberry32) so failures reproduce. */
function prng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `bytes` cut at random points (chunks of 1..maxChunk bytes), so most cuts fall inside a sample. */
function randomSplits(bytes: Uint8Array, rand: () => number, maxChunk: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let start = 0; start < bytes.length; ) {
    const length = 1 + Math.floor(rand() * maxChunk);
    chunks.push(Buffer.from(bytes.subarray(start, start + length)));
    start += length;
  }
  return chunks;
}

const read = (chunks: Buffer[], format: PcmFormat, channels = 1) =>
  lastValueFrom(
    pcmReadableSource(Readable.from(chunks), { format, sampleRate: 16000, channels }).samples.pipe(toArray()),
  );

describe('pcmReadableSource decoding', () => {
  test('known s16le and f32le values; stereo frames are averaged', async () => {
    const s16 = Buffer.alloc(8);
    for (const [i, v] of [0, 16384, -32768, 32767].entries()) s16.writeInt16LE(v, i * 2);
    expect(Array.from(concatFloat32(await read([s16], 's16le')))).toEqual(
      [0, 0.5, -1, 32767 / 32768].map(Math.fround),
    );
    expect(Array.from(concatFloat32(await read([s16], 's16le', 2)))).toEqual([0.25, Math.fround(-1 / 65536)]);
    const f32 = Buffer.alloc(12);
    for (const [i, v] of [0.25, -0.75, 1.5].entries()) f32.writeFloatLE(v, i * 4);
    expect(Array.from(concatFloat32(await read([f32], 'f32le')))).toEqual([0.25, -0.75, 1.5]);
  });

  test.each([
    ['s16le', 1],
    ['s16le', 2],
    ['f32le', 1],
    ['f32le', 3],
  ] as const)(
    'random chunk splits (inside samples too) give exactly the one-shot samples: %s × %i ch',
    async (format, channels) => {
      const rand = prng(format.length * 31 + channels);
      const width = format === 's16le' ? 2 : 4;
      const frames = 5000;
      const bytes = new Uint8Array(frames * channels * width);
      const view = new DataView(bytes.buffer);
      for (let i = 0; i < frames * channels; i++) {
        if (format === 's16le') view.setInt16(i * 2, Math.floor(rand() * 65536) - 32768, true);
        else view.setFloat32(i * 4, rand() * 2 - 1, true);
      }
      const oneShot = decodePcm(bytes, format, channels);
      expect(oneShot.length).toBe(frames);
      for (const maxChunk of [1, 3, 7, 1000]) {
        const splits = randomSplits(bytes, rand, maxChunk);
        expect(splits.some((c) => c.length % width !== 0)).toBe(true);
        const chunks = await read(splits, format, channels);
        expect(chunks.every((c) => c.length > 0)).toBe(true);
        expect(concatFloat32(chunks)).toEqual(oneShot);
      }
    },
  );

  test('a paused stream is resumed when subscribed', async () => {
    const readable = Readable.from([Buffer.from([0, 64])]);
    readable.pause();
    const chunks = await lastValueFrom(
      pcmReadableSource(readable, { format: 's16le', sampleRate: 8000 }).samples.pipe(toArray()),
    );
    expect(Array.from(concatFloat32(chunks))).toEqual([0.5]);
  });
});

describe('pcmReadableSource teardown', () => {
  const events = ['data', 'end', 'error', 'close'] as const;

  test('unsubscribing destroys an endless stream and removes every listener', async () => {
    const readable = new Readable({ read() {} });
    const before = events.map((e) => readable.listenerCount(e));
    readable.push(Buffer.alloc(64));
    const source = pcmReadableSource(readable, { format: 'f32le', sampleRate: 16000 });
    const first = await firstValueFrom(source.samples);
    expect(first.length).toBe(16);
    expect(readable.destroyed).toBe(true);
    expect(events.map((e) => readable.listenerCount(e))).toEqual(before);
    expect(before).toEqual([0, 0, 0, 0]);
  });

  test('unsubscribing from a file stream closes its file descriptor', async () => {
    const path = fileURLToPath(new URL('./fixtures/speech-16k.wav', import.meta.url));
    const file = createReadStream(path, { highWaterMark: 1024 });
    const closed = once(file, 'close');
    const chunks = await lastValueFrom(
      pcmReadableSource(file, { format: 's16le', sampleRate: 16000 }).samples.pipe(take(2), toArray()),
    );
    expect(chunks).toHaveLength(2);
    expect(file.destroyed).toBe(true);
    await closed;
    expect(events.map((e) => file.listenerCount(e))).toEqual([0, 0, 0, 0]);
  });

  test('after the stream ends the listeners are gone too', async () => {
    const readable = Readable.from([Buffer.alloc(4)]);
    await lastValueFrom(pcmReadableSource(readable, { format: 's16le', sampleRate: 8000 }).samples);
    expect(events.map((e) => readable.listenerCount(e))).toEqual([0, 0, 0, 0]);
  });
});

describe('pcmReadableSource errors', () => {
  test('a stream that ends inside a frame', async () => {
    await expect(read([Buffer.alloc(5)], 's16le')).rejects.toThrow(
      /ended inside a frame: 1 trailing bytes are not a whole s16le frame of 1 channel/,
    );
    await expect(read([Buffer.alloc(12)], 'f32le', 2)).rejects.toThrow(/4 trailing bytes .* of 2 channel/);
  });

  test('stream errors pass through', async () => {
    const readable = new Readable({
      read() {
        this.destroy(new Error('socket reset'));
      },
    });
    await expect(
      lastValueFrom(pcmReadableSource(readable, { format: 's16le', sampleRate: 8000 }).samples),
    ).rejects.toThrow('socket reset');
  });

  test('a stream destroyed by someone else mid-way, or before subscribing', async () => {
    const readable = new Readable({ read() {} });
    const samples = lastValueFrom(pcmReadableSource(readable, { format: 's16le', sampleRate: 8000 }).samples);
    readable.push(Buffer.alloc(2));
    setTimeout(() => readable.destroy(), 5);
    await expect(samples).rejects.toThrow(/the stream closed before it ended/);
    const gone = pcmReadableSource(readable, { format: 's16le', sampleRate: 8000 }).samples;
    await expect(lastValueFrom(gone)).rejects.toThrow(/already ended or destroyed/);
  });

  test('text chunks (setEncoding) are rejected', async () => {
    const readable = Readable.from([Buffer.from('abcd')]);
    readable.setEncoding('utf8');
    await expect(
      lastValueFrom(pcmReadableSource(readable, { format: 's16le', sampleRate: 8000 }).samples),
    ).rejects.toThrow(/must emit bytes, got a string/);
  });

  test('a Readable can be subscribed once', async () => {
    const source = pcmReadableSource(Readable.from([Buffer.alloc(2)]), { format: 's16le', sampleRate: 8000 });
    await lastValueFrom(source.samples);
    await expect(lastValueFrom(source.samples)).rejects.toThrow(/already read by an earlier subscription/);
  });

  test('bad options', () => {
    const r = () => Readable.from([]);
    expect(() => pcmReadableSource({} as Readable, { format: 's16le', sampleRate: 8000 })).toThrow(
      /readable must be a Node Readable stream/,
    );
    expect(() => pcmReadableSource(r(), { format: 's24le' as PcmFormat, sampleRate: 8000 })).toThrow(
      /format must be one of 's16le', 'f32le', got s24le/,
    );
    expect(() => pcmReadableSource(r(), { format: 's16le', sampleRate: 0 })).toThrow(
      /sampleRate must be an integer in \[1, 1000000\] Hz, got 0/,
    );
    expect(() => pcmReadableSource(r(), { format: 's16le', sampleRate: 8000, channels: 0 })).toThrow(
      InvalidArgumentError,
    );
  });
});
