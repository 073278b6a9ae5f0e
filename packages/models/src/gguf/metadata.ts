import { GgufValueType } from './constants.js';

export type GgufScalar = number | bigint | boolean | string;

/** An array value: one item type for all items (arrays of arrays are not used by llama.cpp's models). */
export interface GgufArray {
  readonly itemType: GgufValueType;
  readonly values: readonly GgufScalar[];
}

/** One metadata value with its GGUF type (needed to write it, and kept when read). */
export interface GgufEntry {
  readonly type: GgufValueType;
  readonly value: GgufScalar | GgufArray;
}

export type GgufMetadata = Map<string, GgufEntry>;

export const entry = {
  string: (value: string): GgufEntry => ({ type: GgufValueType.STRING, value }),
  uint32: (value: number): GgufEntry => ({ type: GgufValueType.UINT32, value }),
  int32: (value: number): GgufEntry => ({ type: GgufValueType.INT32, value }),
  float32: (value: number): GgufEntry => ({ type: GgufValueType.FLOAT32, value }),
  bool: (value: boolean): GgufEntry => ({ type: GgufValueType.BOOL, value }),
  strings: (values: readonly string[]): GgufEntry => ({
    type: GgufValueType.ARRAY,
    value: { itemType: GgufValueType.STRING, values },
  }),
  int32s: (values: readonly number[]): GgufEntry => ({
    type: GgufValueType.ARRAY,
    value: { itemType: GgufValueType.INT32, values },
  }),
};

const INTEGER_TYPES: readonly number[] = [
  GgufValueType.UINT8,
  GgufValueType.INT8,
  GgufValueType.UINT16,
  GgufValueType.INT16,
  GgufValueType.UINT32,
  GgufValueType.INT32,
  GgufValueType.UINT64,
  GgufValueType.INT64,
];

export function isIntegerType(type: number): boolean {
  return INTEGER_TYPES.includes(type);
}

export function isNumberType(type: number): boolean {
  return isIntegerType(type) || type === GgufValueType.FLOAT32 || type === GgufValueType.FLOAT64;
}
