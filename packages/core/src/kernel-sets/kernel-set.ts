import type * as tf from '@tensorflow/tfjs-core';
import type { CausalLmConfig } from '../causal-lm.js';
import type { LogitsSelection, PrefillBuckets, SplitTokens } from '../decoder.js';
import type { KvCache } from '../kv-cache/kv-cache.js';
import type { DenseLayer, Linear } from '../transformer/linear.js';
import type { Activation } from '../transformer/mlp.js';
import type { NormKind, NormWeights } from '../transformer/norm.js';
import type { KernelSetName, WeightFormat } from './setting.js';
import type { ArenaMatrix } from './wasm/arena-matrix.js';
import type { BlocksLinear, QuantBlocks, QuantFormat } from './wasm/quant-matrix.js';

/**
 * How one backend computes the steps of a decoder (causal-lm.ts reads as
 * those steps, top to bottom). A set is chosen once, when a model is built,
 * and owns the layouts its kernels want: `prepareLinear` turns each product
 * given [in, out] into the set's form (packed panels in the wasm arena, rows
 * for the WGSL programs, as given for tfjs, quantized blocks for q8/q4),
 * `forModel` the embedding, head and per-model tables. A weight format is a
 * property of a set's linear kernels: kernelSet(name, weights).
 */
export interface KernelSet {
  readonly name: KernelSetName;
  /** The format its linear kernels keep weights in. */
  readonly weights: WeightFormat;
  /** Why the set cannot run on the current backend, or undefined when it can. */
  unavailable(): string | undefined;
  /**
   * The prompt chunks its kernels take best (Decoder.prefillBuckets): 'any'
   * where they take any row count, buckets where programs are made per shape.
   */
  prefillBuckets(): PrefillBuckets;
  /** A product as this set multiplies it; takes ownership of `layer`. */
  prepareLinear(layer: Linear): DenseLayer;
  /**
   * Whether a tied embedding lives in core's weight arena under this set
   * (loaders then read it there straight from the checkpoint).
   */
  tiedEmbeddingInArena(config: CausalLmConfig): boolean;
  /** The set bound to one model: its embedding and head prepared, its tables made. */
  forModel(config: CausalLmConfig, output: OutputWeights): ModelKernels;
  /**
   * Sets keeping a format that files store as it is (the wasm set's q8 and q4: GGUF's Q8_0
   * and Q4_0) only: weights given already quantized (QuantBlocks), which go into the set's
   * layout without passing through f32. Other sets refuse such weights.
   */
  readonly blocks?: BlocksInput;
}

/** A part of a fused product (q|k|v, gate|up): [in, out], float or blocks; `scale` multiplies its columns. */
export interface ProductPart {
  layer: Linear | BlocksLinear;
  scale?: number;
}

/** How a set takes weights already quantized in its format (KernelSet.blocks). */
export interface BlocksInput {
  /** The one format blocks are taken in; blocks of another are refused (loaders dequantize those). */
  readonly format: QuantFormat;
  /**
   * One product of `parts` side by side, each part's columns times its scale, after
   * `norm`'s affine part: what prepareCausalLmLayer folds into float weights, which blocks
   * cannot take without being quantized again, so the set applies it around the product.
   * Float parts are quantized alongside. Takes ownership of the parts and the norm.
   */
  product(parts: readonly ProductPart[], norm?: NormWeights): DenseLayer;
  /** forModel, with the embedding ([vocab, hidden] rows) or the head given as blocks. */
  forModel(config: CausalLmConfig, output: BlocksOutputWeights): ModelKernels;
}

/** OutputWeights where the embedding (one row per token) and the head may be blocks. */
export interface BlocksOutputWeights extends Omit<OutputWeights, 'embedTokens' | 'lmHead'> {
  embedTokens: tf.Tensor2D | ArenaMatrix | QuantBlocks;
  lmHead?: tf.Tensor2D | QuantBlocks;
}

/** The weights outside the layers, as checkpoints define them. */
export interface OutputWeights {
  /** [vocab, hidden]: a tensor, or already in the weight arena (kernelSet.tiedEmbeddingInArena). */
  embedTokens: tf.Tensor2D | ArenaMatrix;
  /** Learned positions only: [maxPositions, hidden]. */
  embedPositions?: tf.Tensor2D;
  finalNorm: NormWeights;
  /** [hidden, vocab]; omitted when the head is tied to embedTokens. */
  lmHead?: tf.Tensor2D;
}

/** What every step of one pass (one extendStep) shares. */
export interface Pass {
  readonly batch: number;
  readonly steps: number;
  /** Each row's length before the pass, which is its first new position. */
  readonly lengths: Int32Array;
  /** positions[r·steps + s] = lengths[r] + s. */
  readonly positions: Int32Array;
  readonly cache: KvCache;
}

/** Options of a product step: residual + act(standardize(x)·W + b), each part optional. */
export interface LinearStep {
  /** Standardize x's rows first: a norm whose affine part was folded into the layer. */
  norm?: { kind: NormKind; eps: number };
  activation?: Activation;
  /** The layer's output is [gate | up]: the result is act(gate)·up, half as wide. */
  gated?: boolean;
  /** Added last: the residual stream the layer writes into, [rows, out]. */
  residual?: tf.Tensor2D;
}

/**
 * The steps of a decoder on one backend, for one model. Every step runs
 * inside the caller's tf.tidy; `beginPass`'s state is freed by `endPass`.
 * `Heads` is the set's form of a pass's q, k and v heads (split tensors, or
 * the packed product the kernels read in place).
 */
export interface ModelKernels<Heads = unknown> {
  readonly name: KernelSetName;
  /** Per-pass state (rotary tables, masks) for `pass`. */
  beginPass(pass: Pass): void;
  endPass(): void;
  /** Token embeddings (+ learned positions) of the pass's ids: [batch·steps, hidden]. */
  embed(ids: Int32Array | tf.Tensor2D): tf.Tensor2D;
  linear(x: tf.Tensor2D, layer: DenseLayer, options?: LinearStep): tf.Tensor2D;
  /** The q|k|v product [batch·steps, (heads + 2·kvHeads)·headDim] as heads, rotary applied. */
  heads(qkv: tf.Tensor2D): Heads;
  /** Stores the pass's keys and values in layer `layer`'s cache. */
  writeCache(layer: number, heads: Heads): void;
  /** Each query over its row's cached prefix: [batch·steps, heads·headDim]. */
  attend(layer: number, heads: Heads): tf.Tensor2D;
  /** Final norm and head of the selected rows: [rows, vocab]. */
  logits(x: tf.Tensor2D, selection: Exclude<LogitsSelection, 'none'>): tf.Tensor2D;
  /**
   * Runs the pass begun by beginPass: `forward` is the model's steps above,
   * in order, returning its logits. A set may run it as it is, or record its
   * programs once and replay them on later passes of the same shape (the
   * webgpu set: pass-tape.ts); without runPass it is run as it is.
   */
  runPass?(
    ids: Int32Array | tf.Tensor2D | SplitTokens,
    selection: LogitsSelection,
    forward: () => tf.Tensor3D,
  ): tf.Tensor3D;
  /** Frees what the set keeps for a state's cache (recorded passes); called when the state is disposed. */
  releaseCache?(cache: KvCache): void;
  /** Frees the embedding, head and tables (not the layers). */
  dispose(): void;
}
