import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { decodeTensorBytes } from '../src/safetensors/decode.js';
import {
  floatToBfloat16Bits,
  floatToHalfBits,
  halfBitsToFloat,
  loadTensors,
  openCheckpoint,
  openSafetensors,
  SafetensorsError,
  type TensorToWrite,
  writeSafetensors,
} from '../src/safetensors/index.js';
import { causalFixture, fixturePath, useCpuBackend } from './fixtures.js';

const LLAMA_DIR = fixturePath('llama/');
const LLAMA_FILE = fixturePath('llama/model.safetensors');
/** lm_head's shape from the fixture's config.json: [vocab_size, hidden_size]. */
const LLAMA = causalFixture('llama');
const LM_HEAD_SHAPE = [LLAMA.vocabSize, LLAMA.hidden];

interface RawEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** Parses a file the plain way, independently of the reader under test. */
function parseIndependently(path: string) {
  const bytes = readFileSync(path);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8'));
  const { __metadata__: metadata, ...entries } = header as Record<string, RawEntry> & {
    __metadata__?: object;
  };
  const float32 = (entry: RawEntry) => {
    const [begin, end] = entry.data_offsets;
    const start = 8 + headerLength + begin;
    return new Float32Array(
      bytes.buffer.slice(bytes.byteOffset + start, bytes.byteOffset + start + end - begin),
    );
  };
  return { metadata, entries, float32, dataLength: bytes.length - 8 - headerLength };
}

/** A file with a hand-made header, for the malformed cases. */
async function writeRaw(path: string, header: string | object, data = new Uint8Array(0), length?: bigint) {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(length ?? BigInt(json.length));
  await writeFile(path, Buffer.concat([prefix, json, data]));
  return path;
}

async function expectSafetensorsError(promise: Promise<unknown>, path: string, message: RegExp) {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(SafetensorsError);
  expect((error as SafetensorsError).path).toBe(path);
  expect((error as Error).message.startsWith(`${path}: `)).toBe(true);
  expect((error as Error).message).toMatch(message);
}

function disposeAll(tensors: Map<string, tf.Tensor>) {
  for (const tensor of tensors.values()) tensor.dispose();
}

let tmp: string;
let tensorsAtStart: number;

beforeAll(async () => {
  await useCpuBackend();
  tmp = await mkdtemp(join(tmpdir(), 'specstream-safetensors-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});
// Every test must dispose every tensor it (or the loader) created.
beforeEach(() => {
  tensorsAtStart = tf.memory().numTensors;
});
afterEach(() => {
  expect(tf.memory().numTensors).toBe(tensorsAtStart);
});

describe('reading the llama fixture', () => {
  it('lists the names, dtypes, shapes and offsets its header declares, and reads exact values', async () => {
    const expected = parseIndependently(LLAMA_FILE);
    const file = await openSafetensors(LLAMA_FILE);
    try {
      expect([...file.names].sort()).toEqual(Object.keys(expected.entries).sort());
      expect(file.metadata).toEqual(expected.metadata);
      for (const [name, entry] of Object.entries(expected.entries)) {
        const info = file.info(name);
        expect([info.dtype, info.shape, info.dataOffsets]).toEqual([
          entry.dtype,
          entry.shape,
          entry.data_offsets,
        ]);
        const tensor = await file.readTensor(name);
        expect(tensor.shape).toEqual(entry.shape);
        expect(tensor.dtype).toBe('float32');
        expect(tensor.dataSync()).toEqual(expected.float32(entry));
        tensor.dispose();
      }
    } finally {
      await file.close();
    }
  });

  it('loads a model folder tensor by tensor, with progress rising to the total', async () => {
    const { entries, dataLength } = parseIndependently(LLAMA_FILE);
    const progress: [number, number, string][] = [];
    const tensors = await loadTensors(LLAMA_DIR, { onProgress: (...report) => progress.push(report) });
    try {
      expect([...tensors.keys()].sort()).toEqual(Object.keys(entries).sort());
      expect(progress.map(([, , name]) => name).sort()).toEqual(Object.keys(entries).sort());
      for (let i = 1; i < progress.length; i++) expect(progress[i][0]).toBeGreaterThan(progress[i - 1][0]);
      expect(progress.every(([, total]) => total === dataLength)).toBe(true);
      expect(progress.at(-1)![0]).toBe(dataLength);
    } finally {
      disposeAll(tensors);
    }
  });

  it('loads only the requested names, and rejects unknown ones before reading anything', async () => {
    const names = ['model.norm.weight', 'lm_head.weight'];
    const tensors = await loadTensors(LLAMA_DIR, { names });
    expect([...tensors.keys()].sort()).toEqual([...names].sort());
    expect(tensors.get('lm_head.weight')!.shape).toEqual(LM_HEAD_SHAPE);
    disposeAll(tensors);
    await expectSafetensorsError(
      loadTensors(LLAMA_DIR, { names: ['model.norm.weight', 'model.no_such.weight'] }),
      LLAMA_FILE,
      /no tensor named 'model\.no_such\.weight'/,
    );
  });
});

describe('16-bit floats', () => {
  it('decodes binary16 specials: subnormals, signed zero, infinities, NaN, max', () => {
    expect(halfBitsToFloat(0x0001)).toBe(2 ** -24);
    expect(halfBitsToFloat(0x03ff)).toBe(1023 * 2 ** -24);
    expect(halfBitsToFloat(0x0400)).toBe(2 ** -14);
    expect(Object.is(halfBitsToFloat(0x8000), -0)).toBe(true);
    expect(halfBitsToFloat(0x7bff)).toBe(65504);
    expect(halfBitsToFloat(0x7c00)).toBe(Infinity);
    expect(halfBitsToFloat(0xfc00)).toBe(-Infinity);
    expect(halfBitsToFloat(0x7e00)).toBeNaN();
    expect(halfBitsToFloat(0x3c00)).toBe(1);
    expect(halfBitsToFloat(0xc000)).toBe(-2);
  });

  it('encodes every binary16 value to itself and midpoints to the even neighbour', () => {
    const mismatches: string[] = [];
    for (let bits = 0; bits < 0x10000; bits++) {
      const value = halfBitsToFloat(bits);
      const back = floatToHalfBits(value);
      const ok = Number.isNaN(value) ? Number.isNaN(halfBitsToFloat(back)) : back === bits;
      if (!ok) mismatches.push(`0x${bits.toString(16)} -> 0x${back.toString(16)}`);
    }
    // Midpoints of neighbouring positive halves (exact in float32) round to the even pattern.
    for (let bits = 0; bits < 0x7bff; bits++) {
      const midpoint = (halfBitsToFloat(bits) + halfBitsToFloat(bits + 1)) / 2;
      const even = bits % 2 === 0 ? bits : bits + 1;
      if (floatToHalfBits(midpoint) !== even || floatToHalfBits(-midpoint) !== (0x8000 | even)) {
        mismatches.push(`midpoint above 0x${bits.toString(16)}`);
      }
    }
    expect(mismatches).toEqual([]);
    expect(floatToHalfBits(65519)).toBe(0x7bff);
    expect(floatToHalfBits(65520)).toBe(0x7c00);
    expect(floatToHalfBits(2 ** -25)).toBe(0);
    expect(floatToHalfBits(2 ** -25 * 1.0001)).toBe(1);
    expect(floatToHalfBits(Number.NaN) & 0x7c00).toBe(0x7c00);
  });

  it('encodes bfloat16 with ties to even and keeps NaN a NaN', () => {
    expect(floatToBfloat16Bits(1)).toBe(0x3f80);
    expect(floatToBfloat16Bits(1 + 2 ** -8)).toBe(0x3f80); // tie, 0x3f80 is even
    expect(floatToBfloat16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie, rounds up to even
    expect(floatToBfloat16Bits(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81);
    expect(floatToBfloat16Bits(3.4028234663852886e38)).toBe(0x7f80); // rounds past the max to inf
    expect(floatToBfloat16Bits(-Infinity)).toBe(0xff80);
    const nan = floatToBfloat16Bits(Number.NaN);
    expect((nan & 0x7f80) === 0x7f80 && (nan & 0x7f) !== 0).toBe(true);
  });

  async function roundTrip(dtype: 'F16' | 'BF16') {
    const source = await openSafetensors(LLAMA_FILE);
    const originals = new Map<string, Float32Array>();
    const tensors: Record<string, TensorToWrite> = {};
    for (const name of source.names) {
      const { values } = await source.readValues(name);
      originals.set(name, values as Float32Array);
      tensors[name] = { dtype, shape: source.info(name).shape, data: values };
    }
    await source.close();
    const path = join(tmp, `llama-${dtype}.safetensors`);
    await writeSafetensors(path, tensors);
    const copy = await loadTensors(path);
    const read = new Map([...copy].map(([name, tensor]) => [name, tensor.dataSync() as Float32Array]));
    for (const [name, tensor] of copy) {
      expect(tensor.dtype).toBe('float32');
      expect(tensor.shape).toEqual(tensors[name].shape);
    }
    disposeAll(copy);
    return { originals, read, dataLength: parseIndependently(path).dataLength };
  }

  it('writes an F16 copy of the fixture that reads back within half precision', async () => {
    const { originals, read, dataLength } = await roundTrip('F16');
    expect(dataLength).toBe(parseIndependently(LLAMA_FILE).dataLength / 2);
    let worstRelative = 0;
    let worstSubnormal = 0;
    for (const [name, original] of originals) {
      const values = read.get(name)!;
      for (let i = 0; i < original.length; i++) {
        const error = Math.abs(values[i] - original[i]);
        // Normal range: relative 2^-11. Subnormals have a fixed spacing of 2^-24, so half of it.
        if (Math.abs(original[i]) >= 2 ** -14)
          worstRelative = Math.max(worstRelative, error / Math.abs(original[i]));
        else worstSubnormal = Math.max(worstSubnormal, error);
      }
    }
    expect(worstRelative).toBeLessThanOrEqual(2 ** -11);
    expect(worstSubnormal).toBeLessThanOrEqual(2 ** -25);
    expect(worstRelative).toBeGreaterThan(0); // the copy really was rounded
  });

  it('writes a BF16 copy of the fixture that reads back within bfloat16 precision', async () => {
    const { originals, read, dataLength } = await roundTrip('BF16');
    expect(dataLength).toBe(parseIndependently(LLAMA_FILE).dataLength / 2);
    let worst = 0;
    for (const [name, original] of originals) {
      const values = read.get(name)!;
      for (let i = 0; i < original.length; i++) {
        const error = Math.abs(values[i] - original[i]);
        // Zeros must stay exact: 0/0 is NaN, which Math.max would propagate and fail on.
        worst = Math.max(
          worst,
          original[i] === 0 ? (error === 0 ? 0 : Infinity) : error / Math.abs(original[i]),
        );
      }
    }
    expect(worst).toBeLessThanOrEqual(2 ** -8);
    expect(worst).toBeGreaterThan(0);
  });
});

describe('reading in chunks', () => {
  let tmp: string;
  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'specstream-chunks-'));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it('gives the same float32 values as a whole read, for F32, BF16 and F16, in any chunk size', async () => {
    const source = await openSafetensors(LLAMA_FILE);
    const name = source.names.find((n) => source.info(n).shape.length === 2)!;
    const { values } = await source.readValues(name);
    const path = join(tmp, 'one.safetensors');
    await writeSafetensors(path, {
      f32: { dtype: 'F32', shape: source.info(name).shape, data: values },
      bf16: { dtype: 'BF16', shape: source.info(name).shape, data: values },
      f16: { dtype: 'F16', shape: source.info(name).shape, data: values },
      ids: { dtype: 'I32', shape: [3], data: Int32Array.from([1, 2, 3]) },
    });
    await source.close();
    const file = await openSafetensors(path);
    try {
      for (const dtype of ['f32', 'bf16', 'f16']) {
        const whole = (await file.readValues(dtype)).values;
        for (const chunk of [7, 64, 1 << 20]) {
          const parts: number[] = [];
          for await (const part of file.readChunks(dtype, chunk)) {
            expect(part.length).toBeLessThanOrEqual(chunk);
            parts.push(...part);
          }
          expect(parts, `${dtype} in chunks of ${chunk}`).toEqual(Array.from(whole));
        }
      }
      await expect(async () => {
        for await (const _ of file.readChunks('ids')) void _;
      }).rejects.toThrow(/'ids' is I32, not a float tensor/);
    } finally {
      await file.close();
    }
  });
});

describe('other dtypes', () => {
  it('reads F64 as float32 and every integer type as int32', async () => {
    const path = join(tmp, 'dtypes.safetensors');
    await writeSafetensors(path, {
      f64: { dtype: 'F64', shape: [2], data: [0.1, -1e300] },
      i64: { dtype: 'I64', shape: [3], data: [-5, 2 ** 31 - 1, -(2 ** 31)] },
      i32: { dtype: 'I32', shape: [2], data: [7, -8] },
      i16: { dtype: 'I16', shape: [1], data: [-300] },
      i8: { dtype: 'I8', shape: [2], data: [-128, 127] },
      u8: { dtype: 'U8', shape: [1], data: [255] },
      flags: { dtype: 'BOOL', shape: [3], data: [1, 0, 1] },
      scalar: { dtype: 'F32', shape: [], data: [3.5] },
    });
    const tensors = await loadTensors(path);
    try {
      const values = (name: string) => Array.from(tensors.get(name)!.dataSync());
      expect(values('f64')).toEqual([Math.fround(0.1), -Infinity]);
      expect(values('i64')).toEqual([-5, 2 ** 31 - 1, -(2 ** 31)]);
      expect(values('i32')).toEqual([7, -8]);
      expect(values('i16')).toEqual([-300]);
      expect(values('i8')).toEqual([-128, 127]);
      expect(values('u8')).toEqual([255]);
      expect(values('flags')).toEqual([1, 0, 1]);
      expect(tensors.get('scalar')!.shape).toEqual([]);
      const dtypes = Object.fromEntries([...tensors].map(([name, tensor]) => [name, tensor.dtype]));
      expect(dtypes).toEqual({
        f64: 'float32',
        i64: 'int32',
        i32: 'int32',
        i16: 'int32',
        i8: 'int32',
        u8: 'int32',
        flags: 'int32',
        scalar: 'float32',
      });
    } finally {
      disposeAll(tensors);
    }
  });

  it('rejects I64 values outside int32, naming the tensor', async () => {
    const path = join(tmp, 'big-i64.safetensors');
    await writeSafetensors(path, {
      positions: { dtype: 'I64', shape: [2], data: BigInt64Array.of(1n, 2n ** 40n) },
    });
    await expectSafetensorsError(
      loadTensors(path),
      path,
      /tensor 'positions' \(I64\) holds 1099511627776 at index 1/,
    );
  });

  it('views aligned F32 bytes without copying and copies unaligned ones', () => {
    const aligned = new Uint8Array(new Float32Array([1.5, -2]).buffer);
    const view = decodeTensorBytes(aligned, 'F32', 'x', 'mem').values;
    expect(view.buffer).toBe(aligned.buffer);
    const shifted = new Uint8Array(9);
    shifted.set(aligned, 1);
    const copy = decodeTensorBytes(shifted.subarray(1), 'F32', 'x', 'mem').values;
    expect(copy.buffer).not.toBe(shifted.buffer);
    expect(Array.from(copy)).toEqual([1.5, -2]);
  });
});

describe('sharded checkpoints', () => {
  it('loads a fixture split across two shards exactly like the single file', async () => {
    const dir = join(tmp, 'sharded');
    await mkdir(dir, { recursive: true });
    const source = await openSafetensors(LLAMA_FILE);
    const half = Math.ceil(source.names.length / 2);
    const shards = [source.names.slice(0, half), source.names.slice(half)];
    const weightMap: Record<string, string> = {};
    for (const [i, names] of shards.entries()) {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      const tensors: Record<string, TensorToWrite> = {};
      for (const name of names) {
        tensors[name] = {
          dtype: 'F32',
          shape: source.info(name).shape,
          data: (await source.readValues(name)).values,
        };
        weightMap[name] = file;
      }
      await writeSafetensors(join(dir, file), tensors);
    }
    await source.close();
    await writeFile(
      join(dir, 'model.safetensors.index.json'),
      JSON.stringify({ metadata: {}, weight_map: weightMap }),
    );

    const checkpoint = await openCheckpoint(dir);
    expect(checkpoint.files).toHaveLength(2);
    expect([...checkpoint.names].sort()).toEqual([...source.names].sort());
    expect(checkpoint.info('lm_head.weight').shape).toEqual(LM_HEAD_SHAPE);
    await checkpoint.close();

    const progress: number[] = [];
    const sharded = await loadTensors(dir, { onProgress: (loaded) => progress.push(loaded) });
    const single = await loadTensors(LLAMA_DIR);
    try {
      expect([...sharded.keys()].sort()).toEqual([...single.keys()].sort());
      for (const [name, tensor] of single) {
        expect(sharded.get(name)!.shape).toEqual(tensor.shape);
        expect(sharded.get(name)!.dataSync()).toEqual(tensor.dataSync());
      }
      expect(progress.at(-1)).toBe(parseIndependently(LLAMA_FILE).dataLength);
    } finally {
      disposeAll(sharded);
      disposeAll(single);
    }
  });

  it('refuses shard names that leave the model folder', async () => {
    for (const [i, shard] of ['../outside.safetensors', '/etc/passwd', 'sub/../../x.safetensors'].entries()) {
      const dir = join(tmp, `escape-${i}`);
      await mkdir(dir, { recursive: true });
      const index = join(dir, 'model.safetensors.index.json');
      await writeFile(index, JSON.stringify({ weight_map: { 'a.weight': shard } }));
      await expectSafetensorsError(
        openCheckpoint(dir),
        index,
        /shard '.*' \(for 'a\.weight'\) is outside the model folder/,
      );
    }
  });

  it('names the shard when the index promises a tensor it lacks', async () => {
    const dir = join(tmp, 'lying-index');
    await mkdir(dir, { recursive: true });
    await copyFile(LLAMA_FILE, join(dir, 'part.safetensors'));
    const index = join(dir, 'model.safetensors.index.json');
    await writeFile(index, JSON.stringify({ weight_map: { 'ghost.weight': 'part.safetensors' } }));
    await expectSafetensorsError(openCheckpoint(dir), index, /maps 'ghost\.weight' to part\.safetensors/);
  });

  it('says what is missing when a folder has no checkpoint', async () => {
    const dir = join(tmp, 'empty');
    await mkdir(dir, { recursive: true });
    await expectSafetensorsError(
      openCheckpoint(dir),
      dir,
      /no model\.safetensors or model\.safetensors\.index\.json/,
    );
  });
});

describe('malformed files', () => {
  const f32 = (count: number) => new Uint8Array(count * 4);
  const entry = (begin: number, end: number, shape = [(end - begin) / 4]) => ({
    dtype: 'F32',
    shape,
    data_offsets: [begin, end],
  });

  it('rejects a file shorter than the 8-byte length', async () => {
    const path = join(tmp, 'tiny.safetensors');
    await writeFile(path, new Uint8Array(5));
    await expectSafetensorsError(
      openSafetensors(path),
      path,
      /file is truncated: 5 bytes, shorter than the 8-byte/,
    );
  });

  it('rejects a file whose data stops before the header says it ends', async () => {
    const path = join(tmp, 'cut.safetensors');
    const whole = readFileSync(LLAMA_FILE);
    await writeFile(path, whole.subarray(0, whole.length - 100));
    const { dataLength } = parseIndependently(LLAMA_FILE);
    await expectSafetensorsError(
      openSafetensors(path),
      path,
      new RegExp(
        `file is truncated: the header promises ${dataLength} bytes of tensor data but only ${dataLength - 100}`,
      ),
    );
  });

  it('rejects a header length larger than the file', async () => {
    const path = await writeRaw(join(tmp, 'long-header.safetensors'), '{}', f32(4), 1000n);
    await expectSafetensorsError(
      openSafetensors(path),
      path,
      /header length 1000 is larger than the file \(26 bytes\)/,
    );
  });

  it('rejects an absurd header length without allocating it', async () => {
    const path = await writeRaw(join(tmp, 'absurd.safetensors'), '{}', f32(4), 2n ** 40n);
    await expectSafetensorsError(
      openSafetensors(path),
      path,
      /header length 1099511627776 is larger than the 100 MiB/,
    );
  });

  it('rejects a header that is not JSON', async () => {
    const path = await writeRaw(join(tmp, 'bad-json.safetensors'), '{"a": {"dtype": ', f32(4));
    await expectSafetensorsError(openSafetensors(path), path, /header is not valid JSON/);
  });

  it('rejects offsets outside the data section', async () => {
    const path = await writeRaw(
      join(tmp, 'outside.safetensors'),
      { a: entry(0, 16), b: entry(64, 80) },
      f32(8),
    );
    await expectSafetensorsError(
      openSafetensors(path),
      path,
      /tensor 'b' has data_offsets \[64, 80\] outside the data section \(32 bytes\)/,
    );
    const reversed = await writeRaw(join(tmp, 'reversed.safetensors'), { a: entry(16, 0, [0]) }, f32(4));
    await expectSafetensorsError(
      openSafetensors(reversed),
      reversed,
      /tensor 'a' has invalid data_offsets \[16,0\]/,
    );
  });

  it('rejects overlapping tensors', async () => {
    const path = await writeRaw(
      join(tmp, 'overlap.safetensors'),
      { a: entry(0, 16), b: entry(8, 24) },
      f32(6),
    );
    await expectSafetensorsError(openSafetensors(path), path, /tensors 'a' and 'b' overlap/);
  });

  it('rejects an unknown dtype, naming it', async () => {
    const header = { a: { dtype: 'F8_E4M3', shape: [4], data_offsets: [0, 4] } };
    const path = await writeRaw(join(tmp, 'f8.safetensors'), header, f32(1));
    await expectSafetensorsError(openSafetensors(path), path, /tensor 'a' has unknown dtype "F8_E4M3"/);
  });

  it('rejects a shape that does not match the byte count', async () => {
    const path = await writeRaw(join(tmp, 'shape.safetensors'), { a: entry(0, 16, [5]) }, f32(4));
    await expectSafetensorsError(
      openSafetensors(path),
      path,
      /tensor 'a': shape \[5\] of F32 needs 20 bytes but data_offsets span 16/,
    );
  });

  it('names the tensor and the file when asked for a missing tensor', async () => {
    const file = await openSafetensors(LLAMA_FILE);
    try {
      await expectSafetensorsError(
        file.readTensor('model.nope'),
        LLAMA_FILE,
        /no tensor named 'model\.nope'/,
      );
      expect(() => file.info('model.nope')).toThrow(`${LLAMA_FILE}: no tensor named 'model.nope'`);
    } finally {
      await file.close();
    }
  });

  it.skipIf(!existsSync('/proc/self/fd'))('closes the file when its header is rejected', async () => {
    const path = await writeRaw(join(tmp, 'retry.safetensors'), 'nope', f32(1));
    const openFiles = () => readdirSync('/proc/self/fd').length;
    const before = openFiles();
    for (let i = 0; i < 5; i++) await expect(openSafetensors(path)).rejects.toThrow(SafetensorsError);
    expect(openFiles()).toBe(before);
  });
});
