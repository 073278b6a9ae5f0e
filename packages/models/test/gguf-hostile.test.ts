// Malformed and hostile GGUF files, built byte by byte: each is refused with a GgufError that
// says what is wrong, before anything of the size the file claims is allocated (a claimed
// 2^40-item array that got as far as `new Array` would fail with a RangeError instead).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { GgmlType, GgufError, GgufValueType, openGguf } from '../src/gguf/index.js';
import { loadModel } from '../src/load-model.js';
import { removeDir, tempDir } from './gguf-helpers.js';

let dir: string;
beforeAll(() => {
  dir = tempDir('gguf-hostile');
});
afterAll(() => removeDir(dir));

const utf8 = new TextEncoder();

/** Little-endian pieces of a GGUF file, concatenated. */
class Bytes {
  private parts: Uint8Array[] = [];
  get length(): number {
    return this.parts.reduce((n, p) => n + p.length, 0);
  }
  raw(bytes: ArrayLike<number>): this {
    this.parts.push(Uint8Array.from(bytes));
    return this;
  }
  u32(v: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v, true);
    return this.raw(b);
  }
  u64(v: number | bigint): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
    return this.raw(b);
  }
  str(s: string): this {
    const b = utf8.encode(s);
    return this.u64(b.length).raw(b);
  }
  kvU32(key: string, v: number): this {
    return this.str(key).u32(GgufValueType.UINT32).u32(v);
  }
  tensor(name: string, dims: (number | bigint)[], type: number, offset: number | bigint): this {
    this.str(name).u32(dims.length);
    for (const d of dims) this.u64(d);
    return this.u32(type).u64(offset);
  }
  pad(alignment = 32): this {
    return this.raw(new Uint8Array((alignment - (this.length % alignment)) % alignment));
  }
  bytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

/** Magic, version and the two counts. */
function header(tensors: number | bigint, keys: number | bigint, version = 3): Bytes {
  return new Bytes().raw(utf8.encode('GGUF')).u32(version).u64(tensors).u64(keys);
}

/** A well-formed file: one key, two F32 tensors of 8 values each (32 bytes, so no padding between). */
function valid(): Bytes {
  return header(2, 1)
    .kvU32('general.alignment', 32)
    .tensor('a', [8], GgmlType.F32, 0)
    .tensor('b', [8], GgmlType.F32, 32)
    .pad()
    .raw(new Uint8Array(64));
}

let counter = 0;
function file(bytes: Bytes | Uint8Array): string {
  const path = join(dir, `bad-${counter++}.gguf`);
  writeFileSync(path, bytes instanceof Bytes ? bytes.bytes() : bytes);
  return path;
}

async function refused(bytes: Bytes | Uint8Array, message: RegExp): Promise<void> {
  const path = file(bytes);
  const error = await openGguf(path).then(
    async (f) => {
      await f.close();
      return undefined;
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(GgufError);
  expect((error as Error).message).toMatch(message);
  expect((error as Error).message.startsWith(path)).toBe(true);
}

describe('hostile GGUF files', () => {
  test('the well-formed base file opens', async () => {
    const f = await openGguf(file(valid()));
    expect([...f.tensors.keys()]).toEqual(['a', 'b']);
    await f.close();
  });

  test('bad magic', async () => {
    await refused(
      new Bytes().raw(utf8.encode('GGML')).u32(3).u64(0).u64(0),
      /not a GGUF file: it starts with bytes 47 47 4d 4c/,
    );
    await refused(new Uint8Array([0x47, 0x47]), /not a GGUF file: only 2 bytes/);
  });

  test('bad versions', async () => {
    await refused(
      header(0, 0, 1),
      /GGUF version 1 is not supported; supported: 2, 3 \(GGUF v1 is obsolete\)/,
    );
    await refused(header(0, 0, 7), /GGUF version 7 is not supported/);
    await refused(header(0, 0, 0x03000000), /version 50331648 .*big-endian/);
  });

  test('a header cut short', async () => {
    const whole = valid().bytes();
    await refused(whole.subarray(0, 12), /truncated: the tensor count needs 8 bytes at offset 8/);
    // The counts alone already promise more than the file holds.
    await refused(
      whole.subarray(0, 30),
      /claims 1 metadata key-value pairs, but at most 0 fit in the 6 bytes left/,
    );
    // Inside the key's text.
    const oneKey = header(0, 1).kvU32('general.alignment', 32).bytes();
    await refused(
      oneKey.subarray(0, 40),
      /truncated: metadata key #0 needs 17 bytes at offset 32, but the file ends at 40/,
    );
    // Inside the second tensor info.
    await refused(whole.subarray(0, 80), /truncated/);
  });

  test('tensor data cut short, or placed past the end', async () => {
    const whole = valid().bytes();
    await refused(
      whole.subarray(0, whole.length - 4),
      /tensor 'b' spans data bytes \[32, 64\), past the end of the data section \(60 bytes\)/,
    );
    const far = header(1, 0)
      .tensor('a', [8], GgmlType.F32, 1n << 40n)
      .pad()
      .raw(new Uint8Array(32));
    await refused(far, /tensor 'a' spans data bytes \[1099511627776, .*past the end/);
  });

  test('overlapping tensors', async () => {
    const overlap = header(2, 0)
      .tensor('a', [16], GgmlType.F32, 0)
      .tensor('b', [8], GgmlType.F32, 32)
      .pad()
      .raw(new Uint8Array(64));
    await refused(overlap, /tensors 'a' and 'b' overlap/);
  });

  test('absurd counts are refused from the file size, before any allocation', async () => {
    await refused(header(1n << 62n, 0), /claims 4611686018427387904 tensors, but at most 0 fit/);
    await refused(header(0, 1n << 50n), /claims 1125899906842624 metadata key-value pairs/);
    const hugeArray = header(0, 1)
      .str('tokens')
      .u32(GgufValueType.ARRAY)
      .u32(GgufValueType.INT32)
      .u64(1n << 40n);
    await refused(
      hugeArray,
      /metadata 'tokens' claims 1099511627776 items, but the 0 bytes left in the file hold at most 0/,
    );
    const hugeStrings = header(0, 1)
      .str('t')
      .u32(GgufValueType.ARRAY)
      .u32(GgufValueType.STRING)
      .u64(1000)
      .raw(new Uint8Array(800));
    await refused(hugeStrings, /claims 1000 items, but the 800 bytes left in the file hold at most 100/);
  });

  test('absurd string lengths', async () => {
    await refused(
      header(0, 1)
        .u64(1n << 60n)
        .raw(new Uint8Array(16)),
      /metadata key #0 at offset 24 claims 1152921504606846976 bytes, more than the 16777216-byte limit/,
    );
    await refused(
      header(0, 1).u64(1000).raw(utf8.encode('abcdefghijklmnop')),
      /truncated: metadata key #0 needs 1000 bytes at offset 32, but the file ends at 48/,
    );
    const value = header(0, 1)
      .str('k')
      .u32(GgufValueType.STRING)
      .u64(1n << 33n);
    await refused(value, /metadata 'k' at offset .* claims 8589934592 bytes/);
    const badUtf8 = header(0, 1).u64(2).raw([0xc3, 0x28]).raw(new Uint8Array(16));
    await refused(badUtf8, /metadata key #0 at offset 24 is not valid UTF-8/);
  });

  test('unknown value types and tensor types', async () => {
    await refused(header(0, 1).str('k').u32(99), /metadata 'k' has unknown value type 99/);
    await refused(
      header(0, 1).str('k').u32(GgufValueType.ARRAY).u32(42),
      /metadata 'k' is an array of unknown value type 42/,
    );
    await refused(header(0, 1).str('k').u32(GgufValueType.ARRAY).u32(GgufValueType.ARRAY), /array of arrays/);
    const unknownType = header(1, 0).tensor('w', [32], 99, 0).pad().raw(new Uint8Array(128));
    await refused(
      unknownType,
      /tensor 'w' has ggml type 99, which this reader does not support; supported: F32 \(0\), F16 \(1\), Q4_0 \(2\)/,
    );
  });

  test('dimensions that overflow, or too many of them', async () => {
    const overflow = header(1, 0)
      .tensor('w', [1n << 32n, 1n << 32n], GgmlType.F32, 0)
      .pad()
      .raw(new Uint8Array(32));
    await refused(
      overflow,
      /dimensions \[4294967296, 4294967296\], whose 18446744073709551616 elements overflow/,
    );
    const huge = header(1, 0)
      .tensor('w', [1n << 60n], GgmlType.F32, 0)
      .pad();
    await refused(huge, /dimension 0 of 1152921504606846976, too large/);
    await refused(
      header(1, 0).tensor('w', [1, 1, 1, 1, 1], GgmlType.F32, 0),
      /has 5 dimensions; 1 to 4 are allowed/,
    );
    await refused(header(1, 0).tensor('w', [], GgmlType.F32, 0), /has 0 dimensions/);
    const partialBlock = header(1, 0).tensor('w', [48, 2], GgmlType.Q8_0, 0).pad().raw(new Uint8Array(256));
    await refused(partialBlock, /'w' is Q8_0 with rows of 48 values, not a multiple of its block of 32/);
  });

  test('alignment: offsets off the grid, and a bad general.alignment', async () => {
    const unaligned = header(1, 0).tensor('w', [4], GgmlType.F32, 8).pad().raw(new Uint8Array(64));
    await refused(unaligned, /starts at data offset 8, not a multiple of the alignment 32/);
    await refused(
      header(0, 1).kvU32('general.alignment', 24),
      /general.alignment is 24; it must be a power of two/,
    );
    await refused(header(0, 1).kvU32('general.alignment', 0), /general.alignment is 0/);
  });

  test('duplicates', async () => {
    await refused(header(0, 2).kvU32('k', 1).kvU32('k', 2), /metadata key 'k' appears twice/);
    await refused(
      header(2, 0).tensor('w', [8], GgmlType.F32, 0).tensor('w', [8], GgmlType.F32, 32),
      /tensor 'w' appears twice/,
    );
  });

  test('loadModel passes the GgufError on, and names missing or unsupported metadata', async () => {
    await expect(loadModel(file(header(0, 0, 9)))).rejects.toThrow(GgufError);
    const noArch = file(valid());
    await expect(loadModel(noArch)).rejects.toThrow(
      /general.architecture undefined is not supported; supported: llama, qwen2, gpt2/,
    );
    const falcon = header(0, 1).str('general.architecture').u32(GgufValueType.STRING).str('falcon');
    await expect(loadModel(file(falcon))).rejects.toThrow(/general.architecture "falcon" is not supported/);
    const noSizes = header(0, 1).str('general.architecture').u32(GgufValueType.STRING).str('llama');
    await expect(loadModel(file(noSizes))).rejects.toThrow(/metadata 'llama.embedding_length' is missing/);
    await expect(loadModel(join(dir, 'no-such-file.gguf'))).rejects.toThrow(
      /cannot read .*no-such-file.gguf/,
    );
  });
});
