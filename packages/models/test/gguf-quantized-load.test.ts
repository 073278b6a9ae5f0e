// GGUF files loaded as they are (issue 20): with the wasm kernel set at q8 (q4), a file's Q8_0
// (Q4_0) matrices go into the quantized products as the file stores them (core's QuantBlocks →
// quantMatrixFromBlocks), never through f32. The models are the shared HF fixtures exported with
// the repo's own exportGguf at q8_0 and q4_0 (llama: untied, rotary rows permuted, ffn_down F16
// since intermediate_size is not a multiple of 32; qwen2: tied, q/k/v biases; gpt2: fused
// Conv1D q|k|v, LayerNorm biases, learned positions), with two changes that make more of the
// path observable: their 1-D tensors (norm weights, biases) are seeded random values — the
// fixtures have HF's initial ones and zeros, under which a norm or bias handled wrongly would
// go unseen — and a llama variant reads the same matrices as half as many heads of twice the
// size, so its score scale 1/√headDim is not a power of two (no f16 block scale takes it exactly).
import { copyFileSync, mkdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type CausalLm,
  createCausalLm,
  createRng,
  dequantizeMatrix,
  disposeQuantMatrix,
  generate,
  getLogger,
  initBackend,
  kernelSet,
  type PreparedCausalLmLayer,
  prepareCausalLmLayer,
  type QuantBlocks,
  type QuantFormat,
  quantizeMatrixValues,
  quantMatrixFromGguf,
  weightArena,
} from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { maxAbsDiff } from '../../../test-support/max-abs-diff.js';
import { randomArray } from '../../../test-support/random-arrays.js';
import { gpt2Config } from '../src/architectures/gpt2.js';
import { llamaConfig } from '../src/architectures/llama.js';
import { exportGguf, GgmlType, GgufError, openGguf } from '../src/gguf/index.js';
import { ggufHfConfig, ggufTensorReader } from '../src/gguf/load.js';
import type { GgufFile } from '../src/gguf/reader.js';
import { type LoadedModel, loadModel } from '../src/load-model.js';
import { openSafetensors } from '../src/safetensors/file.js';
import { writeSafetensors } from '../src/safetensors/write.js';
import { type CausalReference, readCausalReference } from './causal-reference.js';
import { causalFixture, FIXTURES_DIR, readFixtureJson } from './fixtures.js';
import { fullLogits, removeDir, TOKENIZER_JSON, tempDir } from './gguf-helpers.js';

// Every dequantization the GGUF reader does, by ggml type: the honest observable of "no f32
// copy of the quantized matrices" (the reader's readFloat32 and readChunks both go through it).
const dequantized = vi.hoisted(() => [] as { type: number; elements: number }[]);
vi.mock('../src/gguf/quant.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../src/gguf/quant.js')>();
  return {
    ...actual,
    dequantize: (type: number, data: Uint8Array, elements: number) => {
      dequantized.push({ type, elements });
      return actual.dequantize(type, data, elements);
    },
  };
});

type FixtureName = 'llama' | 'qwen2' | 'gpt2';
interface Case {
  name: string;
  fixture: FixtureName;
  /** Config fields replaced, computed from the fixture's config. */
  config?: (config: Record<string, unknown>) => Record<string, unknown>;
}
const CASES: readonly Case[] = [
  { name: 'llama', fixture: 'llama' },
  { name: 'qwen2', fixture: 'qwen2' },
  { name: 'gpt2', fixture: 'gpt2' },
  {
    name: 'llama as half the heads',
    fixture: 'llama',
    config: (c) => ({
      num_attention_heads: (c.num_attention_heads as number) / 2,
      num_key_value_heads: (c.num_key_value_heads as number) / 2,
      head_dim: 2 * (c.head_dim as number),
    }),
  },
];
const FORMATS = [
  { format: 'q8', type: 'q8_0', ggml: GgmlType.Q8_0, other: 'q4' },
  { format: 'q4', type: 'q4_0', ggml: GgmlType.Q4_0, other: 'q8' },
] as const;

let dir: string;
const files = new Map<string, string>();
const fileOf = (c: Case, type: 'q8_0' | 'q4_0') => files.get(`${c.name}-${type}`)!;

/** The fixture's folder with its 1-D tensors replaced by seeded random values (γ ≈ 1 ± 0.5, β and biases ± 0.1). */
async function variedFolder(c: Case, seed: number): Promise<string> {
  const out = join(dir, c.name.replaceAll(' ', '-'));
  mkdirSync(out);
  const source = await openSafetensors(join(FIXTURES_DIR, c.fixture, 'model.safetensors'));
  const rng = createRng(seed);
  const tensors: Record<string, { dtype: 'F32'; shape: readonly number[]; data: Float32Array }> = {};
  try {
    for (const n of source.names) {
      const { shape } = source.info(n);
      let data = (await source.readValues(n)).values as Float32Array;
      if (shape.length === 1) {
        data = n.endsWith('.bias')
          ? randomArray(data.length, rng, 0.1)
          : randomArray(data.length, rng, 0.5).map((v) => 1 + v);
      }
      tensors[n] = { dtype: 'F32', shape, data };
    }
  } finally {
    await source.close();
  }
  await writeSafetensors(join(out, 'model.safetensors'), tensors);
  const config = readFixtureJson(`${c.fixture}/config.json`);
  writeFileSync(join(out, 'config.json'), JSON.stringify({ ...config, ...c.config?.(config) }));
  copyFileSync(TOKENIZER_JSON, join(out, 'tokenizer.json'));
  return out;
}

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  dir = tempDir('gguf-quantized');
  for (const [i, c] of CASES.entries()) {
    const folder = await variedFolder(c, 1000 + i);
    for (const { type } of FORMATS) {
      const path = join(dir, `${c.name.replaceAll(' ', '-')}-${type}.gguf`);
      await exportGguf(folder, path, { type });
      files.set(`${c.name}-${type}`, path);
    }
  }
});
afterAll(() => removeDir(dir));

async function withFile<T>(path: string, use: (file: GgufFile) => Promise<T>): Promise<T> {
  const file = await openGguf(path);
  try {
    return await use(file);
  } finally {
    await file.close();
  }
}

async function causal(
  path: string,
  options: Parameters<typeof loadModel>[1],
): Promise<LoadedModel & { kind: 'causal-lm' }> {
  const loaded = await loadModel(path, options);
  if (loaded.kind !== 'causal-lm') throw new Error('expected a causal LM');
  return loaded;
}

/** Whole rows of bytes from GGUF's rotary order back to transformers' (written here from the layout). */
function unpermuteRows(data: Uint8Array, heads: number, rows: number): Uint8Array {
  const rowBytes = data.length / rows;
  const headDim = rows / heads;
  const out = new Uint8Array(data.length);
  for (let row = 0; row < rows; row++) {
    const h = Math.floor(row / headDim);
    const r = row % headDim;
    // GGUF row h·d + 2j + s came from HF row h·d + s·d/2 + j.
    const hfRow = h * headDim + (r % 2) * (headDim / 2) + Math.floor(r / 2);
    out.set(data.subarray(row * rowBytes, (row + 1) * rowBytes), hfRow * rowBytes);
  }
  return out;
}

const concatBytes = (parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

/**
 * The model built by hand from the file: every quantized product a quantMatrixFromGguf of the
 * file's blocks (q|k|v and gate|up side by side, llama's q/k rows put back in HF order), the
 * norm before it and q's score scale applied around it (not folded), F16 matrices as floats.
 */
async function handBuilt(path: string, format: QuantFormat): Promise<CausalLm> {
  return withFile(path, async (file) => {
    const hf = ggufHfConfig(file);
    const gpt2 = hf.model_type === 'gpt2';
    const shape = gpt2 ? gpt2Config(hf) : llamaConfig(hf);
    const { hiddenSize, heads, kvHeads, headDim } = shape;
    const blockType = format === 'q8' ? GgmlType.Q8_0 : GgmlType.Q4_0;
    const set = kernelSet('wasm', format);
    const rows = async (name: string) => file.readRows(name, 0, file.info(name).dims[1]);
    const vector = async (name: string) =>
      file.tensors.has(name) ? tf.tensor1d(await file.readFloat32(name)) : undefined;
    const floats = async (name: string) => file.readFloat32(name);
    const layers: PreparedCausalLmLayer[] = [];
    for (let i = 0; i < shape.layers; i++) {
      const b = `blk.${i}`;
      const qkvNames = gpt2 ? [`${b}.attn_qkv`] : [`${b}.attn_q`, `${b}.attn_k`, `${b}.attn_v`];
      for (const n of qkvNames) expect(file.info(`${n}.weight`).type).toBe(blockType);
      let qkvData: Uint8Array;
      let qkvBias: Float32Array | undefined;
      if (gpt2) {
        qkvData = await rows(`${b}.attn_qkv.weight`);
        qkvBias = await floats(`${b}.attn_qkv.bias`);
      } else {
        const rope = hf.model_type === 'llama';
        const q = await rows(`${b}.attn_q.weight`);
        const k = await rows(`${b}.attn_k.weight`);
        qkvData = concatBytes([
          rope ? unpermuteRows(q, heads, heads * headDim) : q,
          rope ? unpermuteRows(k, kvHeads, kvHeads * headDim) : k,
          await rows(`${b}.attn_v.weight`),
        ]);
        if (file.tensors.has(`${b}.attn_q.bias`)) {
          const parts = await Promise.all(['q', 'k', 'v'].map((p) => floats(`${b}.attn_${p}.bias`)));
          qkvBias = Float32Array.from(parts.flatMap((p) => [...p]));
        }
      }
      const qkvOut = (heads + 2 * kvHeads) * headDim;
      const scale = new Float32Array(qkvOut)
        .fill(1)
        .fill(shape.attentionScale ?? 1 / Math.sqrt(headDim), 0, heads * headDim);
      const qkv = quantMatrixFromGguf(format, qkvData, hiddenSize, qkvOut, {
        bias: qkvBias,
        around: {
          inputScale: await vector(`${b}.attn_norm.weight`),
          inputShift: await vector(`${b}.attn_norm.bias`),
          outputScale: tf.tensor1d(scale),
        },
      });
      const single = async (name: string) => {
        const t = file.info(`${name}.weight`);
        const bias = file.tensors.has(`${name}.bias`) ? await floats(`${name}.bias`) : undefined;
        if (t.type === blockType)
          return quantMatrixFromGguf(format, await rows(`${name}.weight`), t.dims[0], t.dims[1], { bias });
        // F16 (rows not whole blocks): [out, in] rows as the float product [in, out].
        expect(t.type).toBe(GgmlType.F16);
        const [inDim, outDim] = t.dims;
        const values = await floats(`${name}.weight`);
        const weight = tf.tidy(() => tf.transpose(tf.tensor2d(values, [outDim, inDim]))) as tf.Tensor2D;
        return set.prepareLinear(bias ? { weight, bias: tf.tensor1d(bias) } : { weight });
      };
      const upRows = gpt2
        ? await rows(`${b}.ffn_up.weight`)
        : concatBytes([await rows(`${b}.ffn_gate.weight`), await rows(`${b}.ffn_up.weight`)]);
      const upOut = file.info(`${b}.ffn_up.weight`).dims[1] * (gpt2 ? 1 : 2);
      const up = quantMatrixFromGguf(format, upRows, hiddenSize, upOut, {
        bias: gpt2 ? await floats(`${b}.ffn_up.bias`) : undefined,
        around: {
          inputScale: await vector(`${b}.ffn_norm.weight`),
          inputShift: await vector(`${b}.ffn_norm.bias`),
        },
      });
      layers.push({
        kernels: 'wasm',
        weights: format,
        qkv,
        o: await single(`${b}.attn_output`),
        mlp: { up, down: await single(`${b}.ffn_down`) },
      });
    }
    const blocks = async (name: string): Promise<QuantBlocks> => {
      const t = file.info(name);
      expect(t.type).toBe(blockType);
      return { format, inDim: t.dims[0], outDim: t.dims[1], data: await rows(name) };
    };
    const norm = { weight: (await vector('output_norm.weight'))!, bias: await vector('output_norm.bias') };
    const positions = gpt2
      ? tf.tensor2d(
          await floats('position_embd.weight'),
          [...file.info('position_embd.weight').dims].reverse() as [number, number],
        )
      : undefined;
    return createCausalLm(
      shape,
      {
        embedTokens: await blocks('token_embd.weight'),
        embedPositions: positions,
        layers,
        finalNorm: norm.bias ? norm : { weight: norm.weight },
        lmHead: file.tensors.has('output.weight') ? await blocks('output.weight') : undefined,
      },
      { kernels: 'wasm', weights: format },
    );
  });
}

/** A Hugging Face folder of the file's tensors as float32 (the values GGUF's dequantization gives). */
async function dequantizedFolder(path: string, folder: string): Promise<string> {
  const out = join(dir, folder);
  mkdirSync(out);
  await withFile(path, async (file) => {
    const config = ggufHfConfig(file);
    const reader = ggufTensorReader(file, config);
    const tensors: Record<string, { dtype: 'F32'; shape: readonly number[]; data: Float32Array }> = {};
    for (const n of reader.names) {
      tensors[n] = {
        dtype: 'F32',
        shape: reader.info(n).shape,
        data: (await reader.readValues(n)).values as Float32Array,
      };
    }
    await writeSafetensors(join(out, 'model.safetensors'), tensors);
    writeFileSync(join(out, 'config.json'), JSON.stringify(config));
  });
  return out;
}

const memory = () => ({ tensors: tf.memory().numTensors, arena: weightArena()!.bytesInUse() });

describe.each(CASES)('$name', (c) => {
  const name = c.name;
  let ref: CausalReference;
  beforeAll(async () => {
    ref = await readCausalReference(join(FIXTURES_DIR, c.fixture, 'reference.safetensors'));
  });

  describe.each(FORMATS)('$type file, weights $format', ({ format, type, ggml }) => {
    test('logits: bit for bit the hand-built model of the file’s blocks; near the f32 model of its dequantized values', async () => {
      const path = fileOf(c, type);
      const before = memory();
      const loaded = await causal(path, { kernels: 'wasm', weights: format });
      const byHand = await handBuilt(path, format);
      const f32 = await causal(path, { kernels: 'wasm' });
      try {
        const fixture = causalFixture(c.fixture);
        expect(loaded.model.vocabSize).toBe(fixture.vocabSize);
        const { headDim } = loaded.model.config;
        // The variant's score scale is not a power of two; the fixtures' are.
        expect(Number.isInteger(Math.log2(Math.sqrt(headDim)))).toBe(c.config === undefined);
        // Every matrix of the format's type went in as stored; none was dequantized.
        await withFile(path, async (file) => {
          const expected = [...file.tensors.values()]
            .filter((t) => t.type === ggml && t.name !== 'position_embd.weight')
            .map((t) => t.name)
            .sort();
          expect([...loaded.gguf!.asStored].sort()).toEqual(expected);
          expect(expected.length).toBeGreaterThan(0);
          // Only gpt2's learned positions, a table that is looked up, are dequantized.
          const positions = file.tensors.get('position_embd.weight');
          expect(loaded.gguf!.dequantized).toEqual(
            positions?.type === ggml
              ? { 'position_embd.weight': ggml === GgmlType.Q8_0 ? 'Q8_0' : 'Q4_0' }
              : {},
          );
          expect(loaded.gguf!.note).toBe(
            positions?.type === ggml
              ? 'position_embd dequantized to f32: learned positions are looked up, not multiplied'
              : undefined,
          );
        });
        expect(loaded.gguf!.blockFormat).toBe(format);
        const logits = fullLogits(loaded.model, ref.inputIds);
        expect(maxAbsDiff(logits, fullLogits(byHand, ref.inputIds))).toBe(0);
        const f32Logits = fullLogits(f32.model, ref.inputIds);
        const diff = maxAbsDiff(logits, f32Logits);
        const scale = maxAbsDiff(f32Logits, new Float32Array(f32Logits.length));
        // Only the activations' rounding to int8 blocks (quantLinear) separates them.
        expect(diff).toBeLessThan((format === 'q8' ? 0.02 : 0.05) * scale);
        // The float path at the same format folds each norm into its matrix and quantizes the
        // dequantized values again: a second rounding the blocks never see.
        const copy = await dequantizedFolder(path, `${name.replaceAll(' ', '-')}-${type}-requantized`);
        const requantized = await causal(copy, { kernels: 'wasm', weights: format });
        try {
          const again = maxAbsDiff(fullLogits(requantized.model, ref.inputIds), f32Logits);
          console.log(
            `${name} ${type}: max |logit − f32 of the dequantized values|: as stored ${diff.toExponential(2)}, requantized ${again.toExponential(2)} (max |logit| ${scale.toFixed(3)})`,
          );
          // q4's second rounding is the larger by far (measured 3.7–10×); q8's is below the
          // activations' and can land either side, so it is only logged.
          if (format === 'q4') expect(diff).toBeLessThan(again / 2);
        } finally {
          requantized.model.dispose();
        }
      } finally {
        loaded.model.dispose();
        byHand.dispose();
        f32.model.dispose();
      }
      expect(memory()).toEqual(before);
    });

    test('each matrix holds exactly the values GGUF’s dequantization gives', async () => {
      await withFile(fileOf(c, type), async (file) => {
        let differ = 0;
        let weights = 0;
        for (const t of file.tensors.values()) {
          if (t.type !== ggml) continue;
          const [inDim, outDim] = t.dims;
          const matrix = quantMatrixFromGguf(format, await file.readRows(t.name, 0, outDim), inDim, outDim);
          const values = await file.readFloat32(t.name);
          // readFloat32 is [out, in] rows; dequantizeMatrix [in, out].
          const ours = dequantizeMatrix(matrix);
          disposeQuantMatrix(matrix);
          const transposed = new Float32Array(values.length);
          for (let o = 0; o < outDim; o++)
            for (let i = 0; i < inDim; i++) transposed[i * outDim + o] = values[o * inDim + i];
          expect(ours).toEqual(transposed);
          // For the record: our quantizer given those values (no norm folded) — how many move.
          const again = quantizeMatrixValues(format, transposed, [inDim, outDim]);
          const back = dequantizeMatrix(again);
          disposeQuantMatrix(again);
          for (let i = 0; i < back.length; i++) if (back[i] !== transposed[i]) differ++;
          weights += back.length;
        }
        console.log(
          `${name} ${type}: requantizing the dequantized values moves ${differ} of ${weights} weights`,
        );
      });
    });

    test('no f32 copy of a quantized matrix: the reader dequantizes only the other tensors', async () => {
      const path = fileOf(c, type);
      const floatElements = await withFile(path, async (file) =>
        [...file.tensors.values()]
          .filter((t) => t.type !== ggml || t.name === 'position_embd.weight')
          .reduce((n, t) => n + t.elements, 0),
      );
      const peak = async (options: Parameters<typeof loadModel>[1]) => {
        dequantized.length = 0;
        const base = tf.memory().numBytes;
        const arena = weightArena()!.bytesInUse();
        let high = 0;
        const loaded = await causal(path, {
          ...options,
          onProgress: () => {
            high = Math.max(high, tf.memory().numBytes - base);
          },
        });
        const arenaBytes = weightArena()!.bytesInUse() - arena;
        loaded.model.dispose();
        const calls = [...dequantized];
        return { high, arenaBytes, calls };
      };
      const stored = await peak({ kernels: 'wasm', weights: format });
      // The format's type is dequantized only where a model looks values up: gpt2's positions.
      const positions = await withFile(path, async (file) =>
        file.tensors.has('position_embd.weight') ? [file.info('position_embd.weight')] : [],
      );
      expect(stored.calls.filter((call) => call.type === ggml)).toEqual(
        positions.filter((t) => t.type === ggml).map((t) => ({ type: ggml, elements: t.elements })),
      );
      // Every other tensor is read once, as float32.
      expect(stored.calls.reduce((n, c) => n + c.elements, 0)).toBe(floatElements);
      // tfjs never held more floats than those tensors (the float path held each matrix too).
      expect(stored.high).toBeLessThanOrEqual(4 * floatElements);
      const f32 = await peak({ kernels: 'wasm' });
      expect(f32.high).toBeGreaterThan(stored.high);
      console.log(
        `${name} ${type}: tfjs float bytes at most ${stored.high} as stored, ${f32.high} at f32; arena ${stored.arenaBytes} as stored, ${f32.arenaBytes} at f32`,
      );
    });

    test('greedy decoding: the hand-built model’s exactly; f32’s except at near-ties', async () => {
      const path = fileOf(c, type);
      const loaded = await causal(path, { kernels: 'wasm', weights: format });
      const byHand = await handBuilt(path, format);
      const f32 = await causal(path, { kernels: 'wasm' });
      try {
        const maxNewTokens = ref.greedyOutput.length - ref.greedyPrompt.length;
        const greedy = async (model: CausalLm) => {
          const ids: number[] = [];
          for await (const e of generate({ model, prompt: ref.greedyPrompt, maxNewTokens }))
            ids.push(e.token);
          return [...ref.greedyPrompt, ...ids];
        };
        const ours = await greedy(loaded.model);
        expect(ours).toEqual(await greedy(byHand));
        // Teacher-forced on f32's sequence: wherever f32's top logit leads the one we picked by
        // more than twice the largest logit difference between the models, the picks agree.
        const sequence = await greedy(f32.model);
        const vocab = f32.model.vocabSize;
        const a = fullLogits(loaded.model, [sequence.slice(0, -1)]);
        const b = fullLogits(f32.model, [sequence.slice(0, -1)]);
        const tolerance = maxAbsDiff(a, b);
        let agree = 0;
        const from = ref.greedyPrompt.length - 1;
        for (let p = from; p < sequence.length - 1; p++) {
          const row = (x: Float32Array) => x.subarray(p * vocab, (p + 1) * vocab);
          const pick = row(a).indexOf(Math.max(...row(a)));
          const f32Pick = sequence[p + 1];
          if (pick === f32Pick) agree++;
          else expect(row(b)[f32Pick] - row(b)[pick]).toBeLessThanOrEqual(2 * tolerance);
        }
        console.log(
          `${name} ${type}: greedy picks agree with f32 at ${agree} of ${sequence.length - 1 - from} (logit tolerance ${tolerance.toExponential(2)})`,
        );
        if (sequence.every((id, i) => id === ours[i])) expect(agree).toBe(sequence.length - 1 - from);
      } finally {
        loaded.model.dispose();
        byHand.dispose();
        f32.model.dispose();
      }
    });
  });
});

/** The file's matrices of `ggml`'s type, by GGUF name. */
const matricesOf = (path: string, ggml: number) =>
  withFile(path, async (file) =>
    [...file.tensors.values()]
      .filter((t) => t.type === ggml && t.dims.length === 2)
      .map((t) => t.name)
      .sort(),
  );

describe('requests that cannot keep the blocks dequantize them, and say so', () => {
  const llama = CASES[0];
  let ref: CausalReference;
  beforeAll(async () => {
    ref = await readCausalReference(join(FIXTURES_DIR, llama.fixture, 'reference.safetensors'));
  });
  /** loadModel with the models logger's info lines caught. */
  async function loadLogged(path: string, options: Parameters<typeof loadModel>[1]) {
    const info = vi.spyOn(getLogger('models'), 'info');
    try {
      const loaded = await causal(path, options);
      return { loaded, lines: info.mock.calls.map((call) => String(call[1])) };
    } finally {
      info.mockRestore();
    }
  }

  test.each(FORMATS)(
    'a $type file with weights $other: dequantized, then quantized by the set as a folder’s',
    async ({ type, ggml, other }) => {
      const path = fileOf(llama, type);
      const before = memory();
      const { loaded, lines } = await loadLogged(path, { kernels: 'wasm', weights: other });
      const copy = await causal(await dequantizedFolder(path, `llama-${type}-as-${other}`), {
        kernels: 'wasm',
        weights: other,
      });
      try {
        expect(loaded.gguf!.blockFormat).toBe(other);
        expect(loaded.gguf!.asStored).toEqual([]);
        expect(Object.keys(loaded.gguf!.dequantized).sort()).toEqual(await matricesOf(path, ggml));
        const typeName = ggml === GgmlType.Q8_0 ? 'Q8_0' : 'Q4_0';
        expect(loaded.gguf!.note).toMatch(
          new RegExp(`dequantized to f32 \\(${typeName}\\) and quantized again to ${other}`),
        );
        expect(lines.some((line) => line.includes('dequantized to f32') && line.includes(typeName))).toBe(
          true,
        );
        expect(maxAbsDiff(fullLogits(loaded.model, ref.inputIds), fullLogits(copy.model, ref.inputIds))).toBe(
          0,
        );
      } finally {
        loaded.model.dispose();
        copy.model.dispose();
      }
      expect(memory()).toEqual(before);
    },
  );

  test('the reference kernel set, and default f32 weights (with a hint at the format that fits)', async () => {
    const path = fileOf(llama, 'q8_0');
    const copy = await causal(await dequantizedFolder(path, 'llama-q8_0-f32'), { kernels: 'reference' });
    const reference = await loadLogged(path, { kernels: 'reference' });
    const f32 = await loadLogged(path, { kernels: 'wasm' });
    try {
      for (const { loaded } of [reference, f32]) {
        expect(loaded.gguf!.blockFormat).toBeUndefined();
        expect(loaded.gguf!.asStored).toEqual([]);
        expect(Object.keys(loaded.gguf!.dequantized).sort()).toEqual(await matricesOf(path, GgmlType.Q8_0));
        expect(loaded.gguf!.note).toMatch(
          /dequantized to f32 \(Q8_0\): the kernel set takes no quantized blocks/,
        );
      }
      expect(reference.lines.some((line) => line.includes('dequantized to f32'))).toBe(true);
      expect(f32.lines.some((line) => line.includes("weights: 'q8'"))).toBe(true);
      const logits = fullLogits(reference.loaded.model, ref.inputIds);
      expect(maxAbsDiff(logits, fullLogits(copy.model, ref.inputIds))).toBe(0);
      expect(maxAbsDiff(fullLogits(f32.loaded.model, ref.inputIds), logits)).toBeLessThan(1e-5);
    } finally {
      copy.model.dispose();
      reference.loaded.model.dispose();
      f32.loaded.model.dispose();
    }
  });

  test('core refuses blocks a kernel set cannot take, with the reason, and frees what it was given', async () => {
    const path = fileOf(llama, 'q8_0');
    await withFile(path, async (file) => {
      const shape = llamaConfig(ggufHfConfig(file));
      const blocks = async (name: string): Promise<QuantBlocks> => {
        const t = file.info(name);
        return {
          format: 'q8',
          inDim: t.dims[0],
          outDim: t.dims[1],
          data: await file.readRows(name, 0, t.dims[1]),
        };
      };
      const floatLinear = async (name: string) => {
        const [inDim, outDim] = file.info(name).dims;
        const values = await file.readFloat32(name);
        return { weight: tf.tidy(() => tf.transpose(tf.tensor2d(values, [outDim, inDim]))) as tf.Tensor2D };
      };
      const layer = async () => ({
        attnNorm: { weight: tf.tensor1d(await file.readFloat32('blk.0.attn_norm.weight')) },
        q: { weight: await blocks('blk.0.attn_q.weight') },
        k: await floatLinear('blk.0.attn_k.weight'),
        v: await floatLinear('blk.0.attn_v.weight'),
        o: await floatLinear('blk.0.attn_output.weight'),
        mlpNorm: { weight: tf.tensor1d(await file.readFloat32('blk.0.ffn_norm.weight')) },
        gate: await floatLinear('blk.0.ffn_gate.weight'),
        up: await floatLinear('blk.0.ffn_up.weight'),
        down: await floatLinear('blk.0.ffn_down.weight'),
      });
      const refusals = [
        [{ kernels: 'wasm', weights: 'q4' }, /given as q8 blocks, the wasm kernel set here keeps q4 weights/],
        [
          { kernels: 'reference' },
          /need the wasm kernel set with q8 or q4 weights \(the model is built with the reference set and f32 weights\)/,
        ],
      ] as const;
      for (const [options, reason] of refusals) {
        const before = memory();
        const given = await layer();
        expect(() => prepareCausalLmLayer(shape, given, options)).toThrow(reason);
        expect(memory()).toEqual(before);
      }
    });
  });
});

describe('a load that fails part-way frees everything', () => {
  test.each(CASES.flatMap((c) => FORMATS.map((f) => ({ ...f, c, name: c.name }))))(
    '$name, $type: the file cut in the middle of its last layer’s q while loading',
    async ({ c, format, type, ggml }) => {
      const path = join(dir, `cut-${c.name.replaceAll(' ', '-')}-${type}.gguf`);
      copyFileSync(fileOf(c, type), path);
      const cut = await withFile(path, async (file) => {
        const layers = file.metadata.get(`${c.fixture}.block_count`)!.value as number;
        const t = file.info(`blk.${layers - 1}.${c.fixture === 'gpt2' ? 'attn_qkv' : 'attn_q'}.weight`);
        expect(t.type).toBe(ggml);
        return t.fileOffset + Math.floor(t.byteLength / 2);
      });
      const before = memory();
      let progress = 0;
      const load = loadModel(path, {
        kernels: 'wasm',
        weights: format,
        // After the first tensor (the embedding): every layer but the last is prepared by then.
        onProgress: () => {
          if (progress++ === 0) truncateSync(path, cut);
        },
      });
      await expect(load).rejects.toThrow(GgufError);
      await expect(load).rejects.toThrow(`file is truncated: it ended at byte ${cut}`);
      expect(progress).toBeGreaterThan(1);
      expect(memory()).toEqual(before);
    },
  );

  test.each(FORMATS)(
    '$type: a block whose scale is infinite, in the last layer',
    async ({ format, type }) => {
      const c = CASES[0];
      const path = join(dir, `inf-${type}.gguf`);
      copyFileSync(fileOf(c, type), path);
      const bytes = readFileSync(path);
      await withFile(path, async (file) => {
        const layers = file.metadata.get('llama.block_count')!.value as number;
        const t = file.info(`blk.${layers - 1}.attn_v.weight`);
        bytes.writeUInt16LE(0x7c00, t.fileOffset);
      });
      writeFileSync(path, bytes);
      const before = memory();
      await expect(loadModel(path, { kernels: 'wasm', weights: format })).rejects.toThrow(
        /scale is not finite/,
      );
      expect(memory()).toEqual(before);
    },
  );
});
