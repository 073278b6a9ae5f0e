import type { FileHandle } from 'node:fs/promises';
import { DTYPE_BYTES, elementCount, isSafetensorsDtype, type SafetensorsDtype } from './dtypes.js';
import { SafetensorsError } from './errors.js';
import { readExactly } from './io.js';

/** One tensor as the header describes it. */
export interface TensorInfo {
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** [begin, end) relative to the data section, as written in the header. */
  readonly dataOffsets: readonly [number, number];
  /** Absolute position of the first byte in the file. */
  readonly fileOffset: number;
  readonly byteLength: number;
  /** File holding the bytes (a shard, for sharded checkpoints). */
  readonly file: string;
}

export interface ParsedHeader {
  readonly tensors: Map<string, TensorInfo>;
  readonly metadata: Record<string, string>;
}

// Real headers are kilobytes; a bigger length means this is not a safetensors file,
// and trusting it would make us allocate that much before finding out.
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export async function readHeader(handle: FileHandle, path: string): Promise<ParsedHeader> {
  const fileSize = (await handle.stat()).size;
  if (fileSize < 8) {
    throw new SafetensorsError(
      path,
      `file is truncated: ${fileSize} bytes, shorter than the 8-byte header length`,
    );
  }
  const lengthBytes = new Uint8Array(8);
  await readExactly(handle, path, lengthBytes, 0);
  const headerLength = new DataView(lengthBytes.buffer).getBigUint64(0, true);
  if (headerLength > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(
      path,
      `header length ${headerLength} is larger than the 100 MiB limit; not a safetensors file?`,
    );
  }
  const headerBytes = Number(headerLength);
  if (8 + headerBytes > fileSize) {
    throw new SafetensorsError(
      path,
      `header length ${headerBytes} is larger than the file (${fileSize} bytes)`,
    );
  }
  const json = new Uint8Array(headerBytes);
  await readExactly(handle, path, json, 8);
  const dataStart = 8 + headerBytes;
  return parseHeaderJson(path, new TextDecoder().decode(json), dataStart, fileSize - dataStart);
}

function parseHeaderJson(path: string, text: string, dataStart: number, dataLength: number): ParsedHeader {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new SafetensorsError(path, `header is not valid JSON (${(error as Error).message})`);
  }
  if (!isPlainObject(raw)) throw new SafetensorsError(path, 'header JSON is not an object');
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(raw)) {
    if (name === '__metadata__') metadata = parseMetadata(path, entry);
    else tensors.set(name, parseEntry(path, name, entry, dataStart));
  }
  checkLayout(path, tensors, dataLength);
  return { tensors, metadata };
}

function parseMetadata(path: string, entry: unknown): Record<string, string> {
  if (!isPlainObject(entry) || !Object.values(entry).every((value) => typeof value === 'string')) {
    throw new SafetensorsError(path, '__metadata__ must map strings to strings');
  }
  return entry as Record<string, string>;
}

function parseEntry(path: string, name: string, entry: unknown, dataStart: number): TensorInfo {
  if (!isPlainObject(entry))
    throw new SafetensorsError(path, `tensor '${name}': header entry is not an object`);
  const { dtype, shape, data_offsets: offsets } = entry;
  if (!isSafetensorsDtype(dtype)) {
    const known = Object.keys(DTYPE_BYTES).join(', ');
    throw new SafetensorsError(
      path,
      `tensor '${name}' has unknown dtype ${JSON.stringify(dtype)} (supported: ${known})`,
    );
  }
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    throw new SafetensorsError(path, `tensor '${name}' has invalid shape ${JSON.stringify(shape)}`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) || offsets[0] > offsets[1]) {
    throw new SafetensorsError(
      path,
      `tensor '${name}' has invalid data_offsets ${JSON.stringify(offsets)} (need [begin, end], 0 <= begin <= end)`,
    );
  }
  const [begin, end] = offsets as [number, number];
  const expected = elementCount(shape) * DTYPE_BYTES[dtype];
  if (expected !== end - begin) {
    throw new SafetensorsError(
      path,
      `tensor '${name}': shape [${shape.join(', ')}] of ${dtype} needs ${expected} bytes but data_offsets span ${end - begin}`,
    );
  }
  return {
    dtype,
    shape,
    dataOffsets: [begin, end],
    fileOffset: dataStart + begin,
    byteLength: end - begin,
    file: path,
  };
}

/**
 * Tensors must not share bytes and must lie inside the data section. The format requires the
 * tensors to tile the data section without holes, so when a hole-free header promises more
 * bytes than follow it, the header is fine and the file was cut short (an interrupted
 * download); otherwise the offsets themselves are wrong.
 */
function checkLayout(path: string, tensors: Map<string, TensorInfo>, dataLength: number): void {
  const sorted = [...tensors].filter(([, info]) => info.byteLength > 0);
  sorted.sort(([, a], [, b]) => a.dataOffsets[0] - b.dataOffsets[0]);
  let end = 0;
  let previous = '';
  let hasHoles = false;
  for (const [name, info] of sorted) {
    const [begin, tensorEnd] = info.dataOffsets;
    if (begin < end)
      throw new SafetensorsError(path, `tensors '${previous}' and '${name}' overlap in the data section`);
    if (begin > end) hasHoles = true;
    end = tensorEnd;
    previous = name;
  }
  if (end <= dataLength) return;
  if (!hasHoles) {
    throw new SafetensorsError(
      path,
      `file is truncated: the header promises ${end} bytes of tensor data but only ${dataLength} follow it`,
    );
  }
  const [name, info] = sorted.find(([, entry]) => entry.dataOffsets[1] > dataLength)!;
  throw new SafetensorsError(
    path,
    `tensor '${name}' has data_offsets [${info.dataOffsets.join(', ')}] outside the data section (${dataLength} bytes)`,
  );
}

function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
