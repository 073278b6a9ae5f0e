// GGUF export and loading: the format round trip, the quantizers' error in closed form, and
// models that go HF folder → GGUF → loadModel and give the HF folder's logits.
import { join } from 'node:path';
import { type CausalLm, createRng, initBackend, weightArena } from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { maxAbsDiff } from '../../../test-support/max-abs-diff.js';
import { randomArray } from '../../../test-support/random-arrays.js';
import {
  dequantize,
  exportGguf,
  GgmlType,
  GgufValueType,
  loadGgufTokenizer,
  openGguf,
  quantizeQ4_0,
  quantizeQ8_0,
  writeGguf,
} from '../src/gguf/index.js';
import { entry, type GgufArray, type GgufMetadata } from '../src/gguf/metadata.js';
import { tokenizerFromGguf, tokenizerMetadata } from '../src/gguf/tokenizer.js';
import { loadCausalLm, loadModel } from '../src/load-model.js';
import { openSafetensors } from '../src/safetensors/file.js';
import { floatToHalfBits, halfBitsToFloat } from '../src/safetensors/half.js';
import { writeSafetensors } from '../src/safetensors/write.js';
import { loadTokenizer } from '../src/tokenizer/index.js';
import { type CausalReference, greedyContinuation, readCausalReference } from './causal-reference.js';
import { causalFixture, FIXTURES_DIR, readFixtureJson, tokenizerFixture } from './fixtures.js';
import { fixtureFolder, fullLogits, LINEAR_ROPE, removeDir, tempDir } from './gguf-helpers.js';

function transposed(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = values[r * cols + c];
  return out;
}

const f16 = (x: number) => halfBitsToFloat(floatToHalfBits(x));
const F16_EPS = 2 ** -11;

let dir: string;
beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  dir = tempDir('gguf');
});
afterAll(() => removeDir(dir));

describe('file format', () => {
  test('metadata of every value type and tensors of every written type round-trip, aligned', async () => {
    const metadata: GgufMetadata = new Map([
      ['general.alignment', entry.uint32(64)],
      ['t.u8', { type: GgufValueType.UINT8, value: 255 }],
      ['t.i8', { type: GgufValueType.INT8, value: -128 }],
      ['t.u16', { type: GgufValueType.UINT16, value: 65535 }],
      ['t.i16', { type: GgufValueType.INT16, value: -32768 }],
      ['t.i32', entry.int32(-5)],
      ['t.f32', entry.float32(0.5)],
      ['t.bool', entry.bool(true)],
      ['t.string', entry.string('naïve ✓')],
      ['t.u64', { type: GgufValueType.UINT64, value: 2n ** 60n }],
      ['t.i64', { type: GgufValueType.INT64, value: -7 }],
      ['t.f64', { type: GgufValueType.FLOAT64, value: Math.PI }],
      ['t.strings', entry.strings(['a', '', 'ü c'])],
      ['t.int32s', entry.int32s([1, -2, 3])],
    ]);
    const values = randomArray(64 * 3, createRng(7));
    const tensors = [
      { name: 'a', dims: [64, 3], type: GgmlType.F32, bytes: () => new Uint8Array(values.buffer) },
      {
        name: 'b',
        dims: [5],
        type: GgmlType.F16,
        bytes: () => new Uint8Array(new Uint16Array(5).fill(0x3c00).buffer),
      },
      { name: 'c', dims: [64, 3], type: GgmlType.Q8_0, bytes: () => quantizeQ8_0(values) },
      { name: 'd', dims: [64, 3], type: GgmlType.Q4_0, bytes: () => quantizeQ4_0(values) },
    ];
    const path = join(dir, 'format.gguf');
    await writeGguf(path, metadata, tensors);
    const file = await openGguf(path);
    try {
      expect(file.version).toBe(3);
      expect(file.alignment).toBe(64);
      expect([...file.metadata.keys()]).toEqual([...metadata.keys()]);
      for (const [key, value] of metadata) {
        const read = file.metadata.get(key)!;
        expect(read.type).toBe(value.type);
        expect(read.value).toEqual(value.value);
      }
      expect(file.dataOffset % 64).toBe(0);
      for (const t of tensors) {
        const info = file.info(t.name);
        expect(info.dims).toEqual(t.dims);
        expect(info.type).toBe(t.type);
        expect((info.fileOffset - file.dataOffset) % 64).toBe(0);
      }
      expect(await file.readFloat32('a')).toEqual(values);
      expect(await file.readFloat32('b')).toEqual(new Float32Array(5).fill(1));
      expect(await file.readFloat32('c')).toEqual(
        dequantize(GgmlType.Q8_0, quantizeQ8_0(values), values.length),
      );
      // Rows can be read alone: row 2 of the Q4_0 tensor is its last 64 values.
      const row = dequantize(GgmlType.Q4_0, await file.readRows('d', 2, 1), 64);
      expect(row).toEqual((await file.readFloat32('d')).subarray(128));
    } finally {
      await file.close();
    }
  });
});

/**
 * The most a quantized value may differ from x. With s the f32 scale and h = f16(s) the stored
 * one, and q the integer stored for x (Q8_0: round(x/s); Q4_0: n − 8):
 *   |x − q·h| ≤ |x − q·s| + |q|·|s − h|,
 * where |x − q·s| ≤ |s|/2 (rounding to the nearest level) except at Q4_0's clamped end, where
 * x/s ∈ (7.5, 8] is stored as 7 and the error is |x − 7s|. The float32 product x·(1/s) adds a
 * relative 2^-23 or two, allowed for with 2^-20·|s|.
 */
function quantizationBound(type: number, block: Float32Array, index: number): number {
  let amax = 0;
  let max = 0;
  for (const v of block) {
    if (Math.abs(v) > amax) {
      amax = Math.abs(v);
      max = v;
    }
  }
  const s = type === GgmlType.Q8_0 ? Math.fround(amax / 127) : Math.fround(max / -8);
  const h = f16(s);
  if (s === 0) return 0;
  const x = block[index];
  const ratio = x / s;
  const slack = 2 ** -20 * Math.abs(s);
  if (type === GgmlType.Q8_0) return Math.abs(s) / 2 + Math.abs(Math.round(ratio)) * Math.abs(s - h) + slack;
  const clamped = ratio > 7.5;
  const rounding = clamped ? Math.abs(x - 7 * s) : Math.abs(s) / 2;
  return rounding + 8 * Math.abs(s - h) + slack;
}

describe('quantizers', () => {
  test.each([
    ['Q8_0', GgmlType.Q8_0],
    ['Q4_0', GgmlType.Q4_0],
  ])('%s: each dequantized value is within the closed-form bound of its input', (_, type) => {
    // Blocks of ordinary values, plus blocks that are all zero, constant, or hold one outlier.
    const values = randomArray(32 * 64, createRng(11));
    values.fill(0, 32, 64);
    values.fill(-0.3, 64, 96);
    values[100] = 40;
    const quantized = type === GgmlType.Q8_0 ? quantizeQ8_0(values) : quantizeQ4_0(values);
    expect(quantized.length).toBe((values.length / 32) * (type === GgmlType.Q8_0 ? 34 : 18));
    const back = dequantize(type, quantized, values.length);
    let worst = 0;
    for (let b = 0; b < values.length / 32; b++) {
      const block = values.subarray(b * 32, b * 32 + 32);
      for (let j = 0; j < 32; j++) {
        const error = Math.abs(back[b * 32 + j] - block[j]);
        const bound = quantizationBound(type, block, j);
        expect(error).toBeLessThanOrEqual(bound);
        worst = Math.max(worst, error / Math.max(bound, 1e-30));
      }
    }
    // The bound is tight enough to mean something: some value comes within half of it.
    expect(worst).toBeGreaterThan(0.5);
    expect(back.subarray(32, 64).every((v) => v === 0)).toBe(true);
  });

  test('Q4_0 packs element j in the low nibble and j + 16 in the high nibble, value (n − 8)·d', () => {
    // max = −8 → d = 1: element j holds j − 8 for j < 16 and 7 − (j − 16) after.
    const values = Float32Array.from({ length: 32 }, (_, j) => (j < 16 ? j - 8 : 7 - (j - 16)));
    const bytes = quantizeQ4_0(values);
    expect(halfBitsToFloat(bytes[0] | (bytes[1] << 8))).toBe(1);
    for (let j = 0; j < 16; j++) {
      expect(bytes[2 + j] & 0x0f).toBe(j);
      expect(bytes[2 + j] >> 4).toBe(15 - j);
    }
    expect(dequantize(GgmlType.Q4_0, bytes, 32)).toEqual(values);
  });

  test('Q8_0 stores d = amax/127 as f16 then 32 int8, round half away from zero', () => {
    const values = Float32Array.from({ length: 32 }, (_, j) => (j - 16) * 0.5);
    values[0] = -127; // amax 127 → d = 1
    const bytes = quantizeQ8_0(values);
    expect(halfBitsToFloat(bytes[0] | (bytes[1] << 8))).toBe(1);
    const q = new Int8Array(bytes.buffer, 2, 32);
    expect(q[0]).toBe(-127);
    expect(q[1]).toBe(-8); // −7.5 → −8
    expect(q[31]).toBe(8); // 7.5 → 8
  });

  test('Q4_K and Q6_K super-blocks dequantize as their layouts say', () => {
    // Q4_K: d = 0.5, dmin = 0.25; sub-block 0: scale 3, min 1; sub-block 5: scale 33, min 17 (split bits).
    const q4k = new Uint8Array(144);
    const view = new DataView(q4k.buffer);
    view.setUint16(0, floatToHalfBits(0.5), true);
    view.setUint16(2, floatToHalfBits(0.25), true);
    q4k[4 + 0] = 3; // scale of sub-block 0
    q4k[4 + 4] = 1; // min of sub-block 0
    // sub-block 5: scale = (byte 9 & 15) | (byte 1 >> 6) << 4; min = (byte 9 >> 4) | (byte 5 >> 6) << 4
    q4k[4 + 9] = (33 & 15) | ((17 & 15) << 4);
    q4k[4 + 1] = (33 >> 4) << 6;
    q4k[4 + 5] = (17 >> 4) << 6;
    q4k[16 + 0] = 0x9; // element 0 (sub-block 0, low nibble) = 9
    q4k[16 + 64 + 1] = 0x70; // element 161 (sub-block 5, high nibble of pair 2, l = 1) = 7
    const a = dequantize(GgmlType.Q4_K, q4k, 256);
    expect(a[0]).toBe(0.5 * 3 * 9 - 0.25 * 1);
    expect(a[1]).toBe(-0.25);
    expect(a[161]).toBe(0.5 * 33 * 7 - 0.25 * 17);
    // Q6_K: d = 2; element 0: ql low nibble 5, qh bits 0-1 = 2 → q = 5 + 32 − 32 = 5, scale[0] = −3.
    // element 200 (half 1, run 2 → ql high nibble of l = 8, qh bits 4-5 of l = 8, scale 8 + 4 + 0).
    const q6k = new Uint8Array(210);
    new DataView(q6k.buffer).setUint16(208, floatToHalfBits(2), true);
    q6k[0] = 5;
    q6k[128] = 2;
    q6k[192] = 0xfd; // int8 −3
    q6k[64 + 8] = 0xa0; // high nibble 10
    q6k[128 + 32 + 8] = 3 << 4; // bits 4-5 = 3
    q6k[192 + 12] = 4;
    const b = dequantize(GgmlType.Q6_K, q6k, 256);
    expect(b[0]).toBe(2 * -3 * (5 + 32 - 32));
    expect(b[200]).toBe(2 * 4 * (10 + 48 - 32));
    expect(b[1]).toBe(2 * -3 * -32);
  });
});

const readReference = (name: string) =>
  readCausalReference(join(FIXTURES_DIR, name, 'reference.safetensors'));

describe.each(['llama', 'qwen2', 'gpt2'] as const)('%s fixture through GGUF', (name) => {
  let folder: string;
  let ref: CausalReference;
  let hf: CausalLm;
  let hfLogits: Float32Array;
  let tensorsBefore: number;
  let arenaBefore: number;

  beforeAll(async () => {
    folder = fixtureFolder(dir, name);
    ref = await readReference(name);
    tensorsBefore = tf.memory().numTensors;
    arenaBefore = weightArena()!.bytesInUse();
    hf = await loadCausalLm(folder);
    hfLogits = fullLogits(hf, ref.inputIds);
  });
  afterAll(() => {
    hf.dispose();
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(weightArena()!.bytesInUse()).toBe(arenaBefore);
  });

  test('f32: loadModel(gguf) gives the HF folder’s logits and greedy output, and the same config', async () => {
    const path = join(dir, `${name}-f32.gguf`);
    const result = await exportGguf(folder, path, { type: 'f32' });
    const fixture = causalFixture(name);
    expect(result.architecture).toBe(name);
    const before = tf.memory().numTensors;
    const loaded = await loadModel(path);
    if (loaded.kind !== 'causal-lm') throw new Error('expected a causal LM');
    const model = loaded.model;
    try {
      expect(model.vocabSize).toBe(fixture.vocabSize);
      expect(loaded.modelType).toBe(name);
      expect(loaded.config).toMatchObject(
        name === 'gpt2'
          ? {
              n_embd: fixture.hidden,
              n_layer: fixture.layers,
              n_head: fixture.heads,
              n_positions: fixture.maxPositions,
            }
          : {
              hidden_size: fixture.hidden,
              num_hidden_layers: fixture.layers,
              num_attention_heads: fixture.heads,
              num_key_value_heads: fixture.kvHeads,
              head_dim: fixture.headDim,
              max_position_embeddings: fixture.maxPositions,
              tie_word_embeddings: readFixtureJson(`${name}/config.json`).tie_word_embeddings,
            },
      );
      expect(maxAbsDiff(fullLogits(model, ref.inputIds), hfLogits)).toBeLessThan(1e-5);
      expect(maxAbsDiff(fullLogits(model, ref.inputIds), ref.logits)).toBeLessThan(1e-4);
      expect(await greedyContinuation(model, ref)).toEqual(ref.greedyOutput);
    } finally {
      model.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  test('the GGUF file holds llama.cpp’s names and layouts', async () => {
    const path = join(dir, `${name}-f32.gguf`);
    const file = await openGguf(path);
    const source = await openSafetensors(join(folder, 'model.safetensors'));
    try {
      const fixture = causalFixture(name);
      expect(file.metadata.get('general.architecture')?.value).toBe(name);
      expect(file.metadata.get(`${name}.block_count`)?.value).toBe(fixture.layers);
      expect(file.metadata.get(`${name}.attention.head_count`)?.value).toBe(fixture.heads);
      expect(file.metadata.get('tokenizer.ggml.pre')?.value).toBe('gpt-2');
      const tied = readFixtureJson(`${name}/config.json`).tie_word_embeddings === true;
      expect(file.tensors.has('output.weight')).toBe(!tied);
      expect(file.info('token_embd.weight').dims).toEqual([fixture.hidden, fixture.vocabSize]);
      expect(file.info('blk.0.attn_norm.weight').type).toBe(GgmlType.F32);
      const cols = fixture.hidden;
      const row = (values: Float32Array, r: number, width = cols) =>
        values.subarray(r * width, (r + 1) * width);
      if (name === 'gpt2') {
        // Conv1D c_attn [in, 3·hidden] is written as rows of its columns: ne = [hidden, 3·hidden].
        const hfQkv = (await source.readValues('transformer.h.0.attn.c_attn.weight')).values as Float32Array;
        const ggufQkv = await file.readFloat32('blk.0.attn_qkv.weight');
        expect(file.info('blk.0.attn_qkv.weight').dims).toEqual([fixture.hidden, 3 * fixture.hidden]);
        const column = (c: number) => Float32Array.from({ length: cols }, (_, r) => hfQkv[r * 3 * cols + c]);
        expect(row(ggufQkv, 5)).toEqual(column(5));
        expect(row(ggufQkv, 3 * cols - 1)).toEqual(column(3 * cols - 1));
        expect(file.info('position_embd.weight').dims).toEqual([fixture.hidden, fixture.maxPositions]);
        return;
      }
      expect(file.metadata.get(`${name}.attention.head_count_kv`)?.value).toBe(fixture.kvHeads);
      // q rows: identical for qwen2, interleaved per head for llama.
      const hfQ = (await source.readValues('model.layers.0.self_attn.q_proj.weight')).values as Float32Array;
      const ggufQ = await file.readFloat32('blk.0.attn_q.weight');
      const d = fixture.headDim;
      if (name === 'qwen2') expect(ggufQ).toEqual(hfQ);
      else {
        // HF row h·d + d/2 + j (second half of head h) is GGUF row h·d + 2j + 1.
        expect(row(ggufQ, d + 2 * 3 + 1)).toEqual(row(hfQ, d + d / 2 + 3));
        expect(row(ggufQ, 0)).toEqual(row(hfQ, 0));
        expect(ggufQ).not.toEqual(hfQ);
      }
    } finally {
      await file.close();
      await source.close();
    }
  });

  test.each(['f16', 'q8_0', 'q4_0'] as const)(
    '%s: weights within the format’s bound, logits equal to an HF folder of the dequantized weights',
    async (type) => {
      const path = join(dir, `${name}-${type}.gguf`);
      const result = await exportGguf(folder, path, { type });
      // What the file must hold, computed here from the HF weights without the file: each
      // matrix quantized and dequantized in HF row order (llama's q/k rows are permuted whole,
      // so their blocks are the same either way), f16 for matrices whose rows are not whole blocks.
      const source = await openSafetensors(join(folder, 'model.safetensors'));
      const expected: Record<string, { dtype: 'F32'; shape: readonly number[]; data: Float32Array }> = {};
      for (const n of source.names) {
        const { shape } = source.info(n);
        const w = (await source.readValues(n)).values as Float32Array;
        let data = w;
        // GPT-2's Conv1D matrices are [in, out]; GGUF blocks run along `in`, which is their
        // column, so they are quantized as the transposed [out, in] rows the file holds.
        const conv1d = name === 'gpt2' && /\.(c_attn|c_proj|c_fc)\.weight$/.test(n);
        if (shape.length === 2) {
          const rowsOf = (values: Float32Array) => (conv1d ? transposed(values, shape[0], shape[1]) : values);
          const back = (values: Float32Array) => (conv1d ? transposed(values, shape[1], shape[0]) : values);
          const rowLength = conv1d ? shape[0] : shape[1];
          const ggmlType =
            type === 'f16' || rowLength % 32 !== 0
              ? GgmlType.F16
              : type === 'q8_0'
                ? GgmlType.Q8_0
                : GgmlType.Q4_0;
          if (ggmlType === GgmlType.F16) {
            data = w.map(f16);
            for (let i = 0; i < w.length; i++) {
              expect(Math.abs(data[i] - w[i])).toBeLessThanOrEqual(
                Math.max(Math.abs(w[i]) * F16_EPS, 2 ** -25),
              );
            }
          } else {
            const rows = rowsOf(w);
            const quantized = ggmlType === GgmlType.Q8_0 ? quantizeQ8_0(rows) : quantizeQ4_0(rows);
            const dequantized = dequantize(ggmlType, quantized, w.length);
            for (let b = 0; b < w.length / 32; b++) {
              const block = rows.subarray(b * 32, b * 32 + 32);
              for (let j = 0; j < 32; j++) {
                expect(Math.abs(dequantized[b * 32 + j] - block[j])).toBeLessThanOrEqual(
                  quantizationBound(ggmlType, block, j),
                );
              }
            }
            data = back(dequantized);
          }
        }
        expected[n] = { dtype: 'F32', shape, data };
      }
      await source.close();
      const copy = join(dir, `${name}-${type}-dequantized`);
      await import('node:fs/promises').then((fs) => fs.mkdir(copy));
      await writeSafetensors(join(copy, 'model.safetensors'), expected);
      await import('node:fs/promises').then((fs) =>
        fs.copyFile(join(FIXTURES_DIR, name, 'config.json'), join(copy, 'config.json')),
      );
      const fallbackRows = causalFixture(name).hidden;
      if (type !== 'f16') {
        // ffn_down's rows are intermediate_size long: F16 when that is not a multiple of 32.
        const config = readFixtureJson(`${name}/config.json`);
        const intermediate = (config.intermediate_size ?? config.n_inner ?? 4 * fallbackRows) as number;
        expect(result.fallbacks.length > 0).toBe(intermediate % 32 !== 0 || fallbackRows % 32 !== 0);
      }
      const fromGguf = await loadCausalLm(path);
      const fromCopy = await loadCausalLm(copy);
      try {
        const logits = fullLogits(fromGguf, ref.inputIds);
        expect(maxAbsDiff(logits, fullLogits(fromCopy, ref.inputIds))).toBeLessThan(1e-5);
        // And the quantization is real: the logits moved away from the HF ones.
        expect(maxAbsDiff(logits, hfLogits)).toBeGreaterThan(0);
      } finally {
        fromGguf.dispose();
        fromCopy.dispose();
      }
    },
  );
});

describe('rope scaling', () => {
  test('linear scaling is written as rope.scaling.type/factor and read back to the same logits', async () => {
    const folder = fixtureFolder(dir, 'llama', LINEAR_ROPE, 'llama-linear-rope');
    const path = join(dir, 'llama-linear-rope.gguf');
    await exportGguf(folder, path, { type: 'f32' });
    const file = await openGguf(path);
    expect(file.metadata.get('llama.rope.scaling.type')?.value).toBe('linear');
    expect(file.metadata.get('llama.rope.scaling.factor')?.value).toBe(2);
    await file.close();
    const ref = await readReference('llama');
    const before = tf.memory().numTensors;
    const fromGguf = await loadCausalLm(path);
    const fromHf = await loadCausalLm(folder);
    const plain = await loadCausalLm(join(dir, 'llama-f32.gguf'));
    try {
      const scaled = fullLogits(fromGguf, ref.inputIds);
      expect(maxAbsDiff(scaled, fullLogits(fromHf, ref.inputIds))).toBeLessThan(1e-5);
      // The scaling is in effect: positions > 0 give other logits than unscaled rope.
      expect(maxAbsDiff(scaled, fullLogits(plain, ref.inputIds))).toBeGreaterThan(1e-3);
    } finally {
      fromGguf.dispose();
      fromHf.dispose();
      plain.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  test('llama3 scaling (per-frequency factors in llama.cpp) is refused with the reason', async () => {
    const llama3 = {
      rope_parameters: {
        rope_theta: 10000,
        rope_type: 'llama3',
        factor: 8,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_max_position_embeddings: 64,
      },
    };
    const folder = fixtureFolder(dir, 'llama', llama3, 'llama-llama3-rope');
    await expect(exportGguf(folder, join(dir, 'llama3.gguf'), { type: 'f32' })).rejects.toThrow(
      /rope scaling "llama3" is not exported to GGUF yet; supported: default, linear/,
    );
  });
});

describe('tokenizer metadata', () => {
  const reference: { text: string; ids: number[]; decoded: string }[] =
    readFixtureJson('tokenizer/reference.json');

  test('a tokenizer rebuilt from GGUF metadata encodes and decodes as the tokenizer.json did', async () => {
    const folder = join(dir, 'llama');
    const path = join(dir, 'llama-tok.gguf');
    await exportGguf(folder, path, { type: 'f32' });
    const fromGguf = await loadGgufTokenizer(path);
    const fromJson = await loadTokenizer(folder);
    expect(fromGguf.vocabSize).toBe(fromJson.vocabSize);
    expect(fromGguf.eosTokenId).toBe(fromJson.eosTokenId);
    for (const { text, ids, decoded } of reference) {
      expect(fromGguf.encode(text)).toEqual(ids);
      expect(fromGguf.decode(ids)).toBe(decoded);
    }
    const special = [...fromJson.encode('<|endoftext|> x')];
    expect(fromGguf.encode('<|endoftext|> x')).toEqual(special);
  });

  test('a vocabulary smaller than the model’s is padded with UNUSED tokens, left out again on load', () => {
    const tokenizerJson = readFixtureJson('tokenizer/tokenizer.json');
    const { vocabSize } = tokenizerFixture();
    const metadata = tokenizerMetadata({
      tokenizerJson,
      tokenizerConfig: {},
      modelConfig: { vocab_size: vocabSize + 3 },
      source: 'test',
    });
    const tokens = (metadata.get('tokenizer.ggml.tokens')!.value as GgufArray).values;
    const types = (metadata.get('tokenizer.ggml.token_type')!.value as GgufArray).values;
    expect(tokens.length).toBe(vocabSize + 3);
    expect(tokens[vocabSize + 2]).toBe(`[PAD${vocabSize + 2}]`);
    expect(types.slice(vocabSize)).toEqual([5, 5, 5]);
    const tokenizer = tokenizerFromGguf(metadata, 'test');
    expect(tokenizer.vocabSize).toBe(vocabSize);
    for (const { text, ids } of reference) expect(tokenizer.encode(text)).toEqual(ids);
  });

  test('tokenizers GGUF cannot express are refused with the reason', () => {
    const tokenizerJson = readFixtureJson('tokenizer/tokenizer.json');
    const withPrefix = {
      ...tokenizerJson,
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: true, use_regex: true },
    };
    const args = { tokenizerConfig: {}, modelConfig: {}, source: 'tok.json' };
    expect(() => tokenizerMetadata({ tokenizerJson: withPrefix, ...args })).toThrow(
      /pre_tokenizer .* not one that llama.cpp implements/,
    );
    const normalized = { ...tokenizerJson, normalizer: { type: 'NFKC' } };
    expect(() => tokenizerMetadata({ tokenizerJson: normalized, ...args })).toThrow(
      /normalizer .* no GGUF equivalent/,
    );
    const metadata = tokenizerMetadata({ tokenizerJson, ...args });
    metadata.set('tokenizer.ggml.pre', entry.string('falcon'));
    expect(() => tokenizerFromGguf(metadata, 'x.gguf')).toThrow(
      /tokenizer.ggml.pre 'falcon' is not supported/,
    );
  });
});
