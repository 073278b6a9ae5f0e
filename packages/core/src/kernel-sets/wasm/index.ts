import * as tf from '@tensorflow/tfjs-core';
import { InvalidArgumentError } from '../../errors.js';
import {
  type ArenaMatrix,
  arenaGather,
  arenaMatrix,
  disposeArenaMatrix,
  isArenaMatrix,
} from '../../kernels/arena-matrix.js';
import { causalAttention, causalAttentionSupported } from '../../kernels/causal-attention.js';
import {
  type PackedLinear,
  packedLinearSupported,
  packLinear,
  type TransposedLinear,
  transposedLinearSupported,
} from '../../kernels/packed-linear.js';
import { standardizeRows } from '../../kernels/standardize.js';
import { disposeLinear, linear } from '../../transformer/linear.js';
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

/**
 * Core's WebAssembly SIMD kernels (scripts/wasm-kernels.ts) on the wasm
 * backend: every product packed into 8-column panels in the weight arena
 * and split over the kernel threads (PackedLinear), a tied embedding kept
 * once in the arena where it is both the lookup table and the head
 * (TransposedLinear rows), norms standardized in one kernel, attention one
 * kernel reading the KV cache in place.
 */
export const wasmKernels: KernelSet = {
  name: 'wasm',
  unavailable: () =>
    packedLinearSupported()
      ? undefined
      : `core's wasm kernels need the wasm backend (current: ${tf.getBackend() ?? 'none'})`,
  prepareLinear: (layer) => packLinear(layer),
  tiedEmbeddingInArena: (config) => transposedLinearSupported(config.hiddenSize),
  forModel(config, output) {
    const { embedPositions, finalNorm, lmHead } = output;
    const inArena = !lmHead && wasmKernels.tiedEmbeddingInArena(config);
    if (isArenaMatrix(output.embedTokens) && !inArena) {
      throw new InvalidArgumentError(
        'embedTokens is an ArenaMatrix, which only a tied head of a hidden size divisible by 4 uses',
      );
    }
    // A tied head multiplies by the embedding's rows where they are (XNNPACK kept a packed copy).
    const embedTokens: tf.Tensor2D | ArenaMatrix =
      inArena && !isArenaMatrix(output.embedTokens) ? arenaMatrix(output.embedTokens) : output.embedTokens;
    const head: PackedLinear | TransposedLinear | undefined = lmHead
      ? packLinear({ weight: lmHead })
      : isArenaMatrix(embedTokens)
        ? { weightT: embedTokens }
        : undefined;
    const tables = modelTables(config);
    const constant = tables.constants.of;
    const { pass, splitHeads, writeSplit, attendByMask, ...own } = passSteps(config, tables);
    const standardize = (kind: 'rms' | 'layer', x: tf.Tensor, eps: number) =>
      standardizeRows(x, eps, kind === 'layer');
    const fusedAttention = causalAttentionSupported(config.headDim);
    return {
      name: 'wasm',
      ...own,
      embed(ids) {
        if (!isArenaMatrix(embedTokens)) return gatherEmbedding(embedTokens, embedPositions, ids, pass());
        const x = arenaGather(embedTokens, ids);
        return embedPositions ? tf.add(x, tf.gather(embedPositions, pass().positions)) : x;
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
          : (tf.matMul(normed, embedTokens as tf.Tensor2D, false, true) as tf.Tensor2D);
      },
      dispose() {
        if (lmHead) disposeLinear(head);
        if (isArenaMatrix(embedTokens)) disposeArenaMatrix(embedTokens);
        else embedTokens.dispose();
        embedPositions?.dispose();
        disposeNorm(finalNorm);
        tables.dispose();
      },
    };
  },
};
