import * as tf from '@tensorflow/tfjs-core';
import type { LogitsSelection, SplitTokens } from '../../decoder.js';
import { InvalidArgumentError } from '../../errors.js';
import { causalAttention } from '../../kernels/causal-attention.js';
import type { KvCache } from '../../kv-cache/kv-cache.js';
import { getLogger } from '../../log.js';
import { DEFAULT_PREFILL_BUCKETS } from '../../prefill.js';
import { isSplitTokens } from '../../split-tokens.js';
import { disposeLinear } from '../../transformer/linear.js';
import { foldNormIntoRows } from '../../transformer/norm.js';
import { rotaryCosSin } from '../../transformer/rotary.js';
import { selectLogitRows } from '../../validate.js';
import type { KernelSet, Pass } from '../kernel-set.js';
import { modelTables, passSteps, type SplitHeads } from '../reference/index.js';
import { isArenaMatrix } from '../wasm/arena-matrix.js';
import { type EmbedTable, embedRows } from './embed.js';
import { type PassTape, recordPass, type TapeWrite, writePassInputs } from './pass-tape.js';
import { packF16Rows, quantizeRowsQ4, quantizeRowsQ8, type RowLinear, rowLinear } from './row-linear.js';
import { webGpuPrograms } from './webgpu-program.js';

/**
 * The q|k|v product as the programs read it: [batch, steps, heads + 2·kvHeads, headDim]; for
 * rotary models with the pass's cos|sin table, by which the cache write rotates the keys and
 * attention the queries as they read them (no rotary program of their own).
 */
interface PackedHeads {
  readonly qkv: tf.Tensor4D;
  readonly cosSin?: tf.Tensor2D;
}

/**
 * Core's WGSL programs through tfjs-backend-webgpu's program runner: each
 * product one program with the norm before it, bias, activation and
 * residual fused in (weights stored [out, in], RowLinear), the embedding
 * one program with the step's ids in its uniforms, the cache written and
 * attention read straight from the packed q|k|v product (rotary applied as
 * they read keys and queries), the final norm folded into the head.
 */
export function webgpuKernelSet(weights: 'f32' | 'f16' | 'q8' | 'q4'): KernelSet {
  const known = made.get(weights);
  if (known) return known;
  /**
   * Rows [out, in] as this set's products read them: f32; f16 packed two per i32 where the
   * input width is a multiple of 4; q8 as int8 quads, q4 as 4-bit octets, with a scale per 32
   * inputs where it is a multiple of 32 (else f32). Takes ownership of `rows`.
   */
  const packRows = (rows: tf.Tensor2D, bias?: tf.Tensor1D): RowLinear => {
    const inner = rows.shape[1];
    let packed: RowLinear = { weightRows: rows };
    if (weights === 'f16' && inner % 4 === 0) packed = { weightRows: packF16Rows(rows) };
    if (weights === 'q8' && inner % 32 === 0) packed = quantizeRowsQ8(rows);
    if (weights === 'q4' && inner % 32 === 0) packed = quantizeRowsQ4(rows);
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
      // Folded in f32, then (f16, q8, q4) packed: the norm's scale is rounded with the weights once.
      const folded = foldNormIntoRows(finalNorm, {
        weightRows: lmHead ? (tf.transpose(lmHead) as tf.Tensor2D) : embedTokens.clone(),
      });
      lmHead?.dispose();
      const head: RowLinear = packRows(folded.weightRows, folded.bias);
      // The token table in the products' format too (a decode step reads one row of it; it is
      // memory all the same: GPT-2's is 154 MB in f32).
      const table: EmbedTable = weights === 'f32' ? embedTokens : packRows(embedTokens);
      const norm = { kind: config.norm, eps: config.normEps };
      const tables = modelTables(config);
      const { pass, splitHeads, writeSplit, ...own } = passSteps(config, tables);
      let cosSin: tf.Tensor2D | undefined;
      // The packed path needs a cache that writes heads from the product and is read in place (inplace).
      const packed = () => pass().cache.writeHeads !== undefined && pass().cache.whole !== undefined;
      const isPacked = (h: PackedHeads | SplitHeads): h is PackedHeads => 'qkv' in h;

      // Recorded passes (pass-tape.ts): per cache, per pass shape, a tape and the device tensors
      // its programs read the pass's ids, row starts and rotary angles from (null: not recordable).
      const tapes = new Map<KvCache, Map<string, RecordedPass | null>>();
      // While a pass is being recorded, the tensors its programs read instead of host values.
      let recording: PassInputs | undefined;
      const passInputs = ({ batch, steps }: Pass): PassInputs => ({
        ids: tf.keep(tf.zeros([batch * steps], 'int32')),
        starts: tf.keep(tf.zeros([batch], 'int32')),
        cosSin: tables.inverseFrequencies ? tf.keep(tf.zeros([batch * steps, headDim])) : undefined,
      });
      const idWrites = (
        inputs: PassInputs,
        p: Pass,
        ids: Int32Array | tf.Tensor2D | SplitTokens,
      ): TapeWrite[] => {
        if (ids instanceof tf.Tensor) return [{ to: inputs.ids, from: ids }];
        if (!isSplitTokens(ids)) return [{ to: inputs.ids, data: ids }];
        // The first column from the host (the rest left 0), then each row's device part after it.
        const { batch, steps } = p;
        const column = new Int32Array(batch * steps);
        for (let r = 0; r < batch; r++) column[r * steps] = ids.first[r];
        const rows = { count: batch, length: steps - 1, fromStride: steps - 1, toStride: steps, toOffset: 1 };
        return [
          { to: inputs.ids, data: column },
          { to: inputs.ids, from: ids.rest, rows },
        ];
      };
      const passWrites = (
        inputs: PassInputs,
        p: Pass,
        ids: Int32Array | tf.Tensor2D | SplitTokens,
      ): TapeWrite[] => [
        ...idWrites(inputs, p, ids),
        { to: inputs.starts, data: p.lengths },
        ...(inputs.cosSin
          ? [{ to: inputs.cosSin, data: rotaryCosSin(tables.inverseFrequencies!, p.positions) }]
          : []),
      ];
      const release = (passes: Map<string, RecordedPass | null>) => {
        for (const recorded of passes.values()) {
          recorded?.tape.dispose();
          if (recorded) disposeInputs(recorded.inputs);
        }
      };
      const recordable = (p: Pass, selection: LogitsSelection) =>
        globalThis.process?.env?.SPECSTREAM_WEBGPU_RECORD !== 'off' &&
        packed() &&
        (selection === 'all' || selection === 'last') &&
        p.steps <= MAX_RECORDED_STEPS;
      return {
        name: 'webgpu',
        ...own,
        endPass() {
          cosSin?.dispose();
          cosSin = undefined;
          own.endPass();
        },
        runPass(ids, selection, forward) {
          const p = pass();
          if (!recordable(p, selection)) return forward();
          const passes = tapes.get(p.cache) ?? new Map<string, RecordedPass | null>();
          tapes.set(p.cache, passes);
          const source = ids instanceof tf.Tensor ? 'device' : isSplitTokens(ids) ? 'split' : 'host';
          const key = `${p.batch}x${p.steps}:${selection}:${source}`;
          const known = passes.get(key);
          if (known === null || (known === undefined && passes.size >= MAX_TAPES_PER_CACHE)) return forward();
          if (known) return known.tape.replay(passWrites(known.inputs, p, ids)) as tf.Tensor3D;
          const inputs = passInputs(p);
          let recorded: ReturnType<typeof recordPass>;
          try {
            writePassInputs(passWrites(inputs, p, ids));
            recording = inputs;
            recorded = recordPass(forward);
          } catch (error) {
            disposeInputs(inputs);
            throw error;
          } finally {
            recording = undefined;
          }
          if (recorded.tape) {
            passes.set(key, { tape: recorded.tape, inputs });
          } else {
            passes.set(key, null);
            disposeInputs(inputs);
            getLogger('core').debug({ pass: key, why: recorded.why }, 'webgpu pass not recorded');
          }
          return recorded.result as tf.Tensor3D;
        },
        releaseCache(cache) {
          const passes = tapes.get(cache);
          if (passes) release(passes);
          tapes.delete(cache);
        },
        embed(ids) {
          const { lengths, steps } = pass();
          if (recording) return embedRows(table, recording.ids, embedPositions, recording.starts, steps);
          return embedRows(
            table,
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
          if (!tables.inverseFrequencies) return { qkv };
          // Rotary is applied where the heads are read: by the cache write (keys) and attention (queries).
          if (recording) return { qkv, cosSin: recording.cosSin };
          // One table for every layer: one upload per pass.
          cosSin ??= tf.keep(
            tf.tensor2d(rotaryCosSin(tables.inverseFrequencies, positions), [batch * steps, headDim]),
          );
          return { qkv, cosSin };
        },
        writeCache(layer, h: PackedHeads | SplitHeads) {
          if (!isPacked(h)) return writeSplit(layer, h);
          const { cache, lengths } = pass();
          cache.writeHeads!(
            layer,
            { from: h.qkv, head: queryHeads, cosSin: h.cosSin },
            { from: h.qkv, head: queryHeads + kvHeads },
            recording?.starts ?? lengths,
          );
        },
        attend(layer, h: PackedHeads | SplitHeads) {
          const { cache, lengths, steps } = pass();
          const { keys, values } = cache.whole?.(layer) ?? cache.read(layer, Math.max(...lengths) + steps);
          return isPacked(h)
            ? causalAttention(h.qkv, keys, values, lengths, {
                queryHeads,
                startsOnDevice: recording?.starts,
                cosSin: h.cosSin,
              })
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
          for (const passes of tapes.values()) release(passes);
          tapes.clear();
          disposeLinear(head);
          if (table instanceof tf.Tensor) table.dispose();
          else disposeLinear(table);
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

/** The device tensors a recorded pass reads its changing values from (see pass-tape.ts). */
interface PassInputs {
  /** [batch·steps] token ids. */
  readonly ids: tf.Tensor1D;
  /** [batch] each row's length before the pass. */
  readonly starts: tf.Tensor1D;
  /** [batch·steps, headDim] rotary cos|sin (rotary models). */
  readonly cosSin?: tf.Tensor2D;
}

interface RecordedPass {
  readonly tape: PassTape;
  readonly inputs: PassInputs;
}

function disposeInputs(inputs: PassInputs): void {
  inputs.ids.dispose();
  inputs.starts.dispose();
  inputs.cosSin?.dispose();
}

/**
 * Passes of at most this many steps are recorded: decode steps, the draft's
 * chained steps, verification of k + 1; longer ones are prefill chunks,
 * which run once per prompt.
 */
const MAX_RECORDED_STEPS = 16;
/** Pass shapes recorded per state: each tape keeps its intermediates' buffers. */
const MAX_TAPES_PER_CACHE = 16;

/** The webgpu set with f32 weights. */
export const webgpuKernels: KernelSet = webgpuKernelSet('f32');
