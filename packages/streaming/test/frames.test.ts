import { InvalidArgumentError } from '@specstream/core';
import { from, lastValueFrom, toArray } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, test } from 'vitest';
import { frames } from '../src/frames.js';

const f = (...values: number[]) => Float32Array.from(values);
const scheduler = () => new TestScheduler((actual, expected) => expect(actual).toEqual(expected));

describe('frames (marbles)', () => {
  test('a window is emitted when its last sample arrives; hop < size overlaps; the tail is dropped', () => {
    scheduler().run(({ cold, expectObservable }) => {
      const input = cold('a-b--c|', { a: f(0, 1, 2), b: f(3), c: f(4, 5, 6) });
      expectObservable(input.pipe(frames({ size: 4, hop: 2 }))).toBe('--x--y|', {
        x: f(0, 1, 2, 3),
        y: f(2, 3, 4, 5),
      });
    });
  });

  test("last: 'pad' emits every window that starts before the end, zero-padded, at completion", () => {
    scheduler().run(({ cold, expectObservable }) => {
      const input = cold('a-b--c|', { a: f(0, 1, 2), b: f(3), c: f(4, 5, 6) });
      expectObservable(input.pipe(frames({ size: 4, hop: 2, last: 'pad' }))).toBe('--x--y(zw|)', {
        x: f(0, 1, 2, 3),
        y: f(2, 3, 4, 5),
        z: f(4, 5, 6, 0),
        w: f(6, 0, 0, 0),
      });
    });
  });

  test('hop > size skips samples; one chunk can complete several windows', () => {
    scheduler().run(({ cold, expectObservable }) => {
      // A group's characters count as frames: b arrives at frame 6, after the 5-character group.
      const input = cold('a-----b|', { a: f(0, 1, 2, 3, 4, 5, 6, 7), b: f(8, 9, 10) });
      expectObservable(input.pipe(frames({ size: 2, hop: 3 }))).toBe('(xyz)-w|', {
        x: f(0, 1),
        y: f(3, 4),
        z: f(6, 7),
        w: f(9, 10),
      });
    });
  });

  test('errors pass through', () => {
    scheduler().run(({ cold, expectObservable }) => {
      const input = cold('a-#', { a: f(1, 2) }, new Error('mic unplugged'));
      expectObservable(input.pipe(frames({ size: 2, hop: 1 }))).toBe(
        'x-#',
        { x: f(1, 2) },
        new Error('mic unplugged'),
      );
    });
  });
});

describe('frames (property: chunking does not matter)', () => {
  let seed = 12345;
  const rand = () => {
    seed = (seed * 48271) % 2147483647;
    return seed / 2147483647;
  };

  test('random chunkings of the same audio give identical frames, equal to direct slicing', async () => {
    for (let trial = 0; trial < 60; trial++) {
      const length = Math.floor(rand() * 3000);
      const audio = Float32Array.from({ length }, () => rand() * 2 - 1);
      const size = 1 + Math.floor(rand() * 400);
      const hop = 1 + Math.floor(rand() * 400);
      const last = rand() < 0.5 ? 'drop' : 'pad';
      const expected: Float32Array[] = [];
      for (let s = 0; last === 'pad' ? s < length : s + size <= length; s += hop) {
        const w = new Float32Array(size);
        w.set(audio.subarray(s, Math.min(length, s + size)));
        expected.push(w);
      }
      const chunks: Float32Array[] = [];
      for (let at = 0; at < length; ) {
        const n = Math.min(length - at, Math.floor(rand() * 700));
        chunks.push(audio.slice(at, at + n)); // n may be 0: empty chunks are legal
        at += n;
      }
      const got = await lastValueFrom(from(chunks).pipe(frames({ size, hop, last }), toArray()));
      expect(got).toEqual(expected);
    }
  });
});

test('bad options are named', () => {
  expect(() => frames({ size: 0, hop: 1 })).toThrow(InvalidArgumentError);
  expect(() => frames({ size: 4, hop: 1.5 })).toThrow(/hop must be a positive integer, got 1.5/);
  expect(() => frames({ size: 4, hop: 2, last: 'zero' as never })).toThrow(/last must be 'drop' or 'pad'/);
});
