import * as tf from '@tensorflow/tfjs-core';
import type {
  CreateStateOptions,
  Decoder,
  DecoderState,
  ExtendOptions,
  ExtendResult,
  SplitTokens,
  TokenBatch,
} from './decoder.js';
import { InvalidArgumentError } from './errors.js';
import { kernelSet } from './kernel-sets/index.js';
import type { BlocksInput, KernelSet, OutputWeights, ProductPart } from './kernel-sets/kernel-set.js';
import type { KernelSetName, WeightFormat } from './kernel-sets/setting.js';
import type { ArenaMatrix } from './kernel-sets/wasm/arena-matrix.js';
import { type BlocksLinear, isQuantBlocks, type QuantBlocks } from './kernel-sets/wasm/quant-matrix.js';
import { createKvCache, type KvCache, type KvCacheKind } from './kv-cache/index.js';
import { isSplitTokens, joinSplitTokens } from './split-tokens.js';
import { type DenseLayer, disposeLinear, type Linear } from './transformer/linear.js';
import type { Activation } from './transformer/mlp.js';
import { disposeNorm, foldNormIntoLinear, type NormKind, type NormWeights } from './transformer/norm.js';
import type { RotaryConfig } from './transformer/rotary.js';
import {
  checkCapacity,
  checkLogitsSelection,
  checkNotDisposed,
  checkPositiveInteger,
  checkRollback,
  flattenTokens,
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

export { type BlocksLinear, isQuantBlocks, type QuantBlocks } from './kernel-sets/wasm/quant-matrix.js';

/** A decoder layer of createCausalLm: the plain layer plus, for gated MLPs, the gate. */
export interface CausalLmLayerWeights extends TransformerLayerWeights {
  /** Gated MLPs only. */
  gate?: Linear;
}

/**
 * A product of a causal LM's layer: float [in, out], or its weight already quantized
 * (BlocksLinear: a GGUF file's Q8_0/Q4_0 blocks as stored), which only a kernel set
 * keeping that format takes (KernelSet.blocks: the wasm set with q8 or q4 weights).
 */
export type LayerLinear = Linear | BlocksLinear;

/** CausalLmLayerWeights whose products may be given as blocks (what prepareCausalLmLayer takes). */
export interface CausalLmLayerBlocksWeights
  extends Omit<CausalLmLayerWeights, 'q' | 'k' | 'v' | 'o' | 'up' | 'down' | 'gate'> {
  q: LayerLinear;
  k: LayerLinear;
  v: LayerLinear;
  o: LayerLinear;
  up: LayerLinear;
  down: LayerLinear;
  gate?: LayerLinear;
}

export interface CausalLmWeights {
  /**
   * [vocab, hidden]. Under the wasm kernel set (tiedEmbeddingInArena) a tied
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

/**
 * CausalLmWeights (what createCausalLm takes) where products, the embedding (one row per
 * token) and the head (one row per vocabulary entry) may be given as blocks, for a kernel
 * set that takes them (KernelSet.blocks); other sets refuse them.
 */
export interface CausalLmBlocksWeights extends Omit<CausalLmWeights, 'embedTokens' | 'lmHead' | 'layers'> {
  embedTokens: tf.Tensor2D | ArenaMatrix | QuantBlocks;
  layers: (CausalLmLayerBlocksWeights | PreparedCausalLmLayer)[];
  lmHead?: tf.Tensor2D | QuantBlocks;
}

/** A layer as the forward pass uses it (prepareCausalLmLayer). */
export interface PreparedCausalLmLayer {
  /** The kernel set whose layouts the products are in, and their weight format. */
  readonly kernels: KernelSetName;
  readonly weights: WeightFormat;
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
    ids: tf.Tensor2D | SplitTokens,
    options?: ExtendOptions,
  ): ExtendResult<CausalLmState>;
}

/** Options of createCausalLm. */
export interface CausalLmOptions {
  /** The kernel set (see kernelSet); default: SPECSTREAM_KERNELS, else the fastest here. */
  kernels?: KernelSetName;
  /** How its linear kernels keep the weights (default f32; q8 and q4 on the wasm set). */
  weights?: WeightFormat;
  /**
   * Disposed states whose KV caches the model keeps for the next createState of the same batch
   * and capacity (default 0: disposeState frees them). With it, capacities are rounded up to a
   * multiple of STATE_CAPACITY_STEP, so calls of different lengths share caches. On webgpu a
   * cache carries its recorded passes: a generation on a kept cache replays them from its
   * first step instead of running each new pass shape through tfjs's runner once (about 2.4 ms
   * more than a replay for the shipped target on an H100, and a speculative generation meets
   * 5–10 shapes). The kept caches are the model's memory until dispose().
   */
  reuseStates?: number;
}

/** Capacities of reusable states are rounded up to a multiple of this (see CausalLmOptions.reuseStates). */
export const STATE_CAPACITY_STEP = 256;

/**
 * Whether a tied embedding of this model lives in core's weight arena under
 * the kernel set it will be built with (so loaders put it there straight from
 * the checkpoint).
 */
export function tiedEmbeddingInArena(config: CausalLmConfig, options: CausalLmOptions = {}): boolean {
  return kernelSet(options.kernels, options.weights).tiedEmbeddingInArena(config);
}

/**
 * Builds a Decoder from weights. Takes ownership of `weights`: the tensors
 * are fused (and the originals disposed) here, and freed by `dispose()`.
 */
export function createCausalLm(
  config: CausalLmConfig,
  weights: CausalLmWeights | CausalLmBlocksWeights,
  options: CausalLmOptions = {},
): CausalLm {
  checkConfig(config, weights);
  const reuse = options.reuseStates ?? 0;
  if (!Number.isInteger(reuse) || reuse < 0) {
    throw new InvalidArgumentError(`reuseStates must be an integer ≥ 0, got ${reuse}`);
  }
  const set = kernelSet(options.kernels, options.weights);
  const { embedTokens, embedPositions, finalNorm, lmHead } = weights;
  const outputBlocks = isQuantBlocks(embedTokens) || isQuantBlocks(lmHead);
  // Before any layer is prepared: a set that takes no blocks refuses them here.
  const blocks = outputBlocks ? blocksInput(set) : undefined;
  for (const layer of weights.layers) {
    if (isPrepared(layer) && (layer.kernels !== set.name || layer.weights !== set.weights)) {
      throw new InvalidArgumentError(
        `a layer was prepared for the ${layer.kernels} kernel set with ${layer.weights} weights, the model is built with ${set.name} and ${set.weights}`,
      );
    }
  }
  const { vocabSize, kvHeads, headDim } = config;
  const layers = weights.layers.map((layer) =>
    isPrepared(layer)
      ? layer
      : prepareCausalLmLayer(config, layer, { kernels: set.name, weights: set.weights }),
  );
  const output = { embedTokens, embedPositions, finalNorm, lmHead };
  const k = blocks ? blocks.forModel(config, output) : set.forModel(config, output as OutputWeights);
  const maxPositions =
    config.positions.kind === 'learned' ? config.positions.maxPositions : Number.POSITIVE_INFINITY;
  const norm = { kind: config.norm, eps: config.normEps };
  let disposed = false;
  // Caches of disposed states kept for reuse, oldest first.
  const kept: { batch: number; cache: KvCache }[] = [];
  const freeCache = (cache: KvCache) => {
    k.releaseCache?.(cache);
    cache.dispose();
  };

  function createState({ batch, maxLength }: CreateStateOptions): CausalLmState {
    if (disposed) throw new InvalidArgumentError('the model was disposed');
    checkPositiveInteger('batch', batch);
    checkPositiveInteger('maxLength', maxLength);
    if (maxLength > maxPositions) {
      throw new InvalidArgumentError(`maxLength ${maxLength} exceeds the model's ${maxPositions} positions`);
    }
    const capacity =
      reuse > 0
        ? Math.min(Math.ceil(maxLength / STATE_CAPACITY_STEP) * STATE_CAPACITY_STEP, maxPositions)
        : maxLength;
    const at = kept.findIndex((c) => c.batch === batch && c.cache.capacity === capacity);
    // A kept cache holds an earlier state's keys and values: every read stops at the row's length.
    const cache =
      at >= 0
        ? kept.splice(at, 1)[0].cache
        : createKvCache({ batch, layers: layers.length, kvHeads, headDim, capacity }, config.kvCache);
    const state: MutableState = { batch, maxLength, lengths: new Int32Array(batch), disposed: false, cache };
    return state;
  }

  /** The model: what it computes, step by step, in the kernel set's kernels. */
  function forward(
    { batch, cache, lengths }: MutableState,
    ids: Int32Array | tf.Tensor2D | SplitTokens,
    steps: number,
    options?: ExtendOptions,
  ): tf.Tensor3D {
    const positions = new Int32Array(batch * steps);
    for (let r = 0; r < batch; r++) for (let s = 0; s < steps; s++) positions[r * steps + s] = lengths[r] + s;
    k.beginPass({ batch, steps, lengths, positions, cache });
    const selection = options?.logits ?? 'all';
    const layersForward = () =>
      tf.tidy(() => {
        // Split ids are one tensor for the steps (runPass may instead write them where it reads them).
        let x = k.embed(isSplitTokens(ids) ? joinSplitTokens(ids) : ids);
        for (const [index, layer] of layers.entries()) {
          // One scope per layer: a long window's attention scores are freed before the next layer.
          const next = tf.tidy(() => {
            const qkv = k.linear(x, layer.qkv, { norm });
            const h = k.heads(qkv);
            k.writeCache(index, h);
            const mixed = k.attend(index, h);
            const attended = k.linear(mixed, layer.o, { residual: x });
            const hidden = k.linear(attended, layer.mlp.up, {
              norm,
              activation: config.activation,
              gated: config.gatedMlp,
            });
            return k.linear(hidden, layer.mlp.down, { residual: attended });
          });
          x.dispose();
          x = next;
        }
        if (selection === 'none') return tf.zeros([batch, 0, vocabSize]) as tf.Tensor3D;
        return tf.reshape(k.logits(x, selection), [batch, -1, vocabSize]) as tf.Tensor3D;
      });
    try {
      // The set may replay a recording of this pass's programs instead (webgpu: one submission).
      return k.runPass ? k.runPass(ids, selection, layersForward) : layersForward();
    } finally {
      k.endPass();
    }
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
    ids: Int32Array | tf.Tensor2D | SplitTokens,
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
    ids: tf.Tensor2D | SplitTokens,
    options?: ExtendOptions,
  ): ExtendResult<CausalLmState> {
    const s = state as MutableState;
    checkNotDisposed(s);
    if (isSplitTokens(ids)) {
      checkSplitTokens(ids, s.batch, vocabSize);
      return checkedPass(s, ids, 1 + ids.rest.shape[1], options);
    }
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
    s.disposed = true;
    if (reuse === 0 || disposed) {
      freeCache(s.cache);
      return;
    }
    kept.push({ batch: s.batch, cache: s.cache });
    if (kept.length > reuse) freeCache(kept.shift()!.cache);
  }

  return {
    config,
    vocabSize,
    maxPositions,
    prefillBuckets: set.prefillBuckets(),
    createState,
    extendStep,
    extendStepOnDevice,
    rollback,
    disposeState,
    dispose() {
      if (disposed) return;
      disposed = true;
      for (const { cache } of kept.splice(0)) freeCache(cache);
      for (const layer of layers) disposePreparedCausalLmLayer(layer);
      k.dispose();
    },
  };
}

/**
 * One layer as the forward pass uses it: q/k/v fused into one product (the
 * score scale folded into q), gate/up into another, each norm's affine part
 * folded into the product after it, and every product in the kernel set's
 * layout (on wasm: packed into the weight arena). Takes ownership of `layer`'s tensors. Loaders call it as
 * each layer is read, so a checkpoint never sits whole in tfjs's heap next
 * to its packed copy (createCausalLm accepts layers prepared or not).
 */
export function prepareCausalLmLayer(
  config: CausalLmConfig,
  layer: CausalLmLayerWeights | CausalLmLayerBlocksWeights,
  options: CausalLmOptions = {},
): PreparedCausalLmLayer {
  const set = kernelSet(options.kernels, options.weights);
  if (config.gatedMlp && !layer.gate) {
    throw new InvalidArgumentError('a gated MLP needs a gate projection in every layer');
  }
  const attnScale = config.attentionScale ?? 1 / Math.sqrt(config.headDim);
  const qkvParts: ProductPart[] = [
    { layer: layer.q, scale: attnScale },
    { layer: layer.k },
    { layer: layer.v },
  ];
  const upParts: ProductPart[] = config.gatedMlp
    ? [{ layer: layer.gate! }, { layer: layer.up }]
    : [{ layer: layer.up }];
  // Each norm's weight (and bias) moves into the matmul after it: two ops less per norm and step.
  // Then each product goes into the kernel set's layout (packed panels, rows, or as it is).
  // Products given as blocks (a GGUF file's, as stored) cannot take these folds without being
  // quantized again: the set fuses those itself, applying norm and scale around the product.
  const product = (parts: ProductPart[], norm?: NormWeights): DenseLayer => {
    if (parts.some((p) => isQuantBlocks(p.layer.weight))) return blocksInput(set).product(parts, norm);
    const fused = fuseFloatParts(parts);
    return set.prepareLinear(norm ? foldNormIntoLinear(norm, fused) : fused);
  };
  const done: DenseLayer[] = [];
  try {
    for (const [parts, norm] of [
      [qkvParts, layer.attnNorm],
      [[{ layer: layer.o }]],
      [upParts, layer.mlpNorm],
      [[{ layer: layer.down }]],
    ] as [ProductPart[], NormWeights?][]) {
      done.push(product(parts, norm));
    }
  } catch (error) {
    for (const l of done) disposeLinear(l);
    for (const l of [...qkvParts, ...upParts, { layer: layer.o }, { layer: layer.down }]) {
      if (!isQuantBlocks(l.layer.weight)) disposeLinear(l.layer as Linear);
      else l.layer.bias?.dispose();
    }
    disposeNorm(layer.attnNorm);
    disposeNorm(layer.mlpNorm);
    throw error;
  }
  const [qkv, o, up, down] = done;
  return { kernels: set.name, weights: set.weights, qkv, o, mlp: { up, down } };
}

/** Float parts side by side as one Linear (each scaled first; a missing bias is zeros); frees the parts. */
function fuseFloatParts(parts: ProductPart[]): Linear {
  const layers = parts.map((p) => p.layer as Linear);
  if (parts.length === 1 && parts[0].scale === undefined) return layers[0];
  const fused = tf.tidy(() => {
    // A score scale is folded into q's weights: one op less per layer and step.
    const weight = tf.concat(
      parts.map((p, i) => (p.scale === undefined ? layers[i].weight : tf.mul(layers[i].weight, p.scale))),
      1,
    ) as tf.Tensor2D;
    const hasBias = layers.some((l) => l.bias);
    const bias = hasBias
      ? (tf.concat(
          parts.map((p, i) => {
            const b = layers[i].bias;
            if (!b) return tf.zeros([layers[i].weight.shape[1]]);
            return p.scale === undefined ? b : tf.mul(b, p.scale);
          }),
          0,
        ) as tf.Tensor1D)
      : undefined;
    return bias ? { weight, bias } : { weight };
  });
  for (const l of layers) disposeLinear(l);
  return fused;
}

/** The set's way in for blocks, or an error naming the sets that take them. */
function blocksInput(set: KernelSet): BlocksInput {
  if (set.blocks) return set.blocks;
  throw new InvalidArgumentError(
    `weights given already quantized (blocks, e.g. a GGUF file's Q8_0 or Q4_0) need the wasm kernel set with q8 or q4 weights (the model is built with the ${set.name} set and ${set.weights} weights); dequantize them for this one`,
  );
}

/** Frees a prepared layer (what createCausalLm's dispose does for its own). */
export function disposePreparedCausalLmLayer(layer: PreparedCausalLmLayer): void {
  for (const l of [layer.qkv, layer.o, layer.mlp.up, layer.mlp.down]) disposeLinear(l);
}

const isPrepared = (
  layer: CausalLmLayerBlocksWeights | PreparedCausalLmLayer,
): layer is PreparedCausalLmLayer => 'qkv' in layer;

function checkConfig(config: CausalLmConfig, weights: CausalLmBlocksWeights): void {
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

/** The host column is checked like extendStep's ids; the device part by shape and dtype only. */
function checkSplitTokens({ first, rest }: SplitTokens, batch: number, vocabSize: number): void {
  if (!(rest instanceof tf.Tensor) || rest.rank !== 2 || rest.dtype !== 'int32' || rest.shape[0] !== batch) {
    const got = rest instanceof tf.Tensor ? `${rest.dtype} [${rest.shape}]` : typeof rest;
    throw new InvalidArgumentError(
      `split ids: rest must be an int32 tensor [${batch}, steps − 1], got ${got}`,
    );
  }
  checkPositiveInteger('split ids: rest steps', rest.shape[1]);
  if (first?.length !== batch) {
    throw new InvalidArgumentError(
      `split ids: first must hold one id per row (${batch}), got ${first?.length}`,
    );
  }
  for (let r = 0; r < batch; r++) {
    const id = first[r];
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new InvalidArgumentError(
        `split ids: first id ${id} of row ${r} is outside the vocabulary [0, ${vocabSize})`,
      );
    }
  }
}
