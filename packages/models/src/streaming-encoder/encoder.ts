import {
  activate,
  applyRotary,
  checkCapacity,
  checkPositiveInteger,
  DisposedError,
  disposeLinear,
  type EncodeResult,
  type Encoder,
  type EncoderState,
  type EncoderStateOptions,
  foldNormIntoLinear,
  InvalidArgumentError,
  type Linear,
  linear,
  mlp,
  type NormWeights,
  rotaryInverseFrequencies,
  rotaryTables,
  rotateHalfMatrix,
} from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import {
  CONV_KERNEL,
  CONV_STRIDE,
  checkStreamingEncoderConfig,
  type StreamingEncoderConfig,
} from './config.js';
import type { StreamingConvWeights, StreamingEncoderWeights } from './weights.js';

/** Added to masked scores: exp underflows to exactly 0, so masked keys contribute nothing. */
const MASKED = -1e9;

/**
 * Up to this many new output frames per call, attention runs all heads in
 * one block-diagonal matmul; past it, per head (see attend). Measured on
 * wasm with the 10 M preset: block-diagonal is faster at 2, 4 and 8 frames
 * per call (8 to 32 input frames), per head 1.7× faster over the whole
 * stream offline (500 frames in one call).
 */
const BLOCK_DIAGONAL_MAX_STEPS = 8;

export interface StreamingEncoderState extends EncoderState {
  /** Output frames of history each new output frame attends to (Infinity: all). */
  readonly leftContext: number;
  /** Output frames produced so far: the position the next output frame gets. */
  readonly outputLength: number;
}

/**
 * A causal streaming encoder (see StreamingEncoderConfig for the
 * architecture). `extendStep(state, frames)` takes log-mel frames [batch,
 * steps, nMels] and returns the output frames they complete as CTC logits
 * [batch, outSteps, vocabSize] (outputDim = vocabSize, blank id 0; no
 * softmax applied).
 *
 * Exact subsampling: output frame j depends only on input frames ≤ 4j+3 and
 * is returned by the call in which frame 4j+3 arrives. Frames of an
 * incomplete group stay in the state until the frames completing it arrive,
 * so any chunking of the same frames (1 frame at a time, chunks not multiple
 * of 4, one call over everything) gives the same output frames, up to float
 * rounding. Up to 3 trailing frames of a stream never complete a group and
 * produce no output.
 *
 * `leftContext` (createState) counts output frames: output frame j attends
 * to output frames max(0, j − leftContext) … j. Default Infinity: every
 * earlier frame (plain causal attention). The state keeps only the keys and
 * values attention can still reach, so with a finite leftContext memory and
 * time per frame stay bounded however long the stream runs.
 *
 * All rows of a batch advance together (frames is one tensor). `lengths`
 * counts input frames consumed, held-back ones included; `maxLength` bounds
 * them. Errors: InvalidArgumentError (wrong input shape, dtype, mel bins or
 * batch; bad options), CacheOverflowError (input past maxLength),
 * DisposedError (state or encoder disposed). On error the state is unchanged.
 */
export interface StreamingEncoder extends Encoder<StreamingEncoderState> {
  readonly config: StreamingEncoderConfig;
  createState(options: EncoderStateOptions): StreamingEncoderState;
  extendStep(state: StreamingEncoderState, frames: tf.Tensor3D): EncodeResult<StreamingEncoderState>;
}

/**
 * A layer as the forward pass uses it: q, k, v fused into one matmul, q
 * pre-scaled by 1/√headDim, and each LayerNorm's weight and bias folded into
 * the matmul after it (see foldNorm), so the pass only standardizes.
 */
interface PreparedLayer {
  qkv: Linear;
  o: Linear;
  mlp: { up: Linear; down: Linear };
}

interface MutableState {
  batch: number;
  maxLength: number;
  lengths: Int32Array;
  disposed: boolean;
  leftContext: number;
  outputLength: number;
  /**
   * Input frames from 2·m − 1 on (m: first conv's outputs so far), [batch,
   * 1 or 2, nMels]: what the first conv's next output needs. Frame −1 is
   * the zero padding.
   */
  melTail: tf.Tensor3D;
  /** The same for the second conv over the first conv's outputs, [batch, 1 or 2, convChannels]. */
  convTail: tf.Tensor3D;
  /**
   * At [layer·batch + row]: keys and values of the last min(outputLength,
   * leftContext) output frames, keys [window, dModel], values transposed
   * [dModel, window]; undefined before the first frame or for leftContext 0.
   */
  keys: (tf.Tensor2D | undefined)[];
  values: (tf.Tensor2D | undefined)[];
}

/** What one forward pass replaces in the state. */
interface StepResult {
  outputs: tf.Tensor3D;
  melTail: tf.Tensor3D;
  convTail: tf.Tensor3D;
  keys: (tf.Tensor2D | undefined)[];
  values: (tf.Tensor2D | undefined)[];
}

/**
 * Builds the encoder. Takes ownership of `weights` (q/k/v are fused and the
 * norms folded into the matmuls after them here, the originals disposed;
 * `dispose()` frees the rest). If the config or the weights' shapes are
 * invalid it throws before taking anything.
 */
export function createStreamingEncoder(
  config: StreamingEncoderConfig,
  weights: StreamingEncoderWeights,
): StreamingEncoder {
  checkStreamingEncoderConfig(config);
  checkWeights(config, weights);
  const { nMels, convChannels, dModel, heads, vocabSize, normEps: eps, activation } = config;
  const headDim = dModel / heads;
  const scale = 1 / Math.sqrt(headDim);
  const conv1 = weights.conv1;
  const conv2 = weights.conv2;
  const layers = weights.layers.map((layer): PreparedLayer => {
    const qkv = foldNormIntoLinear(
      layer.attnNorm,
      tf.tidy(() => ({
        weight: tf.concat([tf.mul(layer.q.weight, scale), layer.k.weight, layer.v.weight], 1) as tf.Tensor2D,
        bias: tf.concat(
          [
            layer.q.bias ? tf.mul(layer.q.bias, scale) : tf.zeros([dModel]),
            layer.k.bias ?? tf.zeros([dModel]),
            layer.v.bias ?? tf.zeros([dModel]),
          ],
          0,
        ) as tf.Tensor1D,
      })),
    );
    for (const l of [layer.q, layer.k, layer.v]) disposeLinear(l);
    return { qkv, o: layer.o, mlp: { up: foldNormIntoLinear(layer.mlpNorm, layer.up), down: layer.down } };
  });
  const ctcHead = foldNormIntoLinear(weights.finalNorm, weights.ctcHead);
  const rotary = config.positions.kind === 'rotary' ? config.positions : undefined;
  const inverseFrequencies = rotary && rotaryInverseFrequencies({ theta: rotary.theta, headDim });
  const rotateHalf = rotary && rotateHalfMatrix(headDim);
  let disposed = false;

  function checkModel(): void {
    if (disposed) throw new DisposedError('the streaming encoder was disposed');
  }

  /**
   * One causal conv (kernel 3, stride 2, one frame of zero padding on the
   * left) + activation over the frames that arrived, continuing from `tail`.
   * Output i reads frames 2i−1 … 2i+1; it is computed once frame 2i+1 is
   * there. Returns the new outputs (undefined if none) and the new tail.
   */
  function causalConv(
    tail: tf.Tensor3D,
    input: tf.Tensor3D,
    conv: StreamingConvWeights,
  ): { out?: tf.Tensor3D; tail: tf.Tensor3D } {
    const x = tf.concat([tail, input], 1) as tf.Tensor3D;
    const [batch, length, channels] = x.shape;
    const count = length < CONV_KERNEL ? 0 : Math.floor((length - CONV_KERNEL) / CONV_STRIDE) + 1;
    if (count === 0) return { tail: x };
    const out = activate(
      activation,
      tf.add(tf.conv1d(x, conv.filter, CONV_STRIDE, 'valid'), conv.bias),
    ) as tf.Tensor3D;
    const consumed = CONV_STRIDE * count;
    return { out, tail: tf.slice(x, [0, consumed, 0], [batch, length - consumed, channels]) };
  }

  /**
   * Additive mask [steps, cached + steps]: new frame s (position start + s)
   * sees key i (position start − cached + i) iff that position is within
   * [start + s − leftContext, start + s]. Undefined when nothing is masked.
   */
  function bandMask(steps: number, cached: number, leftContext: number): tf.Tensor2D | undefined {
    const length = cached + steps;
    if (steps === 1 && length <= leftContext + 1) return undefined;
    const mask = new Float32Array(steps * length);
    for (let s = 0; s < steps; s++) {
      const row = s * length;
      const first = cached + s - leftContext;
      if (first > 0) mask.fill(MASKED, row, row + first);
      mask.fill(MASKED, row + cached + s + 1, row + length);
    }
    return tf.tensor2d(mask, [steps, length]);
  }

  /**
   * Attention of one batch row. q [steps, dModel] (pre-scaled), keys
   * [length, dModel], valuesT [dModel, length] (values transposed); head h
   * owns columns (rows of valuesT) h·headDim … Returns [steps, dModel].
   *
   * Only plain 2-D matmuls with the cache as left operand: the wasm backend
   * runs plain 2-D matmuls through XNNPACK, which first packs the right
   * operand (costly for a cache tensor, new at every call), and batched or
   * transposed matmuls through a loop about 12× slower. Few steps: all heads
   * in one matmul with q spread block-diagonally (heads× the flops, far
   * fewer ops). Many steps: one pair of matmuls per head.
   */
  function attend(
    q: tf.Tensor2D,
    keys: tf.Tensor2D,
    valuesT: tf.Tensor2D,
    mask: tf.Tensor2D | undefined,
    blockMask: () => { flat: tf.Tensor2D; byHead: tf.Tensor3D; headSum: tf.Tensor2D },
  ): tf.Tensor2D {
    const steps = q.shape[0];
    const length = keys.shape[0];
    const softmax = (scores: tf.Tensor) => tf.softmax(mask ? tf.add(scores, mask) : scores);
    const qT = tf.transpose(q);
    if (steps <= BLOCK_DIAGONAL_MAX_STEPS) {
      // column h·steps + s: query s of head h, zero outside head h's rows
      // (tf.tile is slow on wasm; a broadcasting multiply spreads and masks at once)
      const spreadT = tf.reshape(tf.mul(tf.reshape(qT, [dModel, 1, steps]), blockMask().byHead), [
        dModel,
        heads * steps,
      ]) as tf.Tensor2D;
      const scores = tf.reshape(tf.transpose(tf.matMul(keys, spreadT)), [heads, steps, length]);
      const probsT = tf.transpose(tf.reshape(softmax(scores), [heads * steps, length])) as tf.Tensor2D;
      const outT = tf.mul(tf.matMul(valuesT, probsT), blockMask().flat);
      // Summing the head blocks is a matmul with stacked identities: a middle-axis
      // tf.sum transposes first and costs several times more on wasm.
      return tf.transpose(tf.matMul(outT, blockMask().headSum));
    }
    const qs = tf.split(qT, heads, 0);
    const ks = tf.split(keys, heads, 1);
    const vs = tf.split(valuesT, heads, 0);
    const outs = qs.map((qh, h) => {
      const probs = softmax(tf.transpose(tf.matMul(ks[h], qh))) as tf.Tensor2D;
      return tf.matMul(vs[h], tf.transpose(probs));
    });
    return tf.transpose(tf.concat(outs, 0)) as tf.Tensor2D;
  }

  /** Transformer + CTC head over `x` [batch, steps, dModel], new output frames from state.outputLength on. */
  function transformer(
    state: MutableState,
    x3: tf.Tensor3D,
  ): Pick<StepResult, 'outputs' | 'keys' | 'values'> {
    const [batch, steps] = x3.shape;
    const start = state.outputLength;
    const { leftContext } = state;
    const cached = state.keys[0]?.shape[0] ?? 0;
    const keep = Math.min(leftContext, cached + steps);
    let cos: tf.Tensor | undefined;
    let sin: tf.Tensor | undefined;
    if (inverseFrequencies) {
      const positions = Int32Array.from({ length: steps }, (_, s) => start + s);
      const tables = rotaryTables(inverseFrequencies, positions);
      cos = tf.tensor4d(tables.cos, [1, steps, 1, headDim]);
      sin = tf.tensor4d(tables.sin, [1, steps, 1, headDim]);
    }
    const mask = bandMask(steps, cached, leftContext);
    let blocks: { flat: tf.Tensor2D; byHead: tf.Tensor3D; headSum: tf.Tensor2D } | undefined;
    const blockMask = () => {
      if (!blocks) {
        const flat = blockDiagonalMask(steps);
        const sum = new Float32Array(heads * steps * steps);
        for (let h = 0; h < heads; h++) for (let i = 0; i < steps; i++) sum[(h * steps + i) * steps + i] = 1;
        blocks = {
          flat,
          byHead: tf.reshape(flat, [dModel, heads, steps]),
          headSum: tf.tensor2d(sum, [heads * steps, steps]),
        };
      }
      return blocks;
    };
    const keys: (tf.Tensor2D | undefined)[] = [];
    const values: (tf.Tensor2D | undefined)[] = [];
    let x = tf.reshape(x3, [batch * steps, dModel]) as tf.Tensor2D;
    layers.forEach((layer, index) => {
      const h = standardize(x, eps);
      const qkv = linear(h, layer.qkv);
      let q: tf.Tensor2D;
      let k: tf.Tensor2D;
      let v: tf.Tensor2D;
      if (rotateHalf) {
        const [qk, vv] = tf.split(qkv, [2 * dModel, dModel], 1) as tf.Tensor2D[];
        const rotated = applyRotary(
          tf.reshape(qk, [batch, steps, 2 * heads, headDim]),
          cos!,
          sin!,
          rotateHalf,
        );
        [q, k] = tf.split(tf.reshape(rotated, [batch * steps, 2 * dModel]), 2, 1) as tf.Tensor2D[];
        v = vv;
      } else {
        [q, k, v] = tf.split(qkv, 3, 1);
      }
      const rows = batch === 1 ? [{ q, k, v }] : rowsOf(q, k, v, batch);
      const outs = rows.map((row, r) => {
        const slot = index * batch + r;
        const previousKeys = state.keys[slot];
        const previousValues = state.values[slot];
        const newValues = tf.transpose(row.v);
        const allKeys = previousKeys ? (tf.concat([previousKeys, row.k], 0) as tf.Tensor2D) : row.k;
        const allValues = previousValues
          ? (tf.concat([previousValues, newValues], 1) as tf.Tensor2D)
          : newValues;
        keys.push(keep === 0 ? undefined : keep >= cached + steps ? allKeys : lastRows(allKeys, keep));
        values.push(
          keep === 0 ? undefined : keep >= cached + steps ? allValues : lastColumns(allValues, keep),
        );
        return attend(row.q, allKeys, allValues, mask, blockMask);
      });
      const attended = outs.length === 1 ? outs[0] : (tf.concat(outs, 0) as tf.Tensor2D);
      x = tf.add(x, linear(attended, layer.o));
      const m = standardize(x, eps);
      x = tf.add(x, mlp(m, layer.mlp, activation, false));
    });
    const logits = linear(standardize(x, eps), ctcHead);
    return { outputs: tf.reshape(logits, [batch, steps, vocabSize]) as tf.Tensor3D, keys, values };
  }

  /** [dModel, heads·steps]: 1 where head h's rows meet column block h, 0 elsewhere. */
  function blockDiagonalMask(steps: number): tf.Tensor2D {
    const mask = new Float32Array(dModel * heads * steps);
    for (let r = 0; r < dModel; r++) {
      const h = Math.floor(r / headDim);
      const row = r * heads * steps;
      mask.fill(1, row + h * steps, row + (h + 1) * steps);
    }
    return tf.tensor2d(mask, [dModel, heads * steps]);
  }

  function forward(state: MutableState, frames: tf.Tensor3D): StepResult {
    return tf.tidy(() => {
      const unchanged = {
        melTail: state.melTail,
        convTail: state.convTail,
        keys: state.keys,
        values: state.values,
      };
      const none = () => tf.zeros([state.batch, 0, vocabSize]) as tf.Tensor3D;
      if (frames.shape[1] === 0) return { outputs: none(), ...unchanged };
      const first = causalConv(state.melTail, frames, conv1);
      const second = first.out
        ? causalConv(state.convTail, first.out, conv2)
        : { out: undefined, tail: state.convTail };
      if (!second.out) return { ...unchanged, outputs: none(), melTail: first.tail, convTail: second.tail };
      return { melTail: first.tail, convTail: second.tail, ...transformer(state, second.out) };
    });
  }

  function checkFrames(state: MutableState, frames: tf.Tensor3D): void {
    const shape = frames instanceof tf.Tensor ? frames.shape : undefined;
    const ok =
      shape !== undefined &&
      shape.length === 3 &&
      frames.dtype === 'float32' &&
      shape[0] === state.batch &&
      shape[2] === nMels;
    if (!ok) {
      const got = shape === undefined ? String(frames) : `${frames.dtype} [${shape}]`;
      throw new InvalidArgumentError(
        `the streaming encoder takes float32 frames [batch ${state.batch}, steps, nMels ${nMels}]; got ${got}`,
      );
    }
  }

  /** Replaces a state tensor, freeing the old one unless the pass kept it. */
  function swap<T extends tf.Tensor>(old: T | undefined, next: T | undefined): T | undefined {
    if (old && old !== next) old.dispose();
    return next;
  }

  return {
    config,
    inputDim: nMels,
    outputDim: vocabSize,
    createState({ batch, maxLength, leftContext }: EncoderStateOptions): StreamingEncoderState {
      checkModel();
      checkPositiveInteger('batch', batch);
      checkPositiveInteger('maxLength', maxLength);
      const context = leftContext ?? Number.POSITIVE_INFINITY;
      if (!(context === Number.POSITIVE_INFINITY || (Number.isInteger(context) && context >= 0))) {
        throw new InvalidArgumentError(
          `leftContext must be a non-negative integer (output frames) or Infinity, got ${leftContext}`,
        );
      }
      const state: MutableState = {
        batch,
        maxLength,
        lengths: new Int32Array(batch),
        disposed: false,
        leftContext: context,
        outputLength: 0,
        melTail: tf.zeros([batch, 1, nMels]),
        convTail: tf.zeros([batch, 1, convChannels]),
        keys: Array.from({ length: layers.length * batch }, () => undefined),
        values: Array.from({ length: layers.length * batch }, () => undefined),
      };
      return state;
    },
    extendStep(state, frames) {
      checkModel();
      const s = state as MutableState;
      if (!(s?.lengths instanceof Int32Array) || !(s.melTail instanceof tf.Tensor || s.disposed)) {
        throw new InvalidArgumentError("extendStep needs a state from this encoder's createState");
      }
      if (s.disposed) {
        throw new DisposedError('the encoder state was disposed; create a new one with createState');
      }
      checkFrames(s, frames);
      const steps = frames.shape[1];
      checkCapacity(s.lengths, steps, s.maxLength, Number.POSITIVE_INFINITY);
      const result = forward(s, frames);
      // The pass succeeded: only now does the state change.
      s.melTail = swap(s.melTail, result.melTail)!;
      s.convTail = swap(s.convTail, result.convTail)!;
      s.keys = s.keys.map((old, i) => swap(old, result.keys[i]));
      s.values = s.values.map((old, i) => swap(old, result.values[i]));
      s.outputLength += result.outputs.shape[1];
      for (let r = 0; r < s.batch; r++) s.lengths[r] += steps;
      return { outputs: result.outputs, state };
    },
    disposeState(state) {
      const s = state as MutableState;
      if (s.disposed) return;
      s.disposed = true;
      tf.dispose([s.melTail, s.convTail, ...s.keys.filter(isTensor), ...s.values.filter(isTensor)]);
      s.keys = s.keys.map(() => undefined);
      s.values = s.values.map(() => undefined);
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      tf.dispose([conv1.filter, conv1.bias, conv2.filter, conv2.bias]);
      for (const layer of layers) {
        for (const l of [layer.qkv, layer.o, layer.mlp.up, layer.mlp.down]) disposeLinear(l);
      }
      disposeLinear(ctcHead);
      rotateHalf?.dispose();
    },
  };
}

/** Per batch row, its steps of q, k, v ([batch·steps, dModel] each). */
function rowsOf(q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, batch: number) {
  const split = (t: tf.Tensor2D) => tf.split(t, batch, 0) as tf.Tensor2D[];
  const [qs, ks, vs] = [split(q), split(k), split(v)];
  return qs.map((qr, r) => ({ q: qr, k: ks[r], v: vs[r] }));
}

function lastRows(t: tf.Tensor2D, keep: number): tf.Tensor2D {
  return tf.slice(t, [t.shape[0] - keep, 0], [keep, t.shape[1]]);
}

function lastColumns(t: tf.Tensor2D, keep: number): tf.Tensor2D {
  return tf.slice(t, [0, t.shape[1] - keep], [t.shape[0], keep]);
}

/** (x − mean) / √(variance + eps) over the last axis: LayerNorm without weight and bias, in 7 kernels. */
function standardize(x: tf.Tensor2D, eps: number): tf.Tensor2D {
  const centered = tf.sub(x, tf.mean(x, -1, true));
  const variance = tf.mean(tf.square(centered), -1, true);
  return tf.mul(centered, tf.rsqrt(tf.add(variance, eps)));
}

function isTensor(t: tf.Tensor | undefined): t is tf.Tensor {
  return t !== undefined;
}

function checkWeights(config: StreamingEncoderConfig, weights: StreamingEncoderWeights): void {
  const { nMels, convChannels: c, dModel: d, ffDim: ff, vocabSize: v } = config;
  const expect = (name: string, t: tf.Tensor | undefined, shape: number[]) => {
    if (
      !(t instanceof tf.Tensor) ||
      t.shape.length !== shape.length ||
      t.shape.some((n, i) => n !== shape[i])
    ) {
      throw new InvalidArgumentError(
        `weights.${name} must be [${shape}], got ${t instanceof tf.Tensor ? `[${t.shape}]` : String(t)}`,
      );
    }
  };
  const linearShape = (name: string, l: Linear | undefined, rows: number, cols: number) => {
    expect(`${name}.weight`, l?.weight, [rows, cols]);
    if (l?.bias !== undefined) expect(`${name}.bias`, l.bias, [cols]);
  };
  const normShape = (name: string, n: NormWeights | undefined) => {
    expect(`${name}.weight`, n?.weight, [d]);
    if (n?.bias !== undefined) expect(`${name}.bias`, n.bias, [d]);
  };
  expect('conv1.filter', weights.conv1?.filter, [CONV_KERNEL, nMels, c]);
  expect('conv1.bias', weights.conv1?.bias, [c]);
  expect('conv2.filter', weights.conv2?.filter, [CONV_KERNEL, c, d]);
  expect('conv2.bias', weights.conv2?.bias, [d]);
  if (weights.layers?.length !== config.layers) {
    throw new InvalidArgumentError(
      `config has ${config.layers} layers but weights have ${weights.layers?.length}`,
    );
  }
  weights.layers.forEach((layer, i) => {
    const p = `layers[${i}]`;
    normShape(`${p}.attnNorm`, layer.attnNorm);
    for (const key of ['q', 'k', 'v', 'o'] as const) linearShape(`${p}.${key}`, layer[key], d, d);
    normShape(`${p}.mlpNorm`, layer.mlpNorm);
    linearShape(`${p}.up`, layer.up, d, ff);
    linearShape(`${p}.down`, layer.down, ff, d);
  });
  normShape('finalNorm', weights.finalNorm);
  linearShape('ctcHead', weights.ctcHead, d, v);
}
