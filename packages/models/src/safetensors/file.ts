import { open } from 'node:fs/promises';
import { DisposedError } from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { decodeTensorBytes, type TensorValues } from './decode.js';
import { HOST_IS_LITTLE_ENDIAN, tensorDtypeOf } from './dtypes.js';
import { SafetensorsError } from './errors.js';
import { type ParsedHeader, readHeader, type TensorInfo } from './header.js';
import { readExactly } from './io.js';

/** What a single file and a sharded checkpoint have in common. */
export interface TensorReader {
  /** Tensor names, in header (or index) order. */
  readonly names: readonly string[];
  has(name: string): boolean;
  /** Header entry of `name`; throws a SafetensorsError naming it if absent. */
  info(name: string): TensorInfo;
  /** Reads just this tensor's bytes and widens them to float32 / int32, without creating a tensor. */
  readValues(name: string): Promise<TensorValues>;
  /**
   * A float tensor's values as float32, in consecutive chunks of at most
   * `chunkElements`: for a destination outside tfjs (core's weight arena)
   * with no whole host copy in between.
   */
  readChunks(name: string, chunkElements?: number): AsyncIterable<Float32Array>;
  /** Like readValues, wrapped in a new tf.Tensor the caller owns (and must dispose). */
  readTensor(name: string): Promise<tf.Tensor>;
  close(): Promise<void>;
}

export interface SafetensorsFile extends TensorReader {
  readonly path: string;
  readonly metadata: Readonly<Record<string, string>>;
}

/** Opens `path` and parses only its header; tensor bytes are read on demand with positioned reads. */
export async function openSafetensors(path: string): Promise<SafetensorsFile> {
  if (!HOST_IS_LITTLE_ENDIAN) throw new SafetensorsError(path, 'big-endian hosts are not supported');
  const handle = await open(path, 'r');
  let header: ParsedHeader;
  try {
    header = await readHeader(handle, path);
  } catch (error) {
    await handle.close();
    throw error;
  }
  const { tensors, metadata } = header;
  let closed = false;

  const info = (name: string): TensorInfo => {
    const entry = tensors.get(name);
    if (!entry) throw new SafetensorsError(path, `no tensor named '${name}' in this file`);
    return entry;
  };

  const readValues = async (name: string): Promise<TensorValues> => {
    const entry = info(name);
    if (closed) throw new DisposedError(`${path}: file was closed before reading '${name}'`);
    // A fresh buffer per tensor keeps peak memory at one tensor beyond what tfjs holds.
    const bytes = new Uint8Array(entry.byteLength);
    await readExactly(handle, path, bytes, entry.fileOffset);
    return decodeTensorBytes(bytes, entry.dtype, name, path);
  };

  async function* readChunks(name: string, chunkElements = 1 << 20): AsyncIterable<Float32Array> {
    const entry = info(name);
    if (tensorDtypeOf(entry.dtype) !== 'float32') {
      throw new SafetensorsError(path, `tensor '${name}' is ${entry.dtype}, not a float tensor`);
    }
    const elements = entry.shape.reduce((a, b) => a * b, 1);
    const elementBytes = entry.byteLength / Math.max(elements, 1);
    for (let at = 0; at < elements; at += chunkElements) {
      if (closed) throw new DisposedError(`${path}: file was closed while reading '${name}'`);
      const count = Math.min(chunkElements, elements - at);
      const bytes = new Uint8Array(count * elementBytes);
      await readExactly(handle, path, bytes, entry.fileOffset + at * elementBytes);
      yield decodeTensorBytes(bytes, entry.dtype, name, path).values as Float32Array;
    }
  }

  return {
    path,
    metadata,
    names: [...tensors.keys()],
    has: (name) => tensors.has(name),
    info,
    readValues,
    readChunks,
    readTensor: async (name) => {
      const { values, dtype } = await readValues(name);
      return tf.tensor(values, [...info(name).shape], dtype);
    },
    close: async () => {
      if (closed) return;
      closed = true;
      await handle.close();
    },
  };
}
