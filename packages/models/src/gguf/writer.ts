import { open } from 'node:fs/promises';
import { GGML_BLOCK, GGUF_MAGIC, GGUF_VERSION, GgufValueType, SCALAR_BYTES } from './constants.js';
import { GgufError } from './errors.js';
import type { GgufArray, GgufEntry, GgufMetadata, GgufScalar } from './metadata.js';

/** A tensor to write: its bytes are produced when its turn comes, so at most one is in memory. */
export interface GgufTensorToWrite {
  readonly name: string;
  /** ggml order: innermost (fastest-varying) first, i.e. the reverse of a row-major shape. */
  readonly dims: readonly number[];
  readonly type: number;
  bytes(): Promise<Uint8Array> | Uint8Array;
}

/** Bytes that a tensor of `type` and `dims` occupies. */
export function tensorByteLength(type: number, dims: readonly number[]): number {
  const block = GGML_BLOCK[type];
  const elements = dims.reduce((a, b) => a * b, 1);
  return (elements / block.elements) * block.bytes;
}

const utf8 = new TextEncoder();

/** Little-endian serialization into a list of chunks. */
class ByteWriter {
  private readonly chunks: Uint8Array[] = [];
  length = 0;

  private push(bytes: Uint8Array): void {
    this.chunks.push(bytes);
    this.length += bytes.length;
  }
  private scalarBytes(size: number, write: (view: DataView) => void): void {
    const bytes = new Uint8Array(size);
    write(new DataView(bytes.buffer));
    this.push(bytes);
  }
  u32(v: number): void {
    this.scalarBytes(4, (d) => d.setUint32(0, v, true));
  }
  u64(v: number | bigint): void {
    this.scalarBytes(8, (d) => d.setBigUint64(0, BigInt(v), true));
  }
  string(s: string): void {
    const bytes = utf8.encode(s);
    this.u64(bytes.length);
    this.push(bytes);
  }
  scalar(type: number, v: GgufScalar): void {
    if (type === GgufValueType.STRING) {
      this.string(String(v));
      return;
    }
    const size = SCALAR_BYTES[type];
    if (size === undefined) throw new Error(`cannot write a GGUF value of type ${type}`);
    this.scalarBytes(size, (d) => setScalar(d, type, v));
  }
  value({ type, value }: GgufEntry): void {
    this.u32(type);
    if (type !== GgufValueType.ARRAY) {
      this.scalar(type, value as GgufScalar);
      return;
    }
    const { itemType, values } = value as GgufArray;
    this.u32(itemType);
    this.u64(values.length);
    for (const v of values) this.scalar(itemType, v);
  }
  zeros(n: number): void {
    if (n > 0) this.push(new Uint8Array(n));
  }
  bytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const chunk of this.chunks) {
      out.set(chunk, at);
      at += chunk.length;
    }
    return out;
  }
}

function setScalar(d: DataView, type: number, v: GgufScalar): void {
  switch (type) {
    case GgufValueType.UINT8:
      d.setUint8(0, Number(v));
      break;
    case GgufValueType.INT8:
      d.setInt8(0, Number(v));
      break;
    case GgufValueType.UINT16:
      d.setUint16(0, Number(v), true);
      break;
    case GgufValueType.INT16:
      d.setInt16(0, Number(v), true);
      break;
    case GgufValueType.UINT32:
      d.setUint32(0, Number(v), true);
      break;
    case GgufValueType.INT32:
      d.setInt32(0, Number(v), true);
      break;
    case GgufValueType.FLOAT32:
      d.setFloat32(0, Number(v), true);
      break;
    case GgufValueType.BOOL:
      d.setUint8(0, v ? 1 : 0);
      break;
    case GgufValueType.UINT64:
      d.setBigUint64(0, BigInt(v), true);
      break;
    case GgufValueType.INT64:
      d.setBigInt64(0, BigInt(v), true);
      break;
    case GgufValueType.FLOAT64:
      d.setFloat64(0, Number(v), true);
      break;
  }
}

const padding = (offset: number, alignment: number) => (alignment - (offset % alignment)) % alignment;

/**
 * Writes a GGUF v3 file: header, metadata, tensor infos, then each tensor's bytes at an
 * offset aligned to `general.alignment` (which must be in `metadata`), zero-padded between.
 */
export async function writeGguf(
  path: string,
  metadata: GgufMetadata,
  tensors: readonly GgufTensorToWrite[],
): Promise<void> {
  const alignmentEntry = metadata.get('general.alignment');
  const alignment = alignmentEntry ? Number(alignmentEntry.value) : 32;
  const header = new ByteWriter();
  header.u32(GGUF_MAGIC);
  header.u32(GGUF_VERSION);
  header.u64(tensors.length);
  header.u64(metadata.size);
  for (const [key, value] of metadata) {
    header.string(key);
    header.value(value);
  }
  let offset = 0;
  const lengths: number[] = [];
  for (const tensor of tensors) {
    header.string(tensor.name);
    header.u32(tensor.dims.length);
    for (const dim of tensor.dims) header.u64(dim);
    header.u32(tensor.type);
    header.u64(offset);
    const length = tensorByteLength(tensor.type, tensor.dims);
    lengths.push(length);
    offset += length + padding(length, alignment);
  }
  header.zeros(padding(header.length, alignment));

  const handle = await open(path, 'w');
  try {
    await handle.write(header.bytes());
    for (const [i, tensor] of tensors.entries()) {
      const bytes = await tensor.bytes();
      if (bytes.length !== lengths[i]) {
        throw new GgufError(
          path,
          `tensor '${tensor.name}' has ${bytes.length} bytes, but [${tensor.dims}] of its type needs ${lengths[i]}`,
        );
      }
      await handle.write(bytes);
      const pad = padding(bytes.length, alignment);
      if (pad > 0) await handle.write(new Uint8Array(pad));
    }
  } finally {
    await handle.close();
  }
}
