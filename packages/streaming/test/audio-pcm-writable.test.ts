import { once } from 'node:events';
import { Writable } from 'node:stream';
import { InvalidArgumentError } from '@specstream/core';
import { concatWith, from, lastValueFrom, NEVER, of, Subject, throwError } from 'rxjs';
import { describe, expect, test } from 'vitest';
import { type PcmFormat, pcmWritableSink } from '../src/audio/index.js';
import { encodePcm } from '../src/audio/pcm-format.js';

const f = (...values: number[]) => Float32Array.from(values);

/**
 * A Writable that accepts little (highWaterMark bytes) and completes each
 * write only after a delay, recording what arrives and every write() made
 * while it had asked the writer to wait for 'drain'.
 */
function slowWritable(highWaterMark: number, delayMs: number) {
  const received: Buffer[] = [];
  const stats = { writesWhileFull: 0, drains: 0 };
  const writable = new Writable({
    highWaterMark,
    write(chunk: Buffer, _encoding, callback) {
      received.push(Buffer.from(chunk));
      setTimeout(callback, delayMs);
    },
  });
  const write = writable.write.bind(writable);
  writable.write = ((chunk: Buffer) => {
    if (writable.writableNeedDrain) stats.writesWhileFull++;
    return write(chunk);
  }) as typeof writable.write;
  writable.on('drain', () => stats.drains++);
  return { writable, received, stats };
}

function chunksOf(samples: Float32Array, sizes: number[]): Float32Array[] {
  const chunks: Float32Array[] = [];
  for (let start = 0, i = 0; start < samples.length; i++) {
    const size = sizes[i % sizes.length];
    chunks.push(samples.slice(start, start + size));
    start += size;
  }
  return chunks;
}

describe('pcmWritableSink', () => {
  test.each(['s16le', 'f32le'] as const)(
    'respects backpressure with a slow, small Writable; all bytes arrive in order (%s)',
    async (format: PcmFormat) => {
      const samples = Float32Array.from({ length: 3000 }, (_, i) => Math.sin(i / 7) * 0.9);
      const { writable, received, stats } = slowWritable(64, 1);
      const result = await lastValueFrom(
        from(chunksOf(samples, [1, 50, 7, 200, 33])).pipe(pcmWritableSink(writable, { format })),
      );
      const expected = encodePcm(samples, format);
      expect(result).toEqual({ samples: 3000, bytes: expected.length });
      expect(Buffer.concat(received).equals(Buffer.from(expected))).toBe(true);
      expect(stats.drains).toBeGreaterThan(10);
      expect(stats.writesWhileFull).toBe(0);
      expect(writable.writableFinished).toBe(true);
    },
  );

  test('s16le bytes for known samples (clipped at ±1, ×32768)', async () => {
    const { writable, received } = slowWritable(1024, 0);
    await lastValueFrom(of(f(0, 0.5, -1, 1, -2)).pipe(pcmWritableSink(writable, { format: 's16le' })));
    expect(Array.from(new Int16Array(new Uint8Array(Buffer.concat(received)).buffer))).toEqual([
      0, 16384, -32768, 32767, -32768,
    ]);
  });

  test('end: false leaves the Writable open for more', async () => {
    const { writable, received } = slowWritable(16, 1);
    const result = await lastValueFrom(
      of(f(0.25), f(0.5)).pipe(pcmWritableSink(writable, { format: 'f32le', end: false })),
    );
    expect(result).toEqual({ samples: 2, bytes: 8 });
    expect(writable.writableEnded).toBe(false);
    // Handed over (accepted by write()) is not necessarily processed yet; ending flushes the rest.
    writable.end();
    await once(writable, 'finish');
    expect(Buffer.concat(received).length).toBe(8);
  });

  test('unsubscribing detaches every listener and neither ends nor destroys the Writable', () => {
    const { writable } = slowWritable(16, 1);
    const events = ['drain', 'finish', 'error', 'close'] as const;
    const before = events.map((e) => writable.listenerCount(e));
    const input = new Subject<Float32Array>();
    const subscription = input.pipe(pcmWritableSink(writable, { format: 's16le' })).subscribe();
    input.next(new Float32Array(100));
    expect(events.map((e) => writable.listenerCount(e))).not.toEqual(before);
    subscription.unsubscribe();
    expect(events.map((e) => writable.listenerCount(e))).toEqual(before);
    expect(writable.writableEnded).toBe(false);
    expect(writable.destroyed).toBe(false);
    writable.destroy();
  });

  test('input errors pass through, and the Writable is left to its owner', async () => {
    const { writable } = slowWritable(16, 1);
    const failing = of(f(0.1)).pipe(
      concatWith(throwError(() => new Error('decoder crashed'))),
      pcmWritableSink(writable, { format: 's16le' }),
    );
    await expect(lastValueFrom(failing)).rejects.toThrow('decoder crashed');
    expect(writable.writableEnded).toBe(false);
    writable.destroy();
  });

  test('Writable errors and premature close become errors', async () => {
    const broken = new Writable({
      write(_chunk, _encoding, callback) {
        callback(new Error('EPIPE'));
      },
    });
    await expect(
      lastValueFrom(of(f(0.1)).pipe(pcmWritableSink(broken, { format: 's16le' }))),
    ).rejects.toThrow('EPIPE');
    const { writable } = slowWritable(16, 1);
    const pending = lastValueFrom(NEVER.pipe(pcmWritableSink(writable, { format: 's16le' })));
    writable.destroy();
    await expect(pending).rejects.toThrow(/closed before all audio was written/);
  });

  test('bad arguments', async () => {
    const { writable } = slowWritable(16, 1);
    expect(() => pcmWritableSink({} as Writable, { format: 's16le' })).toThrow(
      /writable must be a Node Writable/,
    );
    expect(() => pcmWritableSink(writable, { format: 'u8' as PcmFormat })).toThrow(InvalidArgumentError);
    const notFloats = of([0.5] as unknown as Float32Array).pipe(
      pcmWritableSink(writable, { format: 'f32le' }),
    );
    await expect(lastValueFrom(notFloats)).rejects.toThrow(/chunks must be Float32Array/);
    writable.end();
    await expect(
      lastValueFrom(of(f(1)).pipe(pcmWritableSink(writable, { format: 'f32le' }))),
    ).rejects.toThrow(/already ended or destroyed/);
  });
});
