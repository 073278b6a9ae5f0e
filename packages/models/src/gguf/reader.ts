// A GGUF parser of our own. @huggingface/gguf (0.4.6) was considered: it reads local files in
// 2 MiB ranges (not whole), bounds counts and string lengths, and is well kept, but it checks
// none of what makes tensor data safe to read by offset (types it knows, element counts that
// fit, offsets aligned, inside the file and not overlapping), a file cut short surfaces as a
// RangeError or "exceeded maximum chunk fetches", and its errors are plain Errors. Adding all of
// that around it would mean parsing the tensor infos again, so this module parses the header
// itself: every length and count is checked against the bytes that are left in the file
// before anything of that size is allocated, and every failure is a GgufError naming the file.
import { type FileHandle, open } from 'node:fs/promises';
import {
  GGML_BLOCK,
  GGML_TYPE_NAMES,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GgufValueType,
  SCALAR_BYTES,
} from './constants.js';
import { GgufError } from './errors.js';
import type { GgufArray, GgufEntry, GgufMetadata, GgufScalar } from './metadata.js';
import { dequantize } from './quant.js';

/** One tensor as the header describes it. */
export interface GgufTensorInfo {
  readonly name: string;
  /** ggml order: innermost first (ne[0] is a weight matrix's input size). */
  readonly dims: readonly number[];
  readonly type: number;
  readonly elements: number;
  readonly byteLength: number;
  /** Absolute position of the first byte in the file. */
  readonly fileOffset: number;
}

export interface GgufHeader {
  readonly version: number;
  readonly metadata: GgufMetadata;
  readonly tensors: ReadonlyMap<string, GgufTensorInfo>;
  readonly alignment: number;
  /** Where the tensor data section starts. */
  readonly dataOffset: number;
  readonly fileSize: number;
}

// Limits on what a header may declare. They are far above any real model (a 150k-token
// vocabulary has 150k strings of a few bytes) and keep a hostile header from making us
// allocate much before the file's own size has refused it.
export const GGUF_LIMITS = {
  maxStringBytes: 16 * 1024 * 1024,
  maxDims: 4,
  maxTensors: 1 << 20,
  maxKeys: 1 << 20,
} as const;

const CHUNK = 1 << 20;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Sequential little-endian reads over a file handle, a chunk at a time, never past the file's end. */
class Cursor {
  pos = 0;
  private buffer = new Uint8Array(0);
  private view = new DataView(this.buffer.buffer);
  private bufferStart = 0;

  constructor(
    private readonly handle: FileHandle,
    readonly path: string,
    readonly size: number,
  ) {}

  remaining(): number {
    return this.size - this.pos;
  }

  /** Makes `n` bytes at pos readable; `what` names them in the error when the file ends first. */
  private async need(n: number, what: string): Promise<number> {
    if (n > this.remaining()) {
      throw new GgufError(
        this.path,
        `file is truncated: ${what} needs ${n} bytes at offset ${this.pos}, but the file ends at ${this.size}`,
      );
    }
    const end = this.bufferStart + this.buffer.length;
    if (this.pos < this.bufferStart || this.pos + n > end) {
      const length = Math.min(Math.max(n, CHUNK), this.remaining());
      this.buffer = new Uint8Array(length);
      let filled = 0;
      while (filled < length) {
        const { bytesRead } = await this.handle.read(this.buffer, filled, length - filled, this.pos + filled);
        if (bytesRead === 0)
          throw new GgufError(this.path, `file is truncated: it ended at byte ${this.pos + filled}`);
        filled += bytesRead;
      }
      this.view = new DataView(this.buffer.buffer);
      this.bufferStart = this.pos;
    }
    const at = this.pos - this.bufferStart;
    this.pos += n;
    return at;
  }

  /** Checks and buffers `n` bytes, then returns the view to read them from at `this.offset`. */
  private async viewAt(n: number, what: string): Promise<DataView> {
    this.offset = await this.need(n, what);
    return this.view;
  }
  private offset = 0;

  async u32(what: string): Promise<number> {
    return (await this.viewAt(4, what)).getUint32(this.offset, true);
  }
  async u64(what: string): Promise<bigint> {
    return (await this.viewAt(8, what)).getBigUint64(this.offset, true);
  }
  async scalar(type: number, what: string): Promise<GgufScalar> {
    switch (type) {
      case GgufValueType.UINT8:
        return (await this.viewAt(1, what)).getUint8(this.offset);
      case GgufValueType.INT8:
        return (await this.viewAt(1, what)).getInt8(this.offset);
      case GgufValueType.UINT16:
        return (await this.viewAt(2, what)).getUint16(this.offset, true);
      case GgufValueType.INT16:
        return (await this.viewAt(2, what)).getInt16(this.offset, true);
      case GgufValueType.UINT32:
        return (await this.viewAt(4, what)).getUint32(this.offset, true);
      case GgufValueType.INT32:
        return (await this.viewAt(4, what)).getInt32(this.offset, true);
      case GgufValueType.FLOAT32:
        return (await this.viewAt(4, what)).getFloat32(this.offset, true);
      case GgufValueType.BOOL:
        return (await this.viewAt(1, what)).getUint8(this.offset) !== 0;
      case GgufValueType.STRING:
        return this.string(what);
      case GgufValueType.UINT64:
        return narrow((await this.viewAt(8, what)).getBigUint64(this.offset, true));
      case GgufValueType.INT64:
        return narrow((await this.viewAt(8, what)).getBigInt64(this.offset, true));
      case GgufValueType.FLOAT64:
        return (await this.viewAt(8, what)).getFloat64(this.offset, true);
      default:
        throw new GgufError(this.path, `${what} has unknown value type ${type}`);
    }
  }
  async string(what: string): Promise<string> {
    const start = this.pos;
    const length = await this.u64(`the length of ${what}`);
    if (length > BigInt(GGUF_LIMITS.maxStringBytes)) {
      throw new GgufError(
        this.path,
        `${what} at offset ${start} claims ${length} bytes, more than the ${GGUF_LIMITS.maxStringBytes}-byte limit for a string`,
      );
    }
    const n = Number(length);
    const at = await this.need(n, what);
    try {
      return utf8.decode(this.buffer.subarray(at, at + n));
    } catch {
      throw new GgufError(this.path, `${what} at offset ${start} is not valid UTF-8`);
    }
  }
}

/** 64-bit integers become numbers when exact, and stay bigints otherwise. */
function narrow(value: bigint): number | bigint {
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(value)
    : value;
}

/** The fewest bytes one item of `type` can take (a string is at least its 8-byte length). */
function minimumBytes(type: number): number {
  return type === GgufValueType.STRING ? 8 : (SCALAR_BYTES[type] ?? 1);
}

async function readValue(cursor: Cursor, type: number, what: string): Promise<GgufScalar | GgufArray> {
  if (type !== GgufValueType.ARRAY) return cursor.scalar(type, what);
  const itemType = await cursor.u32(`the item type of ${what}`);
  if (itemType === GgufValueType.ARRAY) {
    throw new GgufError(cursor.path, `${what} is an array of arrays, which this reader does not support`);
  }
  if (!(itemType in SCALAR_BYTES) && itemType !== GgufValueType.STRING) {
    throw new GgufError(cursor.path, `${what} is an array of unknown value type ${itemType}`);
  }
  const count = await cursor.u64(`the length of ${what}`);
  const most = Math.floor(cursor.remaining() / minimumBytes(itemType));
  if (count > BigInt(most)) {
    throw new GgufError(
      cursor.path,
      `${what} claims ${count} items, but the ${cursor.remaining()} bytes left in the file hold at most ${most}`,
    );
  }
  const values: GgufScalar[] = new Array(Number(count));
  for (let i = 0; i < values.length; i++) values[i] = await cursor.scalar(itemType, `${what}[${i}]`);
  return { itemType: itemType as GgufValueType, values };
}

/** Reads and checks the header of an open GGUF file. */
export async function readGgufHeader(handle: FileHandle, path: string): Promise<GgufHeader> {
  const fileSize = (await handle.stat()).size;
  const cursor = new Cursor(handle, path, fileSize);
  if (fileSize < 4) throw new GgufError(path, `not a GGUF file: only ${fileSize} bytes`);
  const magic = await cursor.u32('the magic number');
  if (magic !== GGUF_MAGIC) {
    const shown = Array.from(new Uint8Array(new Uint32Array([magic]).buffer), (b) =>
      b.toString(16).padStart(2, '0'),
    );
    throw new GgufError(path, `not a GGUF file: it starts with bytes ${shown.join(' ')}, not "GGUF"`);
  }
  const version = await cursor.u32('the version');
  if (version !== 2 && version !== 3) {
    const hint =
      version === 1 ? ' (GGUF v1 is obsolete)' : (version & 0xffff) === 0 ? ' (a big-endian file?)' : '';
    throw new GgufError(path, `GGUF version ${version} is not supported; supported: 2, 3${hint}`);
  }
  const tensorCount = await cursor.u64('the tensor count');
  const keyCount = await cursor.u64('the metadata count');
  // A key-value pair takes at least 8 + 4 + 1 bytes, a tensor info at least 8 + 4 + 4 + 8.
  checkCount(cursor, keyCount, 'metadata key-value pairs', 13, GGUF_LIMITS.maxKeys);
  checkCount(cursor, tensorCount, 'tensors', 24, GGUF_LIMITS.maxTensors);

  const metadata: GgufMetadata = new Map();
  for (let i = 0; i < Number(keyCount); i++) {
    const key = await cursor.string(`metadata key #${i}`);
    const type = await cursor.u32(`the value type of '${key}'`);
    if (!(type in SCALAR_BYTES) && type !== GgufValueType.STRING && type !== GgufValueType.ARRAY) {
      throw new GgufError(path, `metadata '${key}' has unknown value type ${type}`);
    }
    if (metadata.has(key)) throw new GgufError(path, `metadata key '${key}' appears twice`);
    const value = await readValue(cursor, type, `metadata '${key}'`);
    metadata.set(key, { type: type as GgufValueType, value } satisfies GgufEntry);
  }
  const alignment = alignmentOf(metadata, path);

  const infos: { name: string; dims: number[]; type: number; offset: bigint }[] = [];
  const names = new Set<string>();
  for (let i = 0; i < Number(tensorCount); i++) {
    const name = await cursor.string(`the name of tensor #${i}`);
    if (names.has(name)) throw new GgufError(path, `tensor '${name}' appears twice`);
    names.add(name);
    const nDims = await cursor.u32(`the dimension count of '${name}'`);
    if (nDims < 1 || nDims > GGUF_LIMITS.maxDims) {
      throw new GgufError(
        path,
        `tensor '${name}' has ${nDims} dimensions; 1 to ${GGUF_LIMITS.maxDims} are allowed`,
      );
    }
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) {
      const dim = await cursor.u64(`dimension ${d} of '${name}'`);
      if (dim > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new GgufError(path, `tensor '${name}' has dimension ${d} of ${dim}, too large`);
      }
      dims.push(Number(dim));
    }
    const type = await cursor.u32(`the type of '${name}'`);
    const offset = await cursor.u64(`the offset of '${name}'`);
    infos.push({ name, dims, type, offset });
  }
  const dataOffset = cursor.pos + ((alignment - (cursor.pos % alignment)) % alignment);
  const dataLength = Math.max(0, fileSize - dataOffset);
  const tensors = new Map<string, GgufTensorInfo>();
  for (const info of infos)
    tensors.set(info.name, checkTensor(path, info, alignment, dataOffset, dataLength));
  checkOverlaps(path, [...tensors.values()]);
  return { version, metadata, tensors, alignment, dataOffset, fileSize };
}

function checkCount(cursor: Cursor, count: bigint, what: string, minBytes: number, limit: number): void {
  const most = Math.min(limit, Math.floor(cursor.remaining() / minBytes));
  if (count > BigInt(most)) {
    throw new GgufError(
      cursor.path,
      `the header claims ${count} ${what}, but at most ${most} fit in the ${cursor.remaining()} bytes left in the file` +
        (most === limit ? ` (limit ${limit})` : ''),
    );
  }
}

function alignmentOf(metadata: GgufMetadata, path: string): number {
  const entry = metadata.get('general.alignment');
  if (!entry) return GGUF_DEFAULT_ALIGNMENT;
  const value = entry.value;
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0 || (value & (value - 1)) !== 0) {
    throw new GgufError(path, `general.alignment is ${String(value)}; it must be a power of two`);
  }
  return value;
}

function checkTensor(
  path: string,
  info: { name: string; dims: number[]; type: number; offset: bigint },
  alignment: number,
  dataOffset: number,
  dataLength: number,
): GgufTensorInfo {
  const { name, dims, type, offset } = info;
  const block = GGML_BLOCK[type];
  if (!block) {
    const known = Object.entries(GGML_TYPE_NAMES)
      .map(([id, n]) => `${n} (${id})`)
      .join(', ');
    throw new GgufError(
      path,
      `tensor '${name}' has ggml type ${type}, which this reader does not support; supported: ${known}`,
    );
  }
  let elements = 1n;
  for (const dim of dims) elements *= BigInt(dim);
  if (elements > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new GgufError(
      path,
      `tensor '${name}' has dimensions [${dims.join(', ')}], whose ${elements} elements overflow`,
    );
  }
  if (dims[0] % block.elements !== 0) {
    throw new GgufError(
      path,
      `tensor '${name}' is ${GGML_TYPE_NAMES[type]} with rows of ${dims[0]} values, not a multiple of its block of ${block.elements}`,
    );
  }
  const byteLength = (Number(elements) / block.elements) * block.bytes;
  if (offset % BigInt(alignment) !== 0n) {
    throw new GgufError(
      path,
      `tensor '${name}' starts at data offset ${offset}, not a multiple of the alignment ${alignment}`,
    );
  }
  if (offset + BigInt(byteLength) > BigInt(dataLength)) {
    throw new GgufError(
      path,
      `tensor '${name}' spans data bytes [${offset}, ${offset + BigInt(byteLength)}), past the end of the data section (${dataLength} bytes): the file is truncated or the offset is wrong`,
    );
  }
  return {
    name,
    dims,
    type,
    elements: Number(elements),
    byteLength,
    fileOffset: dataOffset + Number(offset),
  };
}

function checkOverlaps(path: string, tensors: GgufTensorInfo[]): void {
  const sorted = tensors.filter((t) => t.byteLength > 0).sort((a, b) => a.fileOffset - b.fileOffset);
  for (let i = 1; i < sorted.length; i++) {
    const previous = sorted[i - 1];
    if (sorted[i].fileOffset < previous.fileOffset + previous.byteLength) {
      throw new GgufError(
        path,
        `tensors '${previous.name}' and '${sorted[i].name}' overlap in the data section`,
      );
    }
  }
}

/** An open GGUF file: the checked header, and tensors read by offset on demand. */
export interface GgufFile extends GgufHeader {
  readonly path: string;
  info(name: string): GgufTensorInfo;
  /** The raw bytes of `count` consecutive rows (ne[0] values each) from row `firstRow` on. */
  readRows(name: string, firstRow: number, count: number): Promise<Uint8Array>;
  /** The whole tensor dequantized to float32, in ggml order (row-major over reversed dims). */
  readFloat32(name: string): Promise<Float32Array>;
  close(): Promise<void>;
}

export async function openGguf(path: string): Promise<GgufFile> {
  const handle = await open(path, 'r');
  let header: GgufHeader;
  try {
    header = await readGgufHeader(handle, path);
  } catch (error) {
    await handle.close();
    throw error;
  }
  let closed = false;
  const info = (name: string): GgufTensorInfo => {
    const entry = header.tensors.get(name);
    if (!entry) throw new GgufError(path, `no tensor named '${name}' in this file`);
    return entry;
  };
  async function readRows(name: string, firstRow: number, count: number): Promise<Uint8Array> {
    const entry = info(name);
    if (closed) throw new GgufError(path, `file was closed before reading '${name}'`);
    const rows = entry.dims[0] === 0 ? 0 : entry.elements / entry.dims[0];
    const rowBytes = rows === 0 ? 0 : entry.byteLength / rows;
    const bytes = new Uint8Array(count * rowBytes);
    let filled = 0;
    while (filled < bytes.length) {
      const position = entry.fileOffset + firstRow * rowBytes + filled;
      const { bytesRead } = await handle.read(
        bytes,
        filled,
        Math.min(bytes.length - filled, 1 << 30),
        position,
      );
      if (bytesRead === 0) throw new GgufError(path, `file is truncated: it ended at byte ${position}`);
      filled += bytesRead;
    }
    return bytes;
  }
  return {
    ...header,
    path,
    info,
    readRows,
    async readFloat32(name) {
      const entry = info(name);
      if (entry.elements === 0) return new Float32Array(0);
      const rows = entry.elements / entry.dims[0];
      return dequantize(entry.type, await readRows(name, 0, rows), entry.elements);
    },
    async close() {
      if (closed) return;
      closed = true;
      await handle.close();
    },
  };
}
