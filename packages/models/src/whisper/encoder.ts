import {
  checkCapacity,
  checkPositiveInteger,
  DisposedError,
  disposeNorm,
  type EncodeResult,
  type Encoder,
  type EncoderState,
  type EncoderStateOptions,
  InvalidArgumentError,
  layerNorm,
} from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { noMask } from './attention.js';
import type { WhisperConfig } from './config.js';
import {
  convolve,
  disposeEncoderLayer,
  encoderLayer,
  prepareConv,
  prepareEncoderLayer,
} from './encoder-layers.js';
import type { EncoderWeights } from './weights.js';

/** Whisper's encoder carries nothing between calls: the state only counts frames. */
export type WhisperEncoderState = EncoderState;

export interface WhisperEncoder extends Encoder<WhisperEncoderState> {
  /**
   * frames: [batch, steps, nMels]. Whisper's encoder is bidirectional, not
   * streaming: each call encodes its frames as one window, independent of
   * earlier calls. transformers accepts only full 30 s windows
   * (2·maxSourcePositions frames; the feature extractor pads to that).
   * Shorter windows are allowed and take positions from 0, which the model
   * never saw in training: pad to a full window to match transformers.
   */
  extendStep(state: WhisperEncoderState, frames: tf.Tensor3D): EncodeResult<WhisperEncoderState>;
  /** features: [batch, nMels, frames], the feature extractor's layout. Returns [batch, ⌈frames/2⌉, dModel]. */
  encode(features: tf.Tensor3D): tf.Tensor3D;
}

interface MutableState {
  batch: number;
  maxLength: number;
  lengths: Int32Array;
  disposed: boolean;
}

/** Takes ownership of `weights` (rearranged here, freed by dispose). */
export function createWhisperEncoder(config: WhisperConfig, weights: EncoderWeights): WhisperEncoder {
  const { dModel, numMelBins, encoderHeads: heads, normEps: eps, activation } = config;
  const maxFrames = 2 * config.maxSourcePositions;
  const scale = 1 / Math.sqrt(dModel / heads);
  const conv1 = prepareConv(weights.conv1);
  const conv2 = prepareConv(weights.conv2);
  const layers = weights.layers.map((layer) => prepareEncoderLayer(layer, scale));
  const { embedPositions, finalNorm } = weights;
  let disposed = false;

  /** frames: [batch, steps, nMels] → [batch, ⌈steps/2⌉, dModel]. */
  function forward(frames: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      const batch = frames.shape[0];
      const h = convolve(convolve(frames, conv1, 1, activation), conv2, 2, activation);
      const steps = h.shape[1];
      const positions = tf.slice(embedPositions, [0, 0], [steps, dModel]);
      let x = tf.reshape(tf.add(h, positions), [batch * steps, dModel]) as tf.Tensor2D;
      const unmasked = noMask();
      const shape = { batch, steps, heads, eps, activation };
      for (const layer of layers) x = encoderLayer(x, layer, shape, unmasked);
      return tf.reshape(layerNorm(x, finalNorm, eps), [batch, steps, dModel]) as tf.Tensor3D;
    });
  }

  /** frameAxis: where the frames are (1 for extendStep's layout, 2 for encode's); mel bins are on the other. */
  function checkWindow(input: tf.Tensor3D, frameAxis: 1 | 2, batch?: number): void {
    if (disposed) throw new DisposedError('the Whisper encoder was disposed');
    const shape = input?.shape ?? [];
    const steps = shape[frameAxis];
    const ok =
      shape.length === 3 &&
      input.dtype === 'float32' &&
      (batch === undefined || shape[0] === batch) &&
      shape[3 - frameAxis] === numMelBins &&
      steps >= 1 &&
      steps <= maxFrames;
    if (!ok) {
      const layout = frameAxis === 1 ? '[batch, frames, nMels]' : '[batch, nMels, frames]';
      const rows = batch === undefined ? '' : `${batch} rows, `;
      throw new InvalidArgumentError(
        `Whisper's encoder takes float32 ${layout} with ${rows}${numMelBins} mel bins and 1..${maxFrames} frames; got ${input?.dtype} [${shape}]`,
      );
    }
  }

  return {
    inputDim: numMelBins,
    outputDim: dModel,
    createState({ batch, maxLength, leftContext }: EncoderStateOptions): WhisperEncoderState {
      if (disposed) throw new DisposedError('the Whisper encoder was disposed');
      checkPositiveInteger('batch', batch);
      checkPositiveInteger('maxLength', maxLength);
      if (leftContext !== undefined && leftContext !== Number.POSITIVE_INFINITY) {
        throw new InvalidArgumentError(
          `Whisper's encoder attends over its whole window; leftContext ${leftContext} cannot be honoured`,
        );
      }
      const state: MutableState = { batch, maxLength, lengths: new Int32Array(batch), disposed: false };
      return state;
    },
    extendStep(state, frames) {
      const s = state as MutableState;
      if (s.disposed)
        throw new DisposedError('the encoder state was disposed; create a new one with createState');
      checkWindow(frames, 1, s.batch);
      checkCapacity(s.lengths, frames.shape[1], s.maxLength, Number.POSITIVE_INFINITY);
      const outputs = forward(frames);
      for (let r = 0; r < s.batch; r++) s.lengths[r] += frames.shape[1];
      return { outputs, state };
    },
    encode(features) {
      checkWindow(features, 2);
      const frames = tf.transpose(features, [0, 2, 1]) as tf.Tensor3D;
      try {
        return forward(frames);
      } finally {
        frames.dispose();
      }
    },
    disposeState(state) {
      (state as MutableState).disposed = true;
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      tf.dispose([conv1.filter, conv1.bias, conv2.filter, conv2.bias, embedPositions]);
      for (const layer of layers) disposeEncoderLayer(layer);
      disposeNorm(finalNorm);
    },
  };
}
