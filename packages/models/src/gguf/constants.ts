// The numbers of the GGUF format (version 3) that this package reads and writes, as the
// format's specification (ggml's docs/gguf.md) defines them.

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian uint32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Metadata value types. */
export const GgufValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
export type GgufValueType = (typeof GgufValueType)[keyof typeof GgufValueType];

/** Fixed byte sizes of the scalar value types (strings and arrays have none). */
export const SCALAR_BYTES: Readonly<Record<number, number>> = {
  [GgufValueType.UINT8]: 1,
  [GgufValueType.INT8]: 1,
  [GgufValueType.UINT16]: 2,
  [GgufValueType.INT16]: 2,
  [GgufValueType.UINT32]: 4,
  [GgufValueType.INT32]: 4,
  [GgufValueType.FLOAT32]: 4,
  [GgufValueType.BOOL]: 1,
  [GgufValueType.UINT64]: 8,
  [GgufValueType.INT64]: 8,
  [GgufValueType.FLOAT64]: 8,
};

/** ggml tensor types this package knows: the ones it can write, plus the k-quants it can read. */
export const GgmlType = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q8_0: 8,
  Q4_K: 12,
  Q6_K: 14,
} as const;
export type GgmlType = (typeof GgmlType)[keyof typeof GgmlType];

export const GGML_TYPE_NAMES: Readonly<Record<number, string>> = Object.fromEntries(
  Object.entries(GgmlType).map(([name, id]) => [id, name]),
);

/** Elements per block and bytes per block of each type (a plain float is a block of one). */
export const GGML_BLOCK: Readonly<Record<number, { elements: number; bytes: number }>> = {
  [GgmlType.F32]: { elements: 1, bytes: 4 },
  [GgmlType.F16]: { elements: 1, bytes: 2 },
  // f16 scale + 32 nibbles
  [GgmlType.Q4_0]: { elements: 32, bytes: 2 + 16 },
  // f16 scale + 32 int8
  [GgmlType.Q8_0]: { elements: 32, bytes: 2 + 32 },
  // f16 d, f16 dmin, 12 bytes of 6-bit scales and mins, 128 bytes of nibbles
  [GgmlType.Q4_K]: { elements: 256, bytes: 2 + 2 + 12 + 128 },
  // 128 bytes of low nibbles, 64 of high 2-bit pairs, 16 int8 scales, f16 d
  [GgmlType.Q6_K]: { elements: 256, bytes: 128 + 64 + 16 + 2 },
};

/** general.file_type: what most of the tensors are ("mostly"), as llama.cpp's tools report it. */
export const GGUF_FILE_TYPE = { f32: 0, f16: 1, q4_0: 2, q8_0: 7 } as const;

/** tokenizer.ggml.token_type values. */
export const TokenType = {
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;
