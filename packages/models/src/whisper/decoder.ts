import {
  type CausalLmConfig,
  type CreateStateOptions,
  checkCapacity,
  checkLogitsSelection,
  checkNotDisposed,
  checkPositiveInteger,
  checkRollback,
  createKvCache,
  type Decoder,
  type DecoderState,
  flattenTokens,
  InvalidArgumentError,
  type KernelSetName,
  type KvCache,
  kernelSet,
} from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import type { WhisperConfig } from './config.js';
import { decoderForward, type PreparedDecoder } from './decoder-forward.js';
import {
  type CrossKeysValues,
  crossKeysValues,
  disposeDecoderLayer,
  prepareDecoderLayer,
} from './decoder-layers.js';
import { checkEncoderOutput } from './validate.js';
import type { DecoderWeights } from './weights.js';

export interface WhisperDecoderState extends DecoderState {
  /** Self-attention keys and values of the tokens so far. */
  readonly cache: KvCache;
  /** Per layer, cross-attention keys and values of the current audio; undefined until setEncoderOutput. */
  readonly cross: readonly CrossKeysValues[] | undefined;
}

export interface WhisperDecoder extends Decoder<WhisperDecoderState> {
  /**
   * Attaches one audio's encoder output [batch, sourceSteps, dModel] to the
   * state: every layer's cross-attention keys and values are computed here,
   * once, and kept until the next call or disposeState. The caller keeps
   * ownership of `encoderOutput`. Token positions are untouched: to start a
   * new transcription on the same state, rollback to 0 as well.
   */
  setEncoderOutput(state: WhisperDecoderState, encoderOutput: tf.Tensor3D): void;
}

interface MutableState {
  batch: number;
  maxLength: number;
  lengths: Int32Array;
  disposed: boolean;
  cache: KvCache;
  cross: CrossKeysValues[] | undefined;
}

/**
 * Takes ownership of `weights` (fused here, freed by dispose). The decoder
 * runs on a kernel set (default: the fastest here, see core's kernelSet)
 * as core's causal LM does, with cross-attention added.
 */
export function createWhisperDecoder(
  config: WhisperConfig,
  weights: DecoderWeights,
  options: { kernels?: KernelSetName } = {},
): WhisperDecoder {
  const { vocabSize, dModel, decoderHeads: heads, normEps: eps, activation } = config;
  const headDim = dModel / heads;
  const maxPositions = config.maxTargetPositions;
  const set = kernelSet(options.kernels);
  const embedScale = config.scaleEmbedding ? Math.sqrt(dModel) : 1;
  const shape: CausalLmConfig = {
    vocabSize,
    hiddenSize: dModel,
    layers: weights.layers.length,
    heads,
    kvHeads: heads,
    headDim,
    norm: 'layer',
    normEps: eps,
    activation,
    gatedMlp: false,
    positions: { kind: 'learned', maxPositions },
  };
  const layers = weights.layers.map((layer) => prepareDecoderLayer(layer, 1 / Math.sqrt(headDim), set));
  const { embedTokens, finalNorm } = weights;
  // x = s·token + position = s·(token + position/s): the table stays unscaled for the tied head.
  const embedPositions =
    embedScale === 1
      ? weights.embedPositions
      : tf.tidy(() => tf.div(weights.embedPositions, embedScale) as tf.Tensor2D);
  if (embedPositions !== weights.embedPositions) weights.embedPositions.dispose();
  const model: PreparedDecoder = {
    vocabSize,
    kernels: set.forModel(shape, { embedTokens, embedPositions, finalNorm }),
    embedScale,
    layers,
    norm: { kind: 'layer', eps },
    activation,
  };
  let disposed = false;

  const checkModel = () => {
    if (disposed) throw new InvalidArgumentError('the model was disposed');
  };

  function createState({ batch, maxLength }: CreateStateOptions): WhisperDecoderState {
    checkModel();
    checkPositiveInteger('batch', batch);
    checkPositiveInteger('maxLength', maxLength);
    if (maxLength > maxPositions) {
      throw new InvalidArgumentError(`maxLength ${maxLength} exceeds the model's ${maxPositions} positions`);
    }
    const shape = { batch, layers: layers.length, kvHeads: heads, headDim, capacity: maxLength };
    const cache = createKvCache(shape, config.kvCache);
    const state: MutableState = {
      batch,
      maxLength,
      lengths: new Int32Array(batch),
      disposed: false,
      cache,
      cross: undefined,
    };
    return state;
  }

  return {
    vocabSize,
    maxPositions,
    createState,
    setEncoderOutput(state, encoderOutput) {
      const s = state as MutableState;
      checkModel();
      checkNotDisposed(s);
      checkEncoderOutput(encoderOutput, s.batch, dModel);
      const next = crossKeysValues(encoderOutput, layers, heads);
      disposeCross(s);
      s.cross = next;
    },
    extendStep(state, tokens, options) {
      const s = state as MutableState;
      checkModel();
      checkNotDisposed(s);
      const cross = s.cross;
      if (!cross) {
        throw new InvalidArgumentError(
          'the state has no audio: call setEncoderOutput(state, encoderOutput) before extendStep',
        );
      }
      const { ids, steps } = flattenTokens(tokens, s.batch, vocabSize);
      checkCapacity(s.lengths, steps, s.maxLength, maxPositions);
      checkLogitsSelection(options?.logits, s.batch, steps);
      const logits = decoderForward(model, { ...s, cross }, ids, steps, options);
      // Only now, after the pass succeeded, do the rows own their new positions.
      for (let r = 0; r < s.batch; r++) s.lengths[r] += steps;
      return { logits, state };
    },
    rollback(state, lengths) {
      const s = state as MutableState;
      checkNotDisposed(s);
      checkRollback(s.lengths, lengths);
      s.lengths.set(Array.from(lengths));
    },
    disposeState(state) {
      const s = state as MutableState;
      if (s.disposed) return;
      s.cache.dispose();
      disposeCross(s);
      s.disposed = true;
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      for (const layer of layers) disposeDecoderLayer(layer);
      model.kernels.dispose();
    },
  };
}

function disposeCross(state: MutableState): void {
  for (const { keys, values } of state.cross ?? []) tf.dispose([keys, values]);
  state.cross = undefined;
}
