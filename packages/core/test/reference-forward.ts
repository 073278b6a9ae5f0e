import * as tf from '@tensorflow/tfjs-core';
import type { CausalLmConfig, CausalLmLayerWeights, CausalLmWeights } from '../src/causal-lm.js';
import { isArenaMatrix } from '../src/kernel-sets/wasm/arena-matrix.js';

/**
 * CausalLmWeights as randomCausalLmWeights makes them and checkpoints define
 * them: every matrix a tfjs tensor, no layer prepared (prepareCausalLmLayer).
 */
interface RawCausalLmWeights extends CausalLmWeights {
  embedTokens: tf.Tensor2D;
  layers: CausalLmLayerWeights[];
}

/** The helpers here read raw weights only: the embedding's tensor and each layer's q/k/v/gate/up. */
function assertRaw(w: CausalLmWeights): asserts w is RawCausalLmWeights {
  if (isArenaMatrix(w.embedTokens)) throw new Error('reference-forward needs embedTokens as a tensor');
  // A prepared layer (prepareCausalLmLayer) has fused, packed projections that only createCausalLm reads.
  if (w.layers.some((l) => 'qkv' in l)) {
    throw new Error('reference-forward needs raw layers, not prepared ones');
  }
}

/**
 * A deliberately naive forward pass over a whole sequence, one row, no
 * cache, written from the textbook definitions and sharing no code with the
 * engine: separate q/k/v, repeat-KV for GQA, rotate_half by slicing, angles in
 * float64, a full causal mask, the tanh form of gelu. The engine's
 * extendStep must agree with it.
 */
export function referenceLogits(config: CausalLmConfig, w: CausalLmWeights, ids: number[]): Float32Array {
  assertRaw(w);
  return tf.tidy(() => {
    const T = ids.length;
    const { heads, kvHeads, headDim: D } = config;
    let x = tf.gather(w.embedTokens, ids) as tf.Tensor2D;
    if (config.positions.kind === 'learned') x = tf.add(x, tf.slice(w.embedPositions!, [0, 0], [T, -1]));
    const norm = (v: tf.Tensor2D, n: { weight: tf.Tensor; bias?: tf.Tensor }) => {
      if (config.norm === 'rms') {
        const rms = tf.sqrt(tf.add(tf.mean(tf.mul(v, v), 1, true), config.normEps));
        return tf.mul(tf.div(v, rms), n.weight) as tf.Tensor2D;
      }
      const mean = tf.mean(v, 1, true);
      const centered = tf.sub(v, mean);
      const variance = tf.mean(tf.mul(centered, centered), 1, true);
      const out = tf.mul(tf.div(centered, tf.sqrt(tf.add(variance, config.normEps))), n.weight);
      return (n.bias ? tf.add(out, n.bias) : out) as tf.Tensor2D;
    };
    const dense = (v: tf.Tensor2D, l: { weight: tf.Tensor2D; bias?: tf.Tensor1D }) => {
      const out = tf.matMul(v, l.weight);
      return l.bias ? tf.add(out, l.bias) : out;
    };
    const act = (v: tf.Tensor) => {
      switch (config.activation) {
        case 'silu':
          return tf.div(v, tf.add(1, tf.exp(tf.neg(v))));
        case 'gelu_tanh':
          return tf.mul(
            tf.mul(v, 0.5),
            tf.add(1, tf.tanh(tf.mul(Math.sqrt(2 / Math.PI), tf.add(v, tf.mul(0.044715, tf.pow(v, 3)))))),
          );
        case 'gelu':
          return tf.mul(tf.mul(v, 0.5), tf.add(1, tf.erf(tf.div(v, Math.SQRT2))));
        case 'relu':
          return tf.maximum(v, 0);
      }
    };
    const rope = (v: tf.Tensor3D) => {
      if (config.positions.kind !== 'rotary') return v;
      const { theta } = config.positions.rotary;
      const cos: number[] = [];
      const sin: number[] = [];
      for (let t = 0; t < T; t++) {
        for (let i = 0; i < D; i++) {
          const angle = t / theta ** ((2 * (i % (D / 2))) / D);
          cos.push(Math.cos(angle));
          sin.push(Math.sin(angle));
        }
      }
      const c = tf.tensor3d(cos, [T, 1, D]);
      const s = tf.tensor3d(sin, [T, 1, D]);
      const x1 = tf.slice(v, [0, 0, 0], [-1, -1, D / 2]);
      const x2 = tf.slice(v, [0, 0, D / 2], [-1, -1, D / 2]);
      return tf.add(tf.mul(v, c), tf.mul(tf.concat([tf.neg(x2), x1], 2), s)) as tf.Tensor3D;
    };
    const causal = tf.linalg.bandPart(tf.ones([T, T]), -1, 0);
    for (const layer of w.layers) {
      const h = norm(x, layer.attnNorm);
      const q = rope(tf.reshape(dense(h, layer.q), [T, heads, D]));
      const k = rope(tf.reshape(dense(h, layer.k), [T, kvHeads, D]));
      const v = tf.reshape(dense(h, layer.v), [T, kvHeads, D]);
      const repeat = Array.from({ length: heads }, (_, hh) => Math.floor(hh / (heads / kvHeads)));
      const kFull = tf.transpose(tf.gather(k, repeat, 1), [1, 0, 2]);
      const vFull = tf.transpose(tf.gather(v, repeat, 1), [1, 0, 2]);
      const qh = tf.transpose(q, [1, 0, 2]);
      const scale = config.attentionScale ?? 1 / Math.sqrt(D);
      const scores = tf.mul(tf.matMul(qh, kFull, false, true), scale);
      const masked = tf.where(
        tf.cast(causal, 'bool'),
        scores,
        tf.fill(scores.shape, Number.NEGATIVE_INFINITY),
      );
      const attn = tf.reshape(tf.transpose(tf.matMul(tf.softmax(masked), vFull), [1, 0, 2]), [T, heads * D]);
      x = tf.add(x, dense(attn as tf.Tensor2D, layer.o));
      const h2 = norm(x, layer.mlpNorm);
      const hidden = layer.gate
        ? tf.mul(act(dense(h2, layer.gate)), dense(h2, layer.up))
        : act(dense(h2, layer.up));
      x = tf.add(x, dense(hidden as tf.Tensor2D, layer.down));
    }
    const final = norm(x, w.finalNorm);
    const logits = w.lmHead ? tf.matMul(final, w.lmHead) : tf.matMul(final, w.embedTokens, false, true);
    return logits.dataSync() as Float32Array;
  });
}

/** Deep copy, because createCausalLm takes ownership of (and fuses) its weights. */
export function cloneWeights(w: CausalLmWeights): CausalLmWeights {
  assertRaw(w);
  return tf.tidy(() => {
    const copy = <T extends tf.Tensor | undefined>(t: T): T => (t ? tf.keep(t.clone()) : t) as T;
    const lin = (l?: { weight: tf.Tensor2D; bias?: tf.Tensor1D }) =>
      l ? { weight: copy(l.weight), bias: copy(l.bias) } : undefined;
    const nrm = (n: { weight: tf.Tensor1D; bias?: tf.Tensor1D }) => ({
      weight: copy(n.weight),
      bias: copy(n.bias),
    });
    return {
      embedTokens: copy(w.embedTokens),
      embedPositions: copy(w.embedPositions),
      layers: w.layers.map((l) => ({
        attnNorm: nrm(l.attnNorm),
        q: lin(l.q)!,
        k: lin(l.k)!,
        v: lin(l.v)!,
        o: lin(l.o)!,
        mlpNorm: nrm(l.mlpNorm),
        gate: lin(l.gate),
        up: lin(l.up)!,
        down: lin(l.down)!,
      })),
      finalNorm: nrm(w.finalNorm),
      lmHead: copy(w.lmHead),
    };
  });
}

export function disposeWeights(w: CausalLmWeights): void {
  assertRaw(w);
  tf.dispose(
    [w.embedTokens, w.embedPositions, w.finalNorm.weight, w.finalNorm.bias, w.lmHead].filter(
      (t) => !!t,
    ) as tf.Tensor[],
  );
  for (const l of w.layers) {
    const parts = [l.attnNorm, l.mlpNorm, l.q, l.k, l.v, l.o, l.gate, l.up, l.down];
    for (const p of parts) if (p) tf.dispose([p.weight, p.bias].filter((t) => !!t) as tf.Tensor[]);
  }
}
