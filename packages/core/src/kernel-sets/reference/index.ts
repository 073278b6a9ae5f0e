import * as tf from '@tensorflow/tfjs-core';
import type { CausalLmConfig } from '../../causal-lm.js';
import { InvalidArgumentError } from '../../errors.js';
import { DEFAULT_PREFILL_BUCKETS } from '../../prefill.js';
import { cachedAttention, causalMask } from '../../transformer/attention.js';
import { type ConstantOf, createConstants } from '../../transformer/constants.js';
import { type DenseLayer, linear } from '../../transformer/linear.js';
import { type Activation, activate, activationConstants } from '../../transformer/mlp.js';
import {
  disposeNorm,
  layerNorm,
  type NormKind,
  rmsNorm,
  standardizeComposed,
} from '../../transformer/norm.js';
import {
  applyRotary,
  rotaryInverseFrequencies,
  rotaryTables,
  rotateHalfMatrix,
} from '../../transformer/rotary.js';
import { selectLogitRows } from '../../validate.js';
import type { KernelSet, LinearStep, OutputWeights, Pass } from '../kernel-set.js';
import { isArenaMatrix } from '../wasm/arena-matrix.js';

/** A pass's q, k and v as separate [batch, steps, n, headDim] tensors. */
export interface SplitHeads {
  q: tf.Tensor4D;
  k: tf.Tensor4D;
  v: tf.Tensor4D;
}

/**
 * The definition every other set is tested against: tfjs's own ops on any
 * backend, weights as checkpoints give them ([in, out]; a tied head
 * multiplies by the embedding transposed).
 */
export const referenceKernels: KernelSet = {
  name: 'reference',
  weights: 'f32',
  unavailable: () => undefined,
  // tfjs's own kernels compile a program per shape on webgpu; elsewhere any length runs as it is.
  prefillBuckets: () => (tf.getBackend() === 'webgpu' ? DEFAULT_PREFILL_BUCKETS : 'any'),
  prepareLinear: (layer) => layer,
  tiedEmbeddingInArena: () => false,
  forModel(config, output) {
    const { embedTokens, embedPositions, finalNorm, lmHead } = output;
    if (isArenaMatrix(embedTokens)) {
      throw new InvalidArgumentError(
        'the reference kernel set takes embedTokens as a tensor, not an ArenaMatrix',
      );
    }
    const tables = modelTables(config);
    const constant = tables.constants.of;
    const { pass, splitHeads, writeSplit, attendByMask, ...own } = passSteps(config, tables);
    return {
      name: 'reference',
      ...own,
      embed: (ids) => gatherEmbedding(embedTokens, embedPositions, ids, pass()),
      linear: (x, layer, options) => composedLinear(x, layer, options, constant),
      heads: splitHeads,
      writeCache: writeSplit,
      attend: attendByMask,
      logits(x, selection) {
        const { batch, steps } = pass();
        const normed = composedNorm(
          config.norm,
          selectLogitRows(x, batch, steps, selection),
          finalNorm,
          config.normEps,
          constant,
        );
        return lmHead
          ? (tf.matMul(normed, lmHead) as tf.Tensor2D)
          : (tf.matMul(normed, embedTokens, false, true) as tf.Tensor2D);
      },
      dispose() {
        embedTokens.dispose();
        embedPositions?.dispose();
        lmHead?.dispose();
        disposeNorm(finalNorm);
        tables.dispose();
      },
    };
  },
};

/** What a model's passes share on every set: scalar constants and rotary's fixed tables. */
export interface ModelTables {
  readonly constants: ReturnType<typeof createConstants>;
  readonly inverseFrequencies?: Float32Array;
  readonly rotateHalf?: tf.Tensor2D;
  dispose(): void;
}

export function modelTables(config: CausalLmConfig): ModelTables {
  const { positions, headDim } = config;
  const rotary = positions.kind === 'rotary' ? positions.rotary : undefined;
  const constants = createConstants([config.normEps, ...activationConstants(config.activation)]);
  const rotateHalf = rotary && rotateHalfMatrix(headDim);
  return {
    constants,
    inverseFrequencies: rotary && rotaryInverseFrequencies({ ...rotary, headDim }),
    rotateHalf,
    dispose() {
      constants.dispose();
      rotateHalf?.dispose();
    },
  };
}

/**
 * The reference steps around the cache, which the other sets reuse where
 * their own kernels do not apply: the heads split and rotated with tfjs
 * ops, the cache written with `write`, attention over `read` with a mask.
 */
export function passSteps(config: CausalLmConfig, tables: ModelTables) {
  const { heads, kvHeads, headDim } = config;
  let current: Pass | undefined;
  let rotary: { cos: tf.Tensor4D; sin: tf.Tensor4D } | undefined;
  let mask: tf.Tensor | undefined;
  const pass = (): Pass => {
    if (!current) throw new Error('a kernel step ran outside a pass');
    return current;
  };
  return {
    pass,
    beginPass(p: Pass) {
      current = p;
    },
    endPass() {
      rotary?.cos.dispose();
      rotary?.sin.dispose();
      mask?.dispose();
      rotary = undefined;
      mask = undefined;
      current = undefined;
    },
    splitHeads(qkv: tf.Tensor2D): SplitHeads {
      const { batch, steps, positions } = pass();
      const packed = tf.reshape(qkv, [batch, steps, heads + 2 * kvHeads, headDim]) as tf.Tensor4D;
      if (!tables.rotateHalf) {
        const [q, k, v] = tf.split(packed, [heads, kvHeads, kvHeads], 2) as tf.Tensor4D[];
        return { q, k, v };
      }
      // One pair of tables per pass, kept for every layer.
      rotary ??= tf.tidy(() => {
        const t = rotaryTables(tables.inverseFrequencies!, positions);
        return {
          cos: tf.keep(tf.tensor4d(t.cos, [batch, steps, 1, headDim])),
          sin: tf.keep(tf.tensor4d(t.sin, [batch, steps, 1, headDim])),
        };
      });
      const [qk, v] = tf.split(packed, [heads + kvHeads, kvHeads], 2) as tf.Tensor4D[];
      const rotated = applyRotary(qk, rotary.cos, rotary.sin, tables.rotateHalf);
      const [q, k] = tf.split(rotated, [heads, kvHeads], 2) as tf.Tensor4D[];
      return { q, k, v };
    },
    writeSplit(layer: number, { k, v }: SplitHeads) {
      const { batch, steps, lengths, cache } = pass();
      // [batch, steps, kvHeads, headDim] → [batch, kvHeads, steps, headDim]; one step needs no data movement.
      const headsFirst = (t: tf.Tensor4D): tf.Tensor4D =>
        steps === 1 ? tf.reshape(t, [batch, kvHeads, 1, headDim]) : tf.transpose(t, [0, 2, 1, 3]);
      cache.write(layer, headsFirst(k), headsFirst(v), lengths);
    },
    attendByMask(layer: number, { q }: SplitHeads): tf.Tensor2D {
      const { steps, lengths, cache } = pass();
      const { keys, values } = cache.read(layer, Math.max(...lengths) + steps);
      mask ??= tf.keep(causalMask(lengths, steps, keys.shape[2]));
      return cachedAttention(q, keys, values, mask);
    },
  };
}

/** Token rows (+ learned positions) by gathers. */
export function gatherEmbedding(
  table: tf.Tensor2D,
  positionTable: tf.Tensor2D | undefined,
  ids: Int32Array | tf.Tensor2D,
  { positions }: Pass,
): tf.Tensor2D {
  const x = tf.gather(table, ids instanceof tf.Tensor ? tf.reshape(ids, [-1]) : ids) as tf.Tensor2D;
  return positionTable ? tf.add(x, tf.gather(positionTable, positions)) : x;
}

/** residual + act(standardize(x)·W + b) of tfjs ops; the product is whatever `linear` makes of the layer. */
export function composedLinear(
  x: tf.Tensor2D,
  layer: DenseLayer,
  options: LinearStep = {},
  constant: ConstantOf,
  standardizeRows: (kind: NormKind, x: tf.Tensor, eps: number) => tf.Tensor = (kind, rows, eps) =>
    standardizeComposed(kind, rows, eps, constant),
): tf.Tensor2D {
  const { norm, activation, gated = false, residual } = options;
  let y = linear(norm ? (standardizeRows(norm.kind, x, norm.eps) as tf.Tensor2D) : x, layer);
  if (activation !== undefined) y = composedActivation(activation, y, gated, constant);
  else if (gated) throw new Error('a gated layer needs an activation');
  return residual ? (tf.add(residual, y) as tf.Tensor2D) : y;
}

/** act(x), or act(gate)·up of x = [gate | up]. */
export function composedActivation(
  kind: Activation,
  x: tf.Tensor2D,
  gated: boolean,
  constant: ConstantOf,
): tf.Tensor2D {
  if (!gated) return activate(kind, x, constant) as tf.Tensor2D;
  const [gate, up] = tf.split(x, 2, 1);
  return tf.mul(activate(kind, gate, constant), up) as tf.Tensor2D;
}

/** The final norm with its affine part, of tfjs ops. */
function composedNorm(
  kind: NormKind,
  x: tf.Tensor2D,
  norm: OutputWeights['finalNorm'],
  eps: number,
  constant: ConstantOf,
): tf.Tensor2D {
  return (
    kind === 'rms' ? rmsNorm(x, norm, eps, constant) : layerNorm(x, norm, eps, constant)
  ) as tf.Tensor2D;
}
