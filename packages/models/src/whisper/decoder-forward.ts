import type { Activation, ExtendOptions, KvCache, ModelKernels } from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { noMask } from './attention.js';
import { type CrossKeysValues, crossAttention, type PreparedDecoderLayer } from './decoder-layers.js';

/** The decoder as the forward pass uses it: its kernel set bound to it, and the layers in the set's layouts. */
export interface PreparedDecoder {
  vocabSize: number;
  kernels: ModelKernels;
  /** √dModel when the config scales token embeddings, else 1 (positions were divided by it at load). */
  embedScale: number;
  layers: PreparedDecoderLayer[];
  norm: { kind: 'layer'; eps: number };
  activation: Activation;
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
 * positions and returns the selected logits [batch, steps or 1, vocab]. The
 * steps are core's causal LM's (kernel-set.ts), with cross-attention over
 * the audio between self-attention and the MLP.
 */
export function decoderForward(
  model: PreparedDecoder,
  { batch, cache, lengths, cross }: ForwardState,
  ids: Int32Array,
  steps: number,
  options?: ExtendOptions,
): tf.Tensor3D {
  const { kernels: k, layers, norm, activation, embedScale } = model;
  const positions = new Int32Array(batch * steps);
  for (let r = 0; r < batch; r++) for (let s = 0; s < steps; s++) positions[r * steps + s] = lengths[r] + s;
  k.beginPass({ batch, steps, lengths, positions, cache });
  try {
    return tf.tidy(() => {
      const embedded = k.embed(ids);
      let x = embedScale === 1 ? embedded : (tf.mul(embedded, embedScale) as tf.Tensor2D);
      const unmasked = noMask();
      for (const [index, layer] of layers.entries()) {
        const next = tf.tidy(() => {
          const h = k.heads(k.linear(x, layer.qkv, { norm }));
          k.writeCache(index, h);
          const attended = k.linear(k.attend(index, h), layer.o, { residual: x });
          const q = k.linear(attended, layer.crossQ, { norm });
          const heard = k.linear(crossAttention(q, cross[index], batch, steps, unmasked), layer.crossO, {
            residual: attended,
          });
          const hidden = k.linear(heard, layer.mlp.up, { norm, activation });
          return k.linear(hidden, layer.mlp.down, { residual: heard });
        });
        x.dispose();
        x = next;
      }
      const selection = options?.logits ?? 'all';
      if (selection === 'none') return tf.zeros([batch, 0, model.vocabSize]) as tf.Tensor3D;
      // The head is tied to the token embedding, unscaled: transformers ties proj_out to the raw table.
      return tf.reshape(k.logits(x, selection), [batch, -1, model.vocabSize]) as tf.Tensor3D;
    });
  } finally {
    k.endPass();
  }
}
