import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidArgumentError } from '@specstream/core';
import { firstValueFrom, lastValueFrom, take, toArray } from 'rxjs';
import { describe, expect, test } from 'vitest';
import { asyncIterableSource } from '../src/audio/index.js';

const f = (...values: number[]) => Float32Array.from(values);

describe('asyncIterableSource', () => {
  test('emits every chunk in order, then completes; each subscription iterates afresh', async () => {
    let iterations = 0;
    const iterable = {
      async *[Symbol.asyncIterator]() {
        iterations++;
        yield f(1, 2);
        await sleep(1);
        yield f(3);
      },
    };
    const source = asyncIterableSource(iterable);
    expect(await lastValueFrom(source.pipe(toArray()))).toEqual([f(1, 2), f(3)]);
    expect(await lastValueFrom(source.pipe(toArray()))).toEqual([f(1, 2), f(3)]);
    expect(iterations).toBe(2);
  });

  test('unsubscribing calls return() at once, even while next() is still pending', async () => {
    const calls: string[] = [];
    let pending = 0;
    const iterator: AsyncIterator<Float32Array> = {
      next: () => {
        calls.push('next');
        // The first value comes at once; the next never does (a silent microphone).
        return pending++ === 0 ? Promise.resolve({ done: false, value: f(0.5) }) : new Promise(() => {});
      },
      return: async () => {
        calls.push('return');
        return { done: true, value: undefined };
      },
    };
    const received: Float32Array[] = [];
    const subscription = asyncIterableSource({ [Symbol.asyncIterator]: () => iterator }).subscribe((chunk) =>
      received.push(chunk),
    );
    await expect.poll(() => calls).toEqual(['next', 'next']);
    expect(received).toEqual([f(0.5)]);
    subscription.unsubscribe();
    expect(calls).toEqual(['next', 'next', 'return']);
  });

  test('unsubscribing right after a value stops before pulling another', async () => {
    let pulls = 0;
    async function* counted() {
      for (;;) {
        pulls++;
        yield f(pulls);
      }
    }
    expect(await firstValueFrom(asyncIterableSource(counted()))).toEqual(f(1));
    await sleep(5);
    expect(pulls).toBe(1);
  });

  test("an async generator's finally runs after unsubscribe and it is not pulled again", async () => {
    let produced = 0;
    let cleanedUp = false;
    async function* endless() {
      try {
        for (;;) {
          await sleep(1);
          produced++;
          yield new Float32Array(160);
        }
      } finally {
        cleanedUp = true;
      }
    }
    const chunks = await lastValueFrom(asyncIterableSource(endless()).pipe(take(3), toArray()));
    expect(chunks).toHaveLength(3);
    await expect.poll(() => cleanedUp).toBe(true);
    const producedAtCleanup = produced;
    await sleep(20);
    expect(produced).toBe(producedAtCleanup);
    expect(produced).toBeLessThanOrEqual(4);
  });

  test('iterator errors pass through, without calling return()', async () => {
    let returned = false;
    const iterable: AsyncIterable<Float32Array> = {
      [Symbol.asyncIterator]: () => ({
        next: () => Promise.reject(new Error('device lost')),
        return: async () => {
          returned = true;
          return { done: true, value: undefined };
        },
      }),
    };
    await expect(lastValueFrom(asyncIterableSource(iterable))).rejects.toThrow('device lost');
    expect(returned).toBe(false);
  });

  test('a chunk that is not a Float32Array is an error, and the iterator is returned', async () => {
    let cleanedUp = false;
    async function* wrong() {
      try {
        yield [0.1, 0.2] as unknown as Float32Array;
      } finally {
        cleanedUp = true;
      }
    }
    await expect(lastValueFrom(asyncIterableSource(wrong()))).rejects.toThrow(
      /chunks must be Float32Array, got Array/,
    );
    await expect.poll(() => cleanedUp).toBe(true);
  });

  test('a non-iterable argument throws at once', () => {
    expect(() => asyncIterableSource([f(1)] as unknown as AsyncIterable<Float32Array>)).toThrow(
      InvalidArgumentError,
    );
    expect(() => asyncIterableSource(null as unknown as AsyncIterable<Float32Array>)).toThrow(
      /expected an AsyncIterable, got object/,
    );
  });
});
