import { open } from 'node:fs/promises';
import { InvalidArgumentError } from '@specstream/core';
import { DTYPE_BYTES, elementCount, HOST_IS_LITTLE_ENDIAN, type SafetensorsDtype } from './dtypes.js';
import { SafetensorsError } from './errors.js';
import { float32ToBfloat16Bits, float32ToHalfBits } from './half.js';

export interface TensorToWrite {
  dtype: SafetensorsDtype;
  shape: readonly number[];
  /** Float values for F*, integers for the rest (bigints allowed for I64/U64). F16/BF16 round to nearest even. */
  data: ArrayLike<number> | BigInt64Array | BigUint64Array;
}

/**
 * Writes a safetensors file, one tensor at a time (for tests and benchmarks). The header is
 * space-padded to a multiple of 8 bytes, as the reference writer does, so every tensor that
 * starts on an element boundary in the data section is aligned in the file too.
 */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
): Promise<void> {
  if (!HOST_IS_LITTLE_ENDIAN) throw new SafetensorsError(path, 'big-endian hosts are not supported');
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  let offset = 0;
  for (const [name, tensor] of Object.entries(tensors)) {
    checkTensor(name, tensor);
    const byteLength = elementCount(tensor.shape) * DTYPE_BYTES[tensor.dtype];
    header[name] = { dtype: tensor.dtype, shape: tensor.shape, data_offsets: [offset, offset + byteLength] };
    offset += byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const paddedLength = Math.ceil(json.length / 8) * 8;
  const prefix = new Uint8Array(8 + paddedLength).fill(0x20);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(paddedLength), true);
  prefix.set(json, 8);

  const handle = await open(path, 'w');
  try {
    await handle.write(prefix);
    for (const tensor of Object.values(tensors)) await handle.write(encodeTensor(tensor));
  } finally {
    await handle.close();
  }
}

function checkTensor(name: string, tensor: TensorToWrite): void {
  if (!Object.hasOwn(DTYPE_BYTES, tensor.dtype)) {
    throw new InvalidArgumentError(`tensor '${name}': unknown dtype ${JSON.stringify(tensor.dtype)}`);
  }
  const count = elementCount(tensor.shape);
  if (count !== tensor.data.length) {
    throw new InvalidArgumentError(
      `tensor '${name}': shape [${tensor.shape.join(', ')}] has ${count} elements but data has ${tensor.data.length}`,
    );
  }
}

function encodeTensor({ dtype, data }: TensorToWrite): Uint8Array {
  const numbers = data as ArrayLike<number>;
  const typed = ((): ArrayBufferView => {
    switch (dtype) {
      case 'F64':
        return Float64Array.from(numbers);
      case 'F32':
        return Float32Array.from(numbers);
      case 'F16':
        return float32ToHalfBits(numbers);
      case 'BF16':
        return float32ToBfloat16Bits(numbers);
      case 'I64':
        return BigInt64Array.from(data as ArrayLike<number | bigint>, (value) => BigInt(value));
      case 'U64':
        return BigUint64Array.from(data as ArrayLike<number | bigint>, (value) => BigInt(value));
      case 'I32':
        return Int32Array.from(numbers);
      case 'U32':
        return Uint32Array.from(numbers);
      case 'I16':
        return Int16Array.from(numbers);
      case 'U16':
        return Uint16Array.from(numbers);
      case 'I8':
        return Int8Array.from(numbers);
      case 'U8':
      case 'BOOL':
        return Uint8Array.from(numbers);
    }
  })();
  return new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
}
