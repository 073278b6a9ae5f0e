import { type SafetensorsDtype, type TensorDtype, tensorDtypeOf } from './dtypes.js';
import { SafetensorsError } from './errors.js';
import { bfloat16BitsToFloat32, halfBitsToFloat32 } from './half.js';

export interface TensorValues {
  readonly values: Float32Array | Int32Array;
  readonly dtype: TensorDtype;
}

type TypedArrayOf<T> = {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): T;
  readonly BYTES_PER_ELEMENT: number;
};

/** Views `bytes` as `type` without copying when aligned; copies into a fresh (aligned) buffer otherwise. */
function view<T>(type: TypedArrayOf<T>, bytes: Uint8Array): T {
  const size = type.BYTES_PER_ELEMENT;
  const source = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  return new type(source.buffer, source.byteOffset, source.byteLength / size);
}

/**
 * Turns one tensor's little-endian bytes into the 32-bit array tfjs wants. F32 and I32 reuse
 * `bytes` (the caller hands over a buffer it no longer needs), so a float32 checkpoint costs
 * one copy of each tensor, not two.
 */
export function decodeTensorBytes(
  bytes: Uint8Array,
  dtype: SafetensorsDtype,
  name: string,
  path: string,
): TensorValues {
  const values = decodeValues(bytes, dtype, name, path);
  return { values, dtype: tensorDtypeOf(dtype) };
}

function decodeValues(bytes: Uint8Array, dtype: SafetensorsDtype, name: string, path: string) {
  switch (dtype) {
    case 'F32':
      return view(Float32Array, bytes);
    case 'F16':
      return halfBitsToFloat32(view(Uint16Array, bytes));
    case 'BF16':
      return bfloat16BitsToFloat32(view(Uint16Array, bytes));
    case 'F64':
      return new Float32Array(view(Float64Array, bytes));
    case 'I32':
      return view(Int32Array, bytes);
    case 'I16':
      return new Int32Array(view(Int16Array, bytes));
    case 'U16':
      return new Int32Array(view(Uint16Array, bytes));
    case 'I8':
      return new Int32Array(new Int8Array(bytes.buffer, bytes.byteOffset, bytes.length));
    case 'U8':
      return new Int32Array(bytes);
    case 'BOOL':
      return Int32Array.from(bytes, (byte) => (byte === 0 ? 0 : 1));
    case 'U32':
      return narrowToInt32(view(Uint32Array, bytes), name, path, dtype);
    case 'I64':
      return narrowToInt32(view(BigInt64Array, bytes), name, path, dtype);
    case 'U64':
      return narrowToInt32(view(BigUint64Array, bytes), name, path, dtype);
  }
}

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

/** tfjs has no 64-bit or unsigned 32-bit ints; silently wrapping ids or positions would be worse than failing. */
function narrowToInt32(
  source: ArrayLike<number | bigint>,
  name: string,
  path: string,
  dtype: SafetensorsDtype,
): Int32Array {
  const out = new Int32Array(source.length);
  for (let i = 0; i < source.length; i++) {
    const value = Number(source[i]);
    if (value < INT32_MIN || value > INT32_MAX) {
      throw new SafetensorsError(
        path,
        `tensor '${name}' (${dtype}) holds ${source[i]} at index ${i}, outside the int32 range tfjs supports`,
      );
    }
    out[i] = value;
  }
  return out;
}
