import type { Linear, NormWeights } from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { tensorDtypeOf } from '../safetensors/dtypes.js';
import { SafetensorsError } from '../safetensors/errors.js';
import type { TensorReader } from '../safetensors/file.js';
import { CONV_KERNEL } from '../streaming-encoder/config.js';
import type { StreamingConvWeights, StreamingEncoderWeights } from '../streaming-encoder/weights.js';
import type { SpeechRecognizerConfig } from './recognizer-config.js';

/**
 * Every tensor of a recognizer checkpoint and its shape as PyTorch stores it
 * (tools/train/speech_models.py, CtcRecognizer.export_state): Linear weights
 * [out, in], Conv1d weights [out, in, kernel].
 */
export function recognizerTensorShapes(config: SpeechRecognizerConfig): Map<string, number[]> {
  const { nMels, convChannels: c, dModel: d, ffDim: ff, vocabSize: v, layers } = config.encoder;
  const shapes = new Map<string, number[]>([
    ['conv1.weight', [c, nMels, CONV_KERNEL]],
    ['conv1.bias', [c]],
    ['conv2.weight', [d, c, CONV_KERNEL]],
    ['conv2.bias', [d]],
  ]);
  const linear = (prefix: string, out: number, input: number) => {
    shapes.set(`${prefix}.weight`, [out, input]);
    shapes.set(`${prefix}.bias`, [out]);
  };
  const norm = (prefix: string) => {
    shapes.set(`${prefix}.weight`, [d]);
    shapes.set(`${prefix}.bias`, [d]);
  };
  for (let i = 0; i < layers; i++) {
    norm(`layers.${i}.attn_norm`);
    for (const p of ['q', 'k', 'v', 'o']) linear(`layers.${i}.attn.${p}`, d, d);
    norm(`layers.${i}.mlp_norm`);
    linear(`layers.${i}.mlp.up`, ff, d);
    linear(`layers.${i}.mlp.down`, d, ff);
  }
  norm('final_norm');
  linear('ctc_head', v, d);
  return shapes;
}

/**
 * Checks the checkpoint's header against the config before anything is
 * read: each expected tensor present, a float, of the expected shape, and no
 * other tensor (one more layer than config.json says, say). Throws a
 * SafetensorsError naming the folder and the tensor.
 */
export function checkRecognizerTensors(
  reader: TensorReader,
  config: SpeechRecognizerConfig,
  location: string,
): void {
  const shapes = recognizerTensorShapes(config);
  for (const [name, shape] of shapes) {
    if (!reader.has(name)) {
      throw new SafetensorsError(
        location,
        `the speech recognizer needs tensor "${name}" [${shape}], which the checkpoint lacks`,
      );
    }
    const info = reader.info(name);
    if (tensorDtypeOf(info.dtype) !== 'float32') {
      throw new SafetensorsError(location, `tensor "${name}" is ${info.dtype}, not a float tensor`);
    }
    if (info.shape.length !== shape.length || info.shape.some((n, i) => n !== shape[i])) {
      throw new SafetensorsError(
        location,
        `tensor "${name}" is [${info.shape}], but config.json's sizes need [${shape}]`,
      );
    }
  }
  const extra = reader.names.filter((name) => !shapes.has(name));
  if (extra.length > 0) {
    throw new SafetensorsError(
      location,
      `unexpected tensor${extra.length > 1 ? 's' : ''} ${extra
        .slice(0, 3)
        .map((n) => `"${n}"`)
        .join(', ')}` +
        `${extra.length > 3 ? ` and ${extra.length - 3} more` : ''} (config.json says ${config.encoder.layers} layers)`,
    );
  }
}

/**
 * Reads a checked checkpoint (checkRecognizerTensors) into the encoder's
 * layout: matrices [in, out], conv filters [kernel, in, out], float32
 * whatever the file's dtype (F16 widens exactly). A read that fails part-way
 * frees every tensor made so far.
 */
export async function readRecognizerWeights(
  reader: TensorReader,
  config: SpeechRecognizerConfig,
): Promise<StreamingEncoderWeights> {
  const made: tf.Tensor[] = [];
  /** A tensor with its axes reversed ([out, in] → [in, out]; [out, in, k] → [k, in, out]), or as stored. */
  async function read(name: string, reverse: boolean): Promise<tf.Tensor> {
    const { values } = await reader.readValues(name);
    const shape = reader.info(name).shape;
    const t = reverse
      ? tf.tensor(reverseAxes(values as Float32Array, shape), [...shape].reverse())
      : tf.tensor(values, [...shape], 'float32');
    made.push(t);
    return t;
  }
  const linear = async (prefix: string): Promise<Linear> => ({
    weight: (await read(`${prefix}.weight`, true)) as tf.Tensor2D,
    bias: (await read(`${prefix}.bias`, false)) as tf.Tensor1D,
  });
  const norm = async (prefix: string): Promise<NormWeights> => ({
    weight: (await read(`${prefix}.weight`, false)) as tf.Tensor1D,
    bias: (await read(`${prefix}.bias`, false)) as tf.Tensor1D,
  });
  const conv = async (prefix: string): Promise<StreamingConvWeights> => ({
    filter: (await read(`${prefix}.weight`, true)) as tf.Tensor3D,
    bias: (await read(`${prefix}.bias`, false)) as tf.Tensor1D,
  });
  try {
    const conv1 = await conv('conv1');
    const conv2 = await conv('conv2');
    const layers: StreamingEncoderWeights['layers'] = [];
    for (let i = 0; i < config.encoder.layers; i++) {
      const p = `layers.${i}`;
      layers.push({
        attnNorm: await norm(`${p}.attn_norm`),
        q: await linear(`${p}.attn.q`),
        k: await linear(`${p}.attn.k`),
        v: await linear(`${p}.attn.v`),
        o: await linear(`${p}.attn.o`),
        mlpNorm: await norm(`${p}.mlp_norm`),
        up: await linear(`${p}.mlp.up`),
        down: await linear(`${p}.mlp.down`),
      });
    }
    return { conv1, conv2, layers, finalNorm: await norm('final_norm'), ctcHead: await linear('ctc_head') };
  } catch (error) {
    tf.dispose(made);
    throw error;
  }
}

/**
 * Row-major values of shape [a, b] or [a, b, c] → the same values with the
 * axes reversed ([b, a] or [c, b, a]): a 2-D transpose, and for a Conv1d
 * weight [out, in, kernel] the filter layout [kernel, in, out].
 */
export function reverseAxes(values: Float32Array, shape: readonly number[]): Float32Array {
  const [a, b, c = 1] = shape;
  const out = new Float32Array(values.length);
  for (let i = 0; i < a; i++) {
    for (let j = 0; j < b; j++) {
      const from = (i * b + j) * c;
      for (let k = 0; k < c; k++) out[(k * b + j) * a + i] = values[from + k];
    }
  }
  return out;
}
