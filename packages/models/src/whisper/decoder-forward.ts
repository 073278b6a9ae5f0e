import {
  type Activation,
  cachedAttention,
  causalMask,
  type ExtendOptions,
  type KvCache,
  layerNorm,
  linear,
  type NormWeights,
  selectLogitRows,
  transposedLinear,
  transposedLinearSupported,
  useWasmKernels,
} from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { noMask } from './attention.js';
import {
  type CrossKeysValues,
  crossAndMlp,
  type PreparedDecoderLayer,
  selfProjections,
} from './decoder-layers.js';

/** The decoder's weights as the forward pass uses them, plus the sizes it needs. */
export interface PreparedDecoder {
  vocabSize: number;
  heads: number;
  eps: number;
  activation: Activation;
  /** √dModel when the config scales token embeddings, else 1. */
  embedScale: number;
  layers: PreparedDecoderLayer[];
  /** [vocab, dModel]; also the output head. */
  embedTokens: tf.Tensor2D;
  embedPositions: tf.Tensor2D;
  finalNorm: NormWeights;
}

/** What one pass reads from a decoder state (lengths are not advanced here). */
export interface ForwardState {
  batch: number;
  lengths: Int32Array;
  cache: KvCache;
  cross: readonly CrossKeysValues[];
}

/**
 * One pass over `steps` new ids per row (ids row-major, already checked):
 * writes their self-attention keys/values into the cache at each row's
 * positions and returns the selected logits [batch, steps or 1, vocab].
 */
export function decoderForward(
  model: PreparedDecoder,
  state: ForwardState,
  ids: Int32Array,
  steps: number,
  options?: ExtendOptions,
): tf.Tensor3D {
  const { heads, eps, activation, embedScale, layers, embedTokens } = model;
  const { batch, cache, lengths, cross } = state;
  const positions = new Int32Array(batch * steps);
  for (let r = 0; r < batch; r++) for (let s = 0; s < steps; s++) positions[r * steps + s] = lengths[r] + s;
  const readLength = Math.max(...lengths) + steps;
  const shape = { batch, steps, heads, eps };
  return tf.tidy(() => {
    const tokens = tf.gather(embedTokens, ids) as tf.Tensor2D;
    const scaled = embedScale === 1 ? tokens : tf.mul(tokens, embedScale);
    let x = tf.add(scaled, tf.gather(model.embedPositions, positions)) as tf.Tensor2D;
    const unmasked = noMask();
    let mask: tf.Tensor | undefined;
    layers.forEach((layer, index) => {
      const { q, keys, values } = selfProjections(x, layer, shape);
      cache.write(index, keys, values, lengths);
      const cached = cache.read(index, readLength);
      mask ??= causalMask(lengths, steps, cached.keys.shape[2]);
      x = tf.add(x, linear(cachedAttention(q, cached.keys, cached.values, mask), layer.o));
      x = crossAndMlp(x, layer, cross[index], shape, activation, unmasked);
    });
    const selection = options?.logits ?? 'all';
    if (selection === 'none') return tf.zeros([batch, 0, model.vocabSize]) as tf.Tensor3D;
    const normed = layerNorm(
      selectLogitRows(x, batch, steps, selection),
      model.finalNorm,
      eps,
    ) as tf.Tensor2D;
    // The head is tied to the token embedding, unscaled: transformers ties proj_out to the raw table.
    // On wasm core's kernel reads the table's rows as they are (tfjs's transposed product runs a
    // scalar loop there: 37 ms for GPT-2's head against 5.5 ms).
    const logits =
      useWasmKernels() && transposedLinearSupported(normed.shape[1])
        ? transposedLinear(normed, { weightT: embedTokens })
        : tf.matMul(normed, embedTokens, false, true);
    return tf.reshape(logits, [batch, -1, model.vocabSize]) as tf.Tensor3D;
  });
}
