import * as tf from '@tensorflow/tfjs-core';
import type {
  CreateStateOptions,
  Decoder,
  DecoderState,
  ExtendOptions,
  ExtendResult,
  TokenBatch,
} from './decoder.js';
import { InvalidArgumentError } from './errors.js';
import {
  type ArenaMatrix,
  arenaGather,
  arenaMatrix,
  disposeArenaMatrix,
  isArenaMatrix,
} from './kernels/arena-matrix.js';
import { causalAttention, causalAttentionSupported } from './kernels/causal-attention.js';
import { embedRows, embedSupported } from './kernels/embed.js';
import { denseForBackend, transposedLinearSupported, useWasmKernels } from './kernels/packed-linear.js';
import { rotarySupported, rotatePacked } from './kernels/rotary-packed.js';
import { webGpuPrograms } from './kernels/webgpu-program.js';
import { createKvCache, type KvCache, type KvCacheKind } from './kv-cache/index.js';
import { cachedAttention, causalMask } from './transformer/attention.js';
import { createConstants } from './transformer/constants.js';
import { fusedLinear } from './transformer/fused-linear.js';
import { type DenseLayer, disposeLinear, type Linear, linear } from './transformer/linear.js';
import { type Activation, activationConstants } from './transformer/mlp.js';
import {
  applyNorm,
  disposeNorm,
  foldNormIntoLinear,
  foldNormIntoRows,
  type NormKind,
  type NormWeights,
} from './transformer/norm.js';
import {
  applyRotary,
  type RotaryConfig,
  rotaryCosSin,
  rotaryInverseFrequencies,
  rotaryTables,
  rotateHalfMatrix,
} from './transformer/rotary.js';
import {
  checkCapacity,
  checkLogitsSelection,
  checkNotDisposed,
  checkPositiveInteger,
  checkRollback,
  flattenTokens,
  selectLogitRows,
} from './validate.js';

/** Shape and flavour of a decoder-only transformer (Llama family, GPT-2, ...). */
export interface CausalLmConfig {
  vocabSize: number;
  hiddenSize: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  norm: NormKind;
  normEps: number;
  activation: Activation;
  /** Gated MLP (down(act(gate(x))·up(x))) as in Llama; plain otherwise. */
  gatedMlp: boolean;
  positions:
    | { kind: 'rotary'; rotary: Omit<RotaryConfig, 'headDim'> }
    | { kind: 'learned'; maxPositions: number };
  /** Multiplies attention scores; default 1/√headDim. */
  attentionScale?: number;
  /** KV cache strategy; default: the fastest the backend supports. */
  kvCache?: KvCacheKind;
}

/** A pre-norm transformer layer as checkpoints define it, every matrix stored [in, out]. */
export interface TransformerLayerWeights {
  attnNorm: NormWeights;
  q: Linear;
  k: Linear;
  v: Linear;
  o: Linear;
  mlpNorm: NormWeights;
  up: Linear;
  down: Linear;
}

/** A decoder layer of createCausalLm: the plain layer plus, for gated MLPs, the gate. */
export interface CausalLmLayerWeights extends TransformerLayerWeights {
  /** Gated MLPs only. */
  gate?: Linear;
}

export interface CausalLmWeights {
  /**
   * [vocab, hidden]. Where the wasm kernels run (useWasmKernels) a tied
   * embedding lives in core's weight arena, where the kernel threads share
   * the head's product: a tensor given is moved there, and loaders pass an
   * ArenaMatrix directly so the checkpoint's copy never enters tfjs's heap.
   */
  embedTokens: tf.Tensor2D | ArenaMatrix;
  /** Learned positions only: [maxPositions, hidden]. */
  embedPositions?: tf.Tensor2D;
  /** Raw, or already prepared with the same config (prepareCausalLmLayer). */
  layers: (CausalLmLayerWeights | PreparedCausalLmLayer)[];
  finalNorm: NormWeights;
  /** [hidden, vocab]; omitted when the head is tied to embedTokens. */
  lmHead?: tf.Tensor2D;
}

/** A layer as the forward pass uses it (prepareCausalLmLayer). */
export interface PreparedCausalLmLayer {
  readonly qkv: DenseLayer;
  readonly o: DenseLayer;
  readonly mlp: { readonly up: DenseLayer; readonly down: DenseLayer };
}

export interface CausalLmState extends DecoderState {
  readonly cache: KvCache;
}

interface MutableState {
  batch: number;
  maxLength: number;
  lengths: Int32Array;
  disposed: boolean;
  cache: KvCache;
}

export interface CausalLm extends Decoder<CausalLmState> {
  readonly config: CausalLmConfig;
  extendStepOnDevice(
    state: CausalLmState,
    ids: tf.Tensor2D,
    options?: ExtendOptions,
  ): ExtendResult<CausalLmState>;
}

/**
 * Whether a tied embedding of this model lives in core's weight arena on the
 * current backend (so loaders put it there straight from the checkpoint).
 */
export function tiedEmbeddingInArena(config: CausalLmConfig): boolean {
  return useWasmKernels() && transposedLinearSupported(config.hiddenSize);
}

/**
 * Builds a Decoder from weights. Takes ownership of `weights`: the tensors
 * are fused (and the originals disposed) here, and freed by `dispose()`.
 */
export function createCausalLm(config: CausalLmConfig, weights: CausalLmWeights): CausalLm {
  checkConfig(config, weights);
  const { heads, kvHeads, headDim, vocabSize } = config;
  // On wasm, every weight matrix is packed for core's kernel (see PackedLinear) and the original freed.
  const packing = useWasmKernels();
  const layers = weights.layers.map((layer) =>
    isPrepared(layer) ? layer : prepareCausalLmLayer(config, layer),
  );
  // And attention runs in one kernel that reads the cache in place where it can (wasm, webgpu).
  const fusedAttention = (packing || tf.getBackend() === 'webgpu') && causalAttentionSupported(headDim);
  // On webgpu core's programs also write the cache and attend straight from the packed q|k|v product.
  const packedAttention = fusedAttention && webGpuPrograms() !== undefined;
  const inArena = !weights.lmHead && tiedEmbeddingInArena(config);
  if (isArenaMatrix(weights.embedTokens) && !inArena) {
    throw new InvalidArgumentError(
      'embedTokens is an ArenaMatrix, which only a tied head on the wasm backend with core kernels uses',
    );
  }
  const embed =
    inArena && !isArenaMatrix(weights.embedTokens) ? arenaMatrix(weights.embedTokens) : weights.embedTokens;
  const positionTable = weights.embedPositions;
  const finalNorm = weights.finalNorm;
  const lmHead = weights.lmHead;
  const rotary = config.positions.kind === 'rotary' ? config.positions.rotary : undefined;
  const inverseFrequencies = rotary && rotaryInverseFrequencies({ ...rotary, headDim });
  const rotateHalf = rotary && rotateHalfMatrix(headDim);
  const maxPositions =
    config.positions.kind === 'learned' ? config.positions.maxPositions : Number.POSITIVE_INFINITY;
  const constants = createConstants([config.normEps, ...activationConstants(config.activation)]);
  const constant = constants.of;
  // A tied head multiplies by embedTokensᵀ. tfjs-webgpu's transposed-operand matmul took 1.3–2 ms
  // for GPT-2's head against 0.3 ms untransposed, so GPU backends keep a transposed copy; core's wasm
  // kernel reads the embedding's rows as they are (XNNPACK kept a packed copy of it).
  const head: DenseLayer | undefined = lmHead
    ? denseForBackend({ weight: lmHead })
    : isArenaMatrix(embed)
      ? { weightT: embed }
      : webGpuPrograms() !== undefined
        ? { weightRows: embed.clone() }
        : tf.getBackend() === 'webgpu'
          ? { weight: tf.transpose(embed) as tf.Tensor2D }
          : undefined;
  // Where core's webgpu programs run, the final norm's affine part moves into the head (a copy
  // of the embedding when tied), so standardizing and the product are one program (fusedLinear).
  const foldedFinalNorm = head !== undefined && 'weightRows' in head;
  const outputHead: DenseLayer | undefined = foldedFinalNorm
    ? foldNormIntoRows({ weight: finalNorm.weight.clone(), bias: finalNorm.bias?.clone() }, head)
    : head;
  let disposed = false;

  function createState({ batch, maxLength }: CreateStateOptions): CausalLmState {
    if (disposed) throw new InvalidArgumentError('the model was disposed');
    checkPositiveInteger('batch', batch);
    checkPositiveInteger('maxLength', maxLength);
    if (maxLength > maxPositions) {
      throw new InvalidArgumentError(`maxLength ${maxLength} exceeds the model's ${maxPositions} positions`);
    }
    const cache = createKvCache(
      { batch, layers: layers.length, kvHeads, headDim, capacity: maxLength },
      config.kvCache,
    );
    const state: MutableState = { batch, maxLength, lengths: new Int32Array(batch), disposed: false, cache };
    return state;
  }

  function forward(
    state: MutableState,
    ids: Int32Array | tf.Tensor2D,
    steps: number,
    options?: ExtendOptions,
  ): tf.Tensor3D {
    const { batch, cache, lengths } = state;
    const positions = new Int32Array(batch * steps);
    for (let r = 0; r < batch; r++) for (let s = 0; s < steps; s++) positions[r * steps + s] = lengths[r] + s;
    const readLength = Math.max(...lengths) + steps;
    const norm = { kind: config.norm, eps: config.normEps };
    return tf.tidy(() => {
      let x: tf.Tensor2D;
      if (!isArenaMatrix(embed) && embedSupported()) {
        const flat = ids instanceof tf.Tensor ? (tf.reshape(ids, [-1]) as tf.Tensor1D) : ids;
        x = embedRows(embed, flat, positionTable, lengths, steps);
      } else {
        x = isArenaMatrix(embed)
          ? arenaGather(embed, ids)
          : (tf.gather(embed, ids instanceof tf.Tensor ? tf.reshape(ids, [-1]) : ids) as tf.Tensor2D);
        if (positionTable) x = tf.add(x, tf.gather(positionTable, positions));
      }
      // Cache and attention read the heads where the projection put them: no slices, no transposes.
      const packed = packedAttention && cache.writeHeads !== undefined && cache.whole !== undefined;
      let cos: tf.Tensor | undefined;
      let sin: tf.Tensor | undefined;
      let cosSin: tf.Tensor2D | undefined;
      if (inverseFrequencies && packed && rotarySupported()) {
        // One table for every layer's rotary kernel: one upload per pass.
        cosSin = tf.tensor2d(rotaryCosSin(inverseFrequencies, positions), [batch * steps, headDim]);
      } else if (inverseFrequencies) {
        const tables = rotaryTables(inverseFrequencies, positions);
        cos = tf.tensor4d(tables.cos, [batch, steps, 1, headDim]);
        sin = tf.tensor4d(tables.sin, [batch, steps, 1, headDim]);
      }
      let mask: tf.Tensor | undefined;
      // [batch, steps, kvHeads, headDim] → [batch, kvHeads, steps, headDim]; one step needs no data movement.
      const headsFirst = (t: tf.Tensor4D): tf.Tensor4D =>
        steps === 1 ? tf.reshape(t, [batch, kvHeads, 1, headDim]) : tf.transpose(t, [0, 2, 1, 3]);
      try {
        for (const [index, layer] of layers.entries()) {
          // One scope per layer: a long window's attention scores ([steps, length] per head)
          // are freed before the next layer instead of piling up over all of them.
          const next = tf.tidy(() => {
            const qkv = tf.reshape(fusedLinear(x, layer.qkv, { norm, constant }), [
              batch,
              steps,
              heads + 2 * kvHeads,
              headDim,
            ]) as tf.Tensor4D;
            let mixed: tf.Tensor2D;
            if (packed && cache.writeHeads && cache.whole) {
              const qk = !rotateHalf
                ? qkv
                : cosSin
                  ? rotatePacked(qkv, cosSin, heads + kvHeads)
                  : (applyRotary(
                      tf.slice(qkv, [0, 0, 0, 0], [batch, steps, heads + kvHeads, headDim]),
                      cos!,
                      sin!,
                      rotateHalf,
                    ) as tf.Tensor4D);
              cache.writeHeads(
                index,
                { from: qk, head: heads },
                { from: qkv, head: heads + kvHeads },
                lengths,
              );
              const { keys, values } = cache.whole(index);
              mixed = causalAttention(qk, keys, values, lengths, { queryHeads: heads });
            } else {
              let q: tf.Tensor4D;
              let k: tf.Tensor4D;
              let v: tf.Tensor4D;
              if (rotateHalf) {
                const [qk, vv] = tf.split(qkv, [heads + kvHeads, kvHeads], 2) as tf.Tensor4D[];
                [q, k] = tf.split(
                  applyRotary(qk, cos!, sin!, rotateHalf),
                  [heads, kvHeads],
                  2,
                ) as tf.Tensor4D[];
                v = vv;
              } else {
                [q, k, v] = tf.split(qkv, [heads, kvHeads, kvHeads], 2) as tf.Tensor4D[];
              }
              cache.write(index, headsFirst(k), headsFirst(v), lengths);
              if (fusedAttention) {
                const { keys, values } = cache.whole?.(index) ?? cache.read(index, readLength);
                mixed = causalAttention(q, keys, values, lengths);
              } else {
                const { keys, values } = cache.read(index, readLength);
                mask ??= tf.keep(causalMask(lengths, steps, keys.shape[2]));
                mixed = cachedAttention(q, keys, values, mask);
              }
            }
            const attended = fusedLinear(mixed, layer.o, { residual: x });
            const hidden = fusedLinear(attended, layer.mlp.up, {
              norm,
              activation: config.activation,
              gated: config.gatedMlp,
              constant,
            });
            return fusedLinear(hidden, layer.mlp.down, { residual: attended });
          });
          x.dispose();
          x = next;
        }
      } finally {
        mask?.dispose();
      }
      const selection = options?.logits ?? 'all';
      if (selection === 'none') return tf.zeros([batch, 0, vocabSize]) as tf.Tensor3D;
      let logits: tf.Tensor2D;
      if (foldedFinalNorm && selection === 'last') {
        // Each row's last step, picked inside the head's program: no gather, no index upload.
        logits = fusedLinear(x, outputHead!, {
          norm,
          constant,
          pickRows: { stride: steps, offset: steps - 1 },
        });
      } else if (foldedFinalNorm) {
        logits = fusedLinear(selectLogitRows(x, batch, steps, selection), outputHead!, { norm, constant });
      } else {
        const selected = selectLogitRows(x, batch, steps, selection);
        const normed = applyNorm(config.norm, selected, finalNorm, config.normEps, constant) as tf.Tensor2D;
        logits = outputHead
          ? linear(normed, outputHead)
          : tf.matMul(normed, embed as tf.Tensor2D, false, true);
      }
      return tf.reshape(logits, [batch, -1, vocabSize]) as tf.Tensor3D;
    });
  }

  function extendStep(
    state: CausalLmState,
    tokens: TokenBatch,
    options?: ExtendOptions,
  ): ExtendResult<CausalLmState> {
    const s = state as MutableState;
    checkNotDisposed(s);
    const { ids, steps } = flattenTokens(tokens, s.batch, vocabSize);
    return checkedPass(s, ids, steps, options);
  }

  /** The checks both entry points share, the pass, then the new lengths. */
  function checkedPass(
    s: MutableState,
    ids: Int32Array | tf.Tensor2D,
    steps: number,
    options: ExtendOptions | undefined,
  ): ExtendResult<CausalLmState> {
    checkCapacity(s.lengths, steps, s.maxLength, maxPositions);
    checkLogitsSelection(options?.logits, s.batch, steps);
    const logits = forward(s, ids, steps, options);
    // Only now, after the pass succeeded, do the rows own their new positions.
    for (let r = 0; r < s.batch; r++) s.lengths[r] += steps;
    return { logits, state: s as CausalLmState };
  }

  function extendStepOnDevice(
    state: CausalLmState,
    ids: tf.Tensor2D,
    options?: ExtendOptions,
  ): ExtendResult<CausalLmState> {
    const s = state as MutableState;
    checkNotDisposed(s);
    if (!(ids instanceof tf.Tensor) || ids.rank !== 2 || ids.dtype !== 'int32' || ids.shape[0] !== s.batch) {
      const got = ids instanceof tf.Tensor ? `${ids.dtype} [${ids.shape}]` : typeof ids;
      throw new InvalidArgumentError(`ids must be an int32 tensor [${s.batch}, steps], got ${got}`);
    }
    checkPositiveInteger('steps', ids.shape[1]);
    return checkedPass(s, ids, ids.shape[1], options);
  }

  function rollback(state: CausalLmState, lengths: ArrayLike<number>): void {
    const s = state as MutableState;
    checkNotDisposed(s);
    checkRollback(s.lengths, lengths);
    s.lengths.set(Array.from(lengths));
  }

  function disposeState(state: CausalLmState): void {
    const s = state as MutableState;
    if (s.disposed) return;
    s.cache.dispose();
    s.disposed = true;
  }

  return {
    config,
    vocabSize,
    maxPositions,
    createState,
    extendStep,
    extendStepOnDevice,
    rollback,
    disposeState,
    dispose() {
      if (disposed) return;
      disposed = true;
      for (const layer of layers) {
        for (const l of [layer.qkv, layer.o, layer.mlp.up, layer.mlp.down]) disposeLinear(l);
      }
      if (isArenaMatrix(embed)) disposeArenaMatrix(embed);
      else embed.dispose();
      positionTable?.dispose();
      disposeNorm(finalNorm);
      disposeLinear(outputHead);
      rotateHalf?.dispose();
      constants.dispose();
    },
  };
}

/**
 * One layer as the forward pass uses it: q/k/v fused into one product (the
 * score scale folded into q), gate/up into another, each norm's affine part
 * folded into the product after it, and on wasm every product packed into
 * the weight arena. Takes ownership of `layer`'s tensors. Loaders call it as
 * each layer is read, so a checkpoint never sits whole in tfjs's heap next
 * to its packed copy (createCausalLm accepts layers prepared or not).
 */
export function prepareCausalLmLayer(
  config: CausalLmConfig,
  layer: CausalLmLayerWeights,
): PreparedCausalLmLayer {
  if (config.gatedMlp && !layer.gate) {
    throw new InvalidArgumentError('a gated MLP needs a gate projection in every layer');
  }
  const attnScale = config.attentionScale ?? 1 / Math.sqrt(config.headDim);
  const qkv = tf.tidy(() => {
    // The score scale is folded into q's weights: one op less per layer and step.
    const weight = tf.concat(
      [tf.mul(layer.q.weight, attnScale), layer.k.weight, layer.v.weight],
      1,
    ) as tf.Tensor2D;
    const hasBias = layer.q.bias || layer.k.bias || layer.v.bias;
    const bias = hasBias
      ? (tf.concat(
          [
            layer.q.bias ? tf.mul(layer.q.bias, attnScale) : tf.zeros([config.heads * config.headDim]),
            layer.k.bias ?? tf.zeros([config.kvHeads * config.headDim]),
            layer.v.bias ?? tf.zeros([config.kvHeads * config.headDim]),
          ],
          0,
        ) as tf.Tensor1D)
      : undefined;
    return bias ? { weight, bias } : { weight };
  });
  for (const l of [layer.q, layer.k, layer.v]) disposeLinear(l);
  let up = layer.up;
  if (config.gatedMlp) {
    const gate = layer.gate!;
    up = tf.tidy(() => {
      const weight = tf.concat([gate.weight, layer.up.weight], 1) as tf.Tensor2D;
      const bias =
        gate.bias && layer.up.bias ? (tf.concat([gate.bias, layer.up.bias], 0) as tf.Tensor1D) : undefined;
      return bias ? { weight, bias } : { weight };
    });
    disposeLinear(gate);
    disposeLinear(layer.up);
  }
  // Each norm's weight (and bias) moves into the matmul after it: two ops less per norm and step.
  return {
    qkv: denseForBackend(foldNormIntoLinear(layer.attnNorm, qkv)),
    o: denseForBackend(layer.o),
    mlp: { up: denseForBackend(foldNormIntoLinear(layer.mlpNorm, up)), down: denseForBackend(layer.down) },
  };
}

/** Frees a prepared layer (what createCausalLm's dispose does for its own). */
export function disposePreparedCausalLmLayer(layer: PreparedCausalLmLayer): void {
  for (const l of [layer.qkv, layer.o, layer.mlp.up, layer.mlp.down]) disposeLinear(l);
}

const isPrepared = (layer: CausalLmLayerWeights | PreparedCausalLmLayer): layer is PreparedCausalLmLayer =>
  'qkv' in layer;

function checkConfig(config: CausalLmConfig, weights: CausalLmWeights): void {
  for (const key of ['vocabSize', 'hiddenSize', 'layers', 'heads', 'kvHeads', 'headDim'] as const) {
    checkPositiveInteger(key, config[key]);
  }
  if (config.heads % config.kvHeads !== 0) {
    throw new InvalidArgumentError(
      `heads (${config.heads}) must be a multiple of kvHeads (${config.kvHeads})`,
    );
  }
  if (weights.layers.length !== config.layers) {
    throw new InvalidArgumentError(
      `config has ${config.layers} layers but weights have ${weights.layers.length}`,
    );
  }
  if (config.positions.kind === 'rotary' && config.headDim % 2 !== 0) {
    throw new InvalidArgumentError(`rotary positions need an even headDim, got ${config.headDim}`);
  }
  if (config.positions.kind === 'learned' && !weights.embedPositions) {
    throw new InvalidArgumentError('learned positions need weights.embedPositions');
  }
  if (config.gatedMlp && weights.layers.some((l) => !isPrepared(l) && !l.gate)) {
    throw new InvalidArgumentError('a gated MLP needs a gate projection in every layer');
  }
}
