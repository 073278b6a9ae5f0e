import * as tf from '@tensorflow/tfjs-core';
import type { CausalLmConfig } from '../../causal-lm.js';
import { InvalidArgumentError } from '../../errors.js';
import { causalAttention, causalAttentionSupported } from '../../kernels/causal-attention.js';
import { standardizeRows } from '../../kernels/standardize.js';
import { type DenseLayer, disposeLinear, type Linear, linear } from '../../transformer/linear.js';
import { disposeNorm, type NormWeights } from '../../transformer/norm.js';
import { selectLogitRows } from '../../validate.js';
import type { BlocksOutputWeights, KernelSet, LinearStep, ModelKernels, ProductPart } from '../kernel-set.js';
import {
  composedActivation,
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
import { quantLinear } from './quant-linear.js';
import {
  type BlocksLinear,
  checkQuantBlocks,
  dequantizeColumns,
  disposeQuantMatrix,
  isQuantBlocks,
  QUANT_BLOCK,
  type QuantAround,
  type QuantBlocks,
  type QuantFormat,
  type QuantMatrix,
  quantBlocksFromValues,
  quantizeMatrix,
  quantMatrixFromBlocks,
  scaleQuantBlocks,
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
 *
 * Those two sets also take weights already quantized in their format
 * (`blocks`: a GGUF file's Q8_0 or Q4_0 blocks), moved into the arena as
 * they are. What the float path folds into a product's weights before
 * quantizing (the norm before it, q's attention scale) is applied around
 * such a product instead (QuantMatrix.around), except a scale that every
 * block's f16 scale takes exactly (a power of two), which goes into them.
 */
export function wasmKernelSet(weights: 'f32' | QuantFormat): KernelSet {
  const known = made.get(weights);
  if (known) return known;
  const quantized = weights !== 'f32';
  /** A product in this set's format: quantized where its input width allows. */
  const dense = (layer: Linear | BlocksLinear): DenseLayer => {
    if (isQuantBlocks(layer.weight)) {
      if (weights === 'f32') {
        throw new InvalidArgumentError(
          'weights given already quantized (blocks) need the wasm kernel set with q8 or q4 weights, not f32',
        );
      }
      return productFromBlocks(weights, [{ layer }], undefined);
    }
    if (!quantized || layer.weight.shape[0] % QUANT_BLOCK !== 0) return packLinear(layer as Linear);
    try {
      return quantizeMatrix(weights, layer.weight as tf.Tensor2D, { bias: layer.bias });
    } finally {
      layer.weight.dispose();
      layer.bias?.dispose();
    }
  };
  // Its forModel takes blocks too (KernelSet.blocks.forModel is the same function).
  const set: KernelSet & { forModel(config: CausalLmConfig, output: BlocksOutputWeights): ModelKernels } = {
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
    forModel(config: CausalLmConfig, output: BlocksOutputWeights): ModelKernels {
      const { embedPositions, finalNorm, lmHead } = output;
      const inArena = !lmHead && set.tiedEmbeddingInArena(config);
      if (isArenaMatrix(output.embedTokens) && !inArena) {
        throw new InvalidArgumentError(
          `embedTokens is an ArenaMatrix, which only a tied f32 head of a hidden size divisible by 4 uses (this model: ${lmHead ? 'untied' : 'tied'}, ${weights} weights, hidden size ${config.hiddenSize})`,
        );
      }
      const { hiddenSize, vocabSize } = config;
      const quantizedHead = quantized && hiddenSize % QUANT_BLOCK === 0 && !isArenaMatrix(output.embedTokens);
      let embedTokens: tf.Tensor2D | ArenaMatrix | undefined;
      /** A quantized embedding, [vocab, hidden] as the head transposed: lookups dequantize their rows. */
      let lookup: QuantMatrix | undefined;
      let head: DenseLayer | undefined;
      try {
        if (isQuantBlocks(output.embedTokens)) {
          lookup = matrixFromBlocks(weights, output.embedTokens, hiddenSize, vocabSize, 'the embedding');
        } else embedTokens = output.embedTokens;
        if (isQuantBlocks(lmHead))
          head = matrixFromBlocks(weights, lmHead, hiddenSize, vocabSize, 'the head');
        else if (lmHead) head = dense({ weight: lmHead });
        else if (lookup) head = lookup;
        else if (quantizedHead) {
          // [vocab, hidden] is the head transposed: quantized once, it is the lookup table too.
          lookup = quantizeMatrix(weights, embedTokens as tf.Tensor2D, { transposed: true });
          head = lookup;
          (embedTokens as tf.Tensor2D).dispose();
          embedTokens = undefined;
        } else if (inArena) {
          // A tied head multiplies by the embedding's rows where they are (XNNPACK kept a packed copy).
          if (!isArenaMatrix(embedTokens)) embedTokens = arenaMatrix(embedTokens as tf.Tensor2D);
          head = { weightT: embedTokens };
        }
      } catch (error) {
        if (lookup) disposeQuantMatrix(lookup);
        throw error;
      }
      const table = embedTokens;
      const tables = modelTables(config);
      const constant = tables.constants.of;
      const { pass, splitHeads, writeSplit, attendByMask, ...own } = passSteps(config, tables);
      const standardize = (kind: 'rms' | 'layer', x: tf.Tensor, eps: number) =>
        standardizeRows(x, eps, kind === 'layer');
      const fusedAttention = causalAttentionSupported(config.headDim);
      /** A product from blocks, the float path's folds applied around it (QuantMatrix.around). */
      const aroundLinear = (
        x: tf.Tensor2D,
        layer: QuantMatrix,
        around: QuantAround,
        options: LinearStep = {},
      ): tf.Tensor2D => {
        const { norm, activation, gated = false, residual } = options;
        let input = norm ? (standardize(norm.kind, x, norm.eps) as tf.Tensor2D) : x;
        if (around.inputScale) input = tf.mul(input, around.inputScale);
        if (around.inputShift) input = tf.add(input, around.inputShift);
        let y = quantLinear(input, layer);
        if (around.outputScale) y = tf.mul(y, around.outputScale);
        if (activation !== undefined) y = composedActivation(activation, y, gated, constant);
        else if (gated) throw new Error('a gated layer needs an activation');
        return residual ? (tf.add(residual, y) as tf.Tensor2D) : y;
      };
      const withPositions = (x: tf.Tensor2D) =>
        embedPositions ? (tf.add(x, tf.gather(embedPositions, pass().positions)) as tf.Tensor2D) : x;
      return {
        name: 'wasm',
        ...own,
        embed(ids) {
          if (lookup) {
            const flat = ids instanceof tf.Tensor ? (ids.dataSync() as Int32Array) : ids;
            const rows = dequantizeColumns(lookup, flat);
            return withPositions(tf.tensor2d(rows, [flat.length, config.hiddenSize]));
          }
          if (!isArenaMatrix(table)) return gatherEmbedding(table!, embedPositions, ids, pass());
          return withPositions(arenaGather(table, ids));
        },
        linear(x, layer, options) {
          const around = 'quads' in layer ? layer.around : undefined;
          if (around) return aroundLinear(x, layer as QuantMatrix, around, options);
          return composedLinear(x, layer, options, constant, standardize);
        },
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
          if (lookup && lookup !== head) disposeQuantMatrix(lookup);
          if (isArenaMatrix(table)) disposeArenaMatrix(table);
          else table?.dispose();
          embedPositions?.dispose();
          disposeNorm(finalNorm);
          tables.dispose();
        },
      };
    },
    // Blocks already in this set's format go into the arena as they are.
    blocks:
      weights === 'f32'
        ? undefined
        : {
            format: weights,
            product: (parts, norm) => productFromBlocks(weights, parts, norm),
            forModel: (config, output) => set.forModel(config, output),
          },
  };
  made.set(weights, set);
  return set;
}

/** Blocks as a matrix [inDim, outDim], checked against the set's format and the shape the model needs. */
function matrixFromBlocks(
  format: QuantFormat | 'f32',
  blocks: QuantBlocks,
  inDim: number,
  outDim: number,
  what: string,
): QuantMatrix {
  checkQuantBlocks(blocks, what);
  if (blocks.format !== format) {
    throw new InvalidArgumentError(
      `${what} is given as ${blocks.format} blocks, the wasm kernel set here keeps ${format} weights: blocks go in only in the set's own format (dequantize them otherwise)`,
    );
  }
  if (blocks.inDim !== inDim || blocks.outDim !== outDim) {
    throw new InvalidArgumentError(
      `${what} is given as blocks of ${blocks.outDim} rows × ${blocks.inDim}; the model needs ${outDim} × ${inDim}`,
    );
  }
  return quantMatrixFromBlocks([blocks]);
}

/**
 * One quantized product of `parts` side by side (KernelSet.blocks.product): blocks as they
 * are, float parts quantized here; a part's scale goes into its block scales where each
 * takes it exactly, else multiplies its output columns; the norm's γ and β act on the input.
 */
function productFromBlocks(
  format: QuantFormat,
  parts: readonly ProductPart[],
  norm: NormWeights | undefined,
): QuantMatrix {
  const owned: tf.Tensor[] = [];
  for (const { layer } of parts) {
    if (!isQuantBlocks(layer.weight)) owned.push(layer.weight);
    if (layer.bias) owned.push(layer.bias);
  }
  let around: QuantAround | undefined;
  try {
    const first = parts[0]?.layer.weight;
    if (first === undefined) throw new InvalidArgumentError('a product of no parts');
    const inDim = isQuantBlocks(first) ? first.inDim : first.shape[0];
    const pieces: QuantBlocks[] = [];
    const columnScales: { from: number; count: number; scale: number }[] = [];
    let outDim = 0;
    let bias: Float32Array | undefined;
    const biases: { from: number; values: Float32Array; scale: number }[] = [];
    for (const [i, { layer, scale = 1 }] of parts.entries()) {
      const w = layer.weight;
      let piece: QuantBlocks;
      if (isQuantBlocks(w)) {
        if (w.format !== format) {
          throw new InvalidArgumentError(
            `part ${i} is given as ${w.format} blocks, the wasm kernel set here keeps ${format} weights: blocks go in only in the set's own format (dequantize them otherwise)`,
          );
        }
        checkQuantBlocks(w, `part ${i}`);
        piece = w;
      } else {
        if (w.rank !== 2) throw new InvalidArgumentError(`part ${i}'s weight has rank ${w.rank}, not 2`);
        piece = quantBlocksFromValues(format, w.dataSync() as Float32Array, w.shape[0], w.shape[1]);
      }
      if (piece.inDim !== inDim) {
        throw new InvalidArgumentError(`part ${i} takes ${piece.inDim} inputs, part 0 ${inDim}`);
      }
      let folded = scale === 1;
      if (!folded) {
        const scaled = scaleQuantBlocks(piece, scale);
        if (scaled) {
          piece = scaled;
          folded = true;
        } else columnScales.push({ from: outDim, count: piece.outDim, scale });
      }
      if (layer.bias) {
        // A folded scale multiplies the bias too, as the float path's does; else it acts after it.
        biases.push({
          from: outDim,
          values: layer.bias.dataSync() as Float32Array,
          scale: folded ? scale : 1,
        });
      }
      pieces.push(piece);
      outDim += piece.outDim;
    }
    if (biases.length > 0) {
      bias = new Float32Array(outDim);
      const s32 = (s: number) => Math.fround(s);
      for (const b of biases) {
        for (let j = 0; j < b.values.length; j++) {
          bias[b.from + j] = b.scale === 1 ? b.values[j] : b.values[j] * s32(b.scale);
        }
      }
    }
    let outputScale: tf.Tensor1D | undefined;
    if (columnScales.length > 0) {
      const values = new Float32Array(outDim).fill(1);
      for (const c of columnScales) values.fill(c.scale, c.from, c.from + c.count);
      outputScale = tf.tensor1d(values);
    }
    if (norm || outputScale) {
      around = { inputScale: norm?.weight, inputShift: norm?.bias, outputScale };
    }
    return quantMatrixFromBlocks(pieces, { bias, around });
  } catch (error) {
    around?.outputScale?.dispose();
    if (norm) disposeNorm(norm);
    throw error;
  } finally {
    for (const t of owned) t.dispose();
  }
}

const made = new Map<string, KernelSet>();

/** The wasm set with f32 weights. */
export const wasmKernels: KernelSet = wasmKernelSet('f32');
