import * as tf from '@tensorflow/tfjs-core';
import { InvalidArgumentError } from '../../errors.js';
import { causalAttention } from '../../kernels/causal-attention.js';
import { DEFAULT_PREFILL_BUCKETS } from '../../prefill.js';
import { disposeLinear } from '../../transformer/linear.js';
import { foldNormIntoRows } from '../../transformer/norm.js';
import { rotaryCosSin } from '../../transformer/rotary.js';
import { selectLogitRows } from '../../validate.js';
import type { KernelSet } from '../kernel-set.js';
import { modelTables, passSteps, type SplitHeads } from '../reference/index.js';
import { isArenaMatrix } from '../wasm/arena-matrix.js';
import { embedRows } from './embed.js';
import { rotatePacked } from './rotary-packed.js';
import { packF16Rows, quantizeRowsQ8, type RowLinear, rowLinear } from './row-linear.js';
import { webGpuPrograms } from './webgpu-program.js';

/** The q|k|v product as the programs read it: [batch, steps, heads + 2·kvHeads, headDim], q and k rotated in `qk`. */
interface PackedHeads {
  readonly qk: tf.Tensor4D;
  readonly qkv: tf.Tensor4D;
}

/**
 * Core's WGSL programs through tfjs-backend-webgpu's program runner: each
 * product one program with the norm before it, bias, activation and
 * residual fused in (weights stored [out, in], RowLinear), the embedding
 * one program with the step's ids in its uniforms, rotary one program over
 * the packed q|k|v product, the cache written and attention read straight
 * from that product, the final norm folded into the head.
 */
export function webgpuKernelSet(weights: 'f32' | 'f16' | 'q8'): KernelSet {
  const known = made.get(weights);
  if (known) return known;
  /**
   * Rows [out, in] as this set's products read them: f32; f16 packed two per i32 where the
   * input width is a multiple of 4; q8 as int8 quads with a scale per 32 inputs where it is a
   * multiple of 32 (else f32). Takes ownership of `rows`.
   */
  const packRows = (rows: tf.Tensor2D, bias?: tf.Tensor1D): RowLinear => {
    const inner = rows.shape[1];
    let packed: RowLinear = { weightRows: rows };
    if (weights === 'f16' && inner % 4 === 0) packed = { weightRows: packF16Rows(rows) };
    if (weights === 'q8' && inner % 32 === 0) packed = quantizeRowsQ8(rows);
    if (packed.weightRows !== rows) rows.dispose();
    return bias ? { ...packed, bias } : packed;
  };
  const set: KernelSet = {
    name: 'webgpu',
    weights,
    unavailable: () =>
      webGpuPrograms()
        ? undefined
        : `core's WGSL programs need the webgpu backend (current: ${tf.getBackend() ?? 'none'}) and SPECSTREAM_KERNELS auto or webgpu`,
    // Each shape is a pipeline to build: prompts come in a few bucket sizes.
    prefillBuckets: () => DEFAULT_PREFILL_BUCKETS,
    prepareLinear: (layer) => {
      const rows = tf.transpose(layer.weight) as tf.Tensor2D;
      layer.weight.dispose();
      return packRows(rows, layer.bias);
    },
    tiedEmbeddingInArena: () => false,
    forModel(config, output) {
      const { embedTokens, embedPositions, finalNorm, lmHead } = output;
      if (isArenaMatrix(embedTokens)) {
        throw new InvalidArgumentError(
          'the webgpu kernel set takes embedTokens as a tensor, not an ArenaMatrix',
        );
      }
      const { heads: queryHeads, kvHeads, headDim } = config;
      // The head is stored [vocab, hidden] (a tied head: a copy of the embedding; tfjs-webgpu's
      // transposed-operand matmul took 1.3–2 ms for GPT-2's head against 0.3 ms untransposed) with
      // the final norm's affine part folded in, so norm and product are one program.
      // Folded in f32, then (f16, q8) packed: the norm's scale is rounded with the weights once.
      const folded = foldNormIntoRows(finalNorm, {
        weightRows: lmHead ? (tf.transpose(lmHead) as tf.Tensor2D) : embedTokens.clone(),
      });
      lmHead?.dispose();
      const head: RowLinear = packRows(folded.weightRows, folded.bias);
      const norm = { kind: config.norm, eps: config.normEps };
      const tables = modelTables(config);
      const { pass, splitHeads, writeSplit, ...own } = passSteps(config, tables);
      let cosSin: tf.Tensor2D | undefined;
      // The packed path needs a cache that writes heads from the product and is read in place (inplace).
      const packed = () => pass().cache.writeHeads !== undefined && pass().cache.whole !== undefined;
      const isPacked = (h: PackedHeads | SplitHeads): h is PackedHeads => 'qkv' in h;
      return {
        name: 'webgpu',
        ...own,
        endPass() {
          cosSin?.dispose();
          cosSin = undefined;
          own.endPass();
        },
        embed(ids) {
          const { lengths, steps } = pass();
          return embedRows(
            embedTokens,
            ids instanceof tf.Tensor ? (tf.reshape(ids, [-1]) as tf.Tensor1D) : ids,
            embedPositions,
            lengths,
            steps,
          );
        },
        linear: (x, layer, options) => rowLinear(x, layer as RowLinear, { ...options }),
        heads(qkv2d): PackedHeads | SplitHeads {
          if (!packed()) return splitHeads(qkv2d);
          const { batch, steps, positions } = pass();
          const qkv = tf.reshape(qkv2d, [batch, steps, queryHeads + 2 * kvHeads, headDim]) as tf.Tensor4D;
          if (!tables.inverseFrequencies) return { qk: qkv, qkv };
          // One table for every layer's rotary program: one upload per pass.
          cosSin ??= tf.keep(
            tf.tensor2d(rotaryCosSin(tables.inverseFrequencies, positions), [batch * steps, headDim]),
          );
          return { qk: rotatePacked(qkv, cosSin, queryHeads + kvHeads), qkv };
        },
        writeCache(layer, h: PackedHeads | SplitHeads) {
          if (!isPacked(h)) return writeSplit(layer, h);
          const { cache, lengths } = pass();
          cache.writeHeads!(
            layer,
            { from: h.qk, head: queryHeads },
            { from: h.qkv, head: queryHeads + kvHeads },
            lengths,
          );
        },
        attend(layer, h: PackedHeads | SplitHeads) {
          const { cache, lengths, steps } = pass();
          const { keys, values } = cache.whole?.(layer) ?? cache.read(layer, Math.max(...lengths) + steps);
          return isPacked(h)
            ? causalAttention(h.qk, keys, values, lengths, { queryHeads })
            : causalAttention(h.q, keys, values, lengths);
        },
        logits(x, selection) {
          const { batch, steps } = pass();
          // Each row's last step is picked inside the head's program: no gather, no index upload.
          if (selection === 'last')
            return rowLinear(x, head, { norm, pickRows: { stride: steps, offset: steps - 1 } });
          return rowLinear(selectLogitRows(x, batch, steps, selection), head, { norm });
        },
        dispose() {
          disposeLinear(head);
          embedTokens.dispose();
          embedPositions?.dispose();
          tables.dispose();
        },
      };
    },
  };
  made.set(weights, set);
  return set;
}

const made = new Map<string, KernelSet>();

/** The webgpu set with f32 weights. */
export const webgpuKernels: KernelSet = webgpuKernelSet('f32');
