import * as tf from '@tensorflow/tfjs-core';
import { InvalidArgumentError } from '../../errors.js';
import { causalAttention, causalAttentionSupported } from '../../kernels/causal-attention.js';
import { standardizeRows } from '../../kernels/standardize.js';
import { type DenseLayer, disposeLinear, type Linear, linear } from '../../transformer/linear.js';
import { disposeNorm } from '../../transformer/norm.js';
import { selectLogitRows } from '../../validate.js';
import type { KernelSet } from '../kernel-set.js';
import {
  composedLinear,
  gatherEmbedding,
  modelTables,
  passSteps,
  type SplitHeads,
} from '../reference/index.js';
import {
  type ArenaMatrix,
  arenaGather,
  arenaMatrix,
  disposeArenaMatrix,
  isArenaMatrix,
} from './arena-matrix.js';
import { packedLinearSupported, packLinear, transposedLinearSupported } from './packed-linear.js';
import {
  dequantizeColumns,
  QUANT_BLOCK,
  type QuantFormat,
  type QuantMatrix,
  quantizeMatrix,
} from './quant-matrix.js';

/**
 * Core's WebAssembly SIMD kernels (scripts/wasm-kernels.ts) on the wasm
 * backend: every product packed into 8-column panels in the weight arena
 * and split over the kernel threads (PackedLinear), a tied embedding kept
 * once in the arena where it is both the lookup table and the head
 * (TransposedLinear rows), norms standardized in one kernel, attention one
 * kernel reading the KV cache in place.
 *
 * With q8 or q4 weights (quant-matrix.ts) every product whose input width is
 * a multiple of 32 is quantized instead (others stay packed f32), and so is
 * the head: a tied head is quantized from the embedding, whose lookups then
 * dequantize the few rows they need from it (no float copy of the table).
 */
export function wasmKernelSet(weights: 'f32' | QuantFormat): KernelSet {
  const known = made.get(weights);
  if (known) return known;
  const quantized = weights !== 'f32';
  /** A product in this set's format: quantized where its input width allows. */
  const dense = (layer: Linear): DenseLayer => {
    if (!quantized || layer.weight.shape[0] % QUANT_BLOCK !== 0) return packLinear(layer);
    try {
      return quantizeMatrix(weights, layer.weight, { bias: layer.bias });
    } finally {
      layer.weight.dispose();
      layer.bias?.dispose();
    }
  };
  const set: KernelSet = {
    name: 'wasm',
    weights,
    unavailable: () =>
      packedLinearSupported()
        ? undefined
        : `core's wasm kernels need the wasm backend (current: ${tf.getBackend() ?? 'none'})`,
    // Core's SIMD kernels take any row count: a prompt runs in as few passes as it can.
    prefillBuckets: () => 'any',
    prepareLinear: dense,
    // Quantized, the head is made from the embedding's values; f32, the embedding is the head.
    tiedEmbeddingInArena: (config) => !quantized && transposedLinearSupported(config.hiddenSize),
    forModel(config, output) {
      const { embedPositions, finalNorm, lmHead } = output;
      const inArena = !lmHead && set.tiedEmbeddingInArena(config);
      if (isArenaMatrix(output.embedTokens) && !inArena) {
        throw new InvalidArgumentError(
          `embedTokens is an ArenaMatrix, which only a tied f32 head of a hidden size divisible by 4 uses (this model: ${lmHead ? 'untied' : 'tied'}, ${weights} weights, hidden size ${config.hiddenSize})`,
        );
      }
      const quantizedHead =
        quantized && config.hiddenSize % QUANT_BLOCK === 0 && !isArenaMatrix(output.embedTokens);
      let embedTokens: tf.Tensor2D | ArenaMatrix | undefined = output.embedTokens;
      let head: DenseLayer | undefined;
      if (lmHead) head = dense({ weight: lmHead });
      else if (quantizedHead) {
        // [vocab, hidden] is the head transposed: quantized once, it is the lookup table too.
        head = quantizeMatrix(weights, output.embedTokens as tf.Tensor2D, { transposed: true });
        (output.embedTokens as tf.Tensor2D).dispose();
        embedTokens = undefined;
      } else if (inArena) {
        // A tied head multiplies by the embedding's rows where they are (XNNPACK kept a packed copy).
        if (!isArenaMatrix(embedTokens)) embedTokens = arenaMatrix(embedTokens as tf.Tensor2D);
        head = { weightT: embedTokens };
      }
      const table = embedTokens;
      const tiedQuantHead = table === undefined ? (head as QuantMatrix) : undefined;
      const tables = modelTables(config);
      const constant = tables.constants.of;
      const { pass, splitHeads, writeSplit, attendByMask, ...own } = passSteps(config, tables);
      const standardize = (kind: 'rms' | 'layer', x: tf.Tensor, eps: number) =>
        standardizeRows(x, eps, kind === 'layer');
      const fusedAttention = causalAttentionSupported(config.headDim);
      const withPositions = (x: tf.Tensor2D) =>
        embedPositions ? (tf.add(x, tf.gather(embedPositions, pass().positions)) as tf.Tensor2D) : x;
      return {
        name: 'wasm',
        ...own,
        embed(ids) {
          if (tiedQuantHead) {
            const flat = ids instanceof tf.Tensor ? (ids.dataSync() as Int32Array) : ids;
            const rows = dequantizeColumns(tiedQuantHead, flat);
            return withPositions(tf.tensor2d(rows, [flat.length, config.hiddenSize]));
          }
          if (!isArenaMatrix(table)) return gatherEmbedding(table!, embedPositions, ids, pass());
          return withPositions(arenaGather(table, ids));
        },
        linear: (x, layer, options) => composedLinear(x, layer, options, constant, standardize),
        heads: splitHeads,
        writeCache: writeSplit,
        attend(layer, heads: SplitHeads) {
          if (!fusedAttention) return attendByMask(layer, heads);
          const { steps, lengths, cache } = pass();
          // The kernel reads the slots it needs in place where the cache keeps one buffer.
          const { keys, values } = cache.whole?.(layer) ?? cache.read(layer, Math.max(...lengths) + steps);
          return causalAttention(heads.q, keys, values, lengths);
        },
        logits(x, selection) {
          const { batch, steps } = pass();
          const rows = selectLogitRows(x, batch, steps, selection);
          const scaled = tf.mul(standardize(config.norm, rows, config.normEps), finalNorm.weight);
          const normed = (finalNorm.bias ? tf.add(scaled, finalNorm.bias) : scaled) as tf.Tensor2D;
          return head
            ? linear(normed, head)
            : (tf.matMul(normed, table as tf.Tensor2D, false, true) as tf.Tensor2D);
        },
        dispose() {
          // A TransposedLinear borrows the embedding; every other head is the set's own.
          if (head && !('weightT' in head)) disposeLinear(head);
          if (isArenaMatrix(table)) disposeArenaMatrix(table);
          else table?.dispose();
          embedPositions?.dispose();
          disposeNorm(finalNorm);
          tables.dispose();
        },
      };
    },
  };
  made.set(weights, set);
  return set;
}

const made = new Map<string, KernelSet>();

/** The wasm set with f32 weights. */
export const wasmKernels: KernelSet = wasmKernelSet('f32');
