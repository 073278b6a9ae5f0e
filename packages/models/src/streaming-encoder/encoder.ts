import {
  type Activation,
  causalAttentionSupported,
  checkCapacity,
  checkPositiveInteger,
  DisposedError,
  disposeLinear,
  disposePackedLinear,
  type EncodeResult,
  type Encoder,
  type EncoderState,
  type EncoderStateOptions,
  foldNormIntoLinear,
  InvalidArgumentError,
  type Linear,
  type NormWeights,
  type PackedLinear,
  packLinear,
  rotaryInverseFrequencies,
  rotaryTables,
  rotateHalfMatrix,
  standardizeRowsSupported,
  useWasmKernels,
} from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import {
  CONV_KERNEL,
  CONV_STRIDE,
  checkStreamingEncoderConfig,
  type StreamingEncoderConfig,
} from './config.js';
import {
  appendsInPlace,
  createFrameCache,
  type FrameCache,
  reserveFrames,
  writeFrames,
} from './frame-cache.js';
import * as k from './kernels.js';
import type { StreamingConvWeights, StreamingEncoderWeights } from './weights.js';

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
 * A matmul as the pass runs it: the weight stored [1, in, out], the 3-D form
 * the fused-matmul kernel takes, so a call needs no reshape of the weight;
 * bias and (relu only) activation fused into the kernel.
 */
interface Dense {
  weight: tf.Tensor3D;
  bias?: tf.Tensor1D;
  activation: 'linear' | 'relu';
}

/**
 * A Dense as the pass runs it: on wasm packed for core's product (faster
 * than XNNPACK's at every row count, and most at the few rows of a streamed
 * chunk: 8 rows of GPT-2's MLP in 0.7 against 1.0 ms), relu as a kernel after it.
 */
type RunDense = Dense | { packed: PackedLinear; activation: Dense['activation'] };

/**
 * A layer as the forward pass uses it. The residual stream is kept at zero
 * mean over features: the conv front end's output is centered once, and o
 * and down, the two matmuls that add to the stream, have each row of their
 * weight and their bias centered (centerOutputs), so what they add has zero
 * mean. LayerNorm only ever reads the stream, and LayerNorm(x) is the same
 * for x and x − mean(x), so the outputs are unchanged; but a LayerNorm of a
 * zero-mean row is x / √(mean(x²) + eps), and its weight, bias and (against
 * rounding drift of the stream's mean) centering fold into the matmul after
 * it (prepareAfterNorm): the pass only scales rows (scaleRows). q and k are
 * one matmul (rotary positions apply to both at once), q pre-scaled by
 * 1/√headDim; the MLP's activation scales are folded as ActivationPlan says.
 */
interface PreparedLayer {
  qk: RunDense;
  v: RunDense;
  o: RunDense;
  up: RunDense;
  down: RunDense;
}

/**
 * An activation split so that most of it rides on the matmuls around it:
 * the kernel before it computes u·inScale (its weights and bias scaled),
 * `apply` maps that to act(u) / outScale, and the kernel after it has its
 * weights scaled by outScale. Exact gelu: u' = u/√2, act(u) = u'·(1 +
 * erf(u'))/√2, three kernels instead of five. relu rides on the matmul.
 */
interface ActivationPlan {
  inScale: number;
  outScale: number;
  fused: 'linear' | 'relu';
  /** Runs on the kernels module (so inside kernels.direct too). */
  apply(u: tf.Tensor): tf.Tensor;
  /** Scalars `apply` uses, freed with the encoder. */
  constants: tf.Tensor[];
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
   * 1, 1 or 2, nMels]: what the first conv's next output needs. Frame −1 is
   * the zero padding.
   */
  melTail: tf.Tensor4D;
  /**
   * The same for the second conv over the first conv's outputs, [batch, 1,
   * 1 or 2, convChannels] (activations as ActivationPlan.apply leaves them).
   */
  convTail: tf.Tensor4D;
  /**
   * Per layer, the keys and values of (at least) the last min(outputLength,
   * leftContext) output frames (see FrameCache); undefined before the first
   * frame.
   */
  keys: (FrameCache | undefined)[];
  values: (FrameCache | undefined)[];
}

/** What one forward pass replaces in the state. */
interface StepResult {
  outputs: tf.Tensor3D;
  melTail: tf.Tensor4D;
  convTail: tf.Tensor4D;
  /** New cache buffers (concatenating backends: all frames kept); undefined where the pass wrote into the state's own. */
  keys?: (tf.Tensor4D | undefined)[];
  values?: (tf.Tensor4D | undefined)[];
}

/**
 * Builds the encoder. Takes ownership of `weights` (q/k/v are fused, the
 * norms folded into the matmuls after them and the activations' scales into
 * the matmuls around them here, the originals disposed; `dispose()` frees the
 * rest). If the config or the weights' shapes are invalid it throws before
 * taking anything.
 */
export function createStreamingEncoder(
  config: StreamingEncoderConfig,
  weights: StreamingEncoderWeights,
): StreamingEncoder {
  checkStreamingEncoderConfig(config);
  checkWeights(config, weights);
  const { nMels, convChannels, dModel, heads, vocabSize, normEps: eps } = config;
  const headDim = dModel / heads;
  const act = activationPlan(config.activation);
  const conv1 = prepareConv(weights.conv1, 1, act);
  const conv2 = prepareConv(weights.conv2, act.outScale, act);
  const layers = weights.layers.map((layer): PreparedLayer => {
    const scale = 1 / Math.sqrt(headDim);
    const qk = tf.tidy(() => ({
      weight: tf.concat([tf.mul(layer.q.weight, scale), layer.k.weight], 1) as tf.Tensor2D,
      bias: tf.concat(
        [layer.q.bias ? tf.mul(layer.q.bias, scale) : tf.zeros([dModel]), layer.k.bias ?? tf.zeros([dModel])],
        0,
      ) as tf.Tensor1D,
    }));
    const norm = { weight: layer.attnNorm.weight.clone(), bias: layer.attnNorm.bias?.clone() };
    for (const l of [layer.q, layer.k]) disposeLinear(l);
    return {
      qk: forRun(prepareAfterNorm(layer.attnNorm, qk)),
      v: forRun(prepareAfterNorm(norm, layer.v)),
      o: forRun(centerOutputs(prepareDense(layer.o))),
      up: forRun(prepareAfterNorm(layer.mlpNorm, layer.up, act.inScale, act.fused)),
      down: forRun(centerOutputs(prepareDense(layer.down, act.outScale))),
    };
  });
  const ctcHead = forRun(prepareAfterNorm(weights.finalNorm, weights.ctcHead));
  // Row means as one matmul, and mean of squares + eps (the variance of a zero-mean row).
  const mean: Dense = { weight: tf.fill([1, dModel, 1], 1 / dModel) as tf.Tensor3D, activation: 'linear' };
  const variance: Dense = { weight: mean.weight.clone(), bias: tf.tensor1d([eps]), activation: 'linear' };
  const outScale = act.outScale === 1 ? undefined : tf.scalar(act.outScale);
  const rotary = config.positions.kind === 'rotary' ? config.positions : undefined;
  const inverseFrequencies = rotary && rotaryInverseFrequencies({ theta: rotary.theta, headDim });
  const rotateHalf = rotary && rotateHalfMatrix(headDim);
  let disposed = false;

  function checkModel(): void {
    if (disposed) throw new DisposedError('the streaming encoder was disposed');
  }

  /**
   * One causal conv (kernel 3, stride 2, one frame of zero padding on the
   * left) + activation over the frames that arrived, continuing from `tail`
   * ([batch, 1, frames, channels] both). Output i reads frames 2i−1 … 2i+1;
   * it is computed once frame 2i+1 is there. Returns the new outputs
   * (undefined if none) and the new tail.
   */
  function causalConv(
    tail: tf.Tensor4D,
    input: tf.Tensor4D,
    conv: PreparedConv,
  ): { out?: tf.Tensor4D; tail: tf.Tensor4D } {
    const x = k.concat([tail, input], 2);
    const [batch, , length, channels] = x.shape;
    const count = length < CONV_KERNEL ? 0 : Math.floor((length - CONV_KERNEL) / CONV_STRIDE) + 1;
    if (count === 0) return { tail: x };
    const u = k.fusedConv2d(x, conv.filter, conv.bias, [1, CONV_STRIDE], act.fused);
    const consumed = CONV_STRIDE * count;
    return {
      out: act.apply(u) as tf.Tensor4D,
      tail: k.slice(x, [0, 0, consumed, 0], [batch, 1, length - consumed, channels]),
    };
  }

  /** x [1, rows, in] · weight + bias (+ relu), in one kernel (two for relu after a packed product). */
  function dense(x: tf.Tensor3D, layer: RunDense): tf.Tensor3D {
    if (!('packed' in layer)) return k.fusedMatMul(x, layer.weight, layer.bias, layer.activation);
    const y = k.packedMatMul(x, layer.packed);
    return layer.activation === 'relu' ? k.relu(y) : y;
  }

  /**
   * x / √(mean(x²) + eps) over the last axis, x of zero mean: LayerNorm less
   * its weight and bias, which the matmul after it applies (see
   * PreparedLayer). One kernel where core has it (standardizeRows), else four.
   */
  function scaleRows(x: tf.Tensor3D): tf.Tensor3D {
    if (standardizeRowsSupported()) return k.rmsStandardize(x, eps);
    return k.mul(x, k.rsqrt(dense(k.square(x), variance)));
  }

  /**
   * cos and sin [1, batch·steps, 2·dModel] for q and k side by side, each
   * head's rotary angles repeated, so one multiply-add rotates both.
   */
  function rotaryTablesQk(batch: number, steps: number, start: number) {
    const positions = Int32Array.from({ length: steps }, (_, s) => start + s);
    const tables = rotaryTables(inverseFrequencies!, positions);
    const width = 2 * dModel;
    const cos = new Float32Array(batch * steps * width);
    const sin = new Float32Array(batch * steps * width);
    for (let r = 0; r < batch; r++) {
      for (let s = 0; s < steps; s++) {
        const row = (r * steps + s) * width;
        const angles = s * headDim;
        for (let block = 0; block < 2 * heads; block++) {
          cos.set(tables.cos.subarray(angles, angles + headDim), row + block * headDim);
          sin.set(tables.sin.subarray(angles, angles + headDim), row + block * headDim);
        }
      }
    }
    const shape: [number, number, number] = [1, batch * steps, width];
    return { cos: tf.tensor3d(cos, shape), sin: tf.tensor3d(sin, shape) };
  }

  /**
   * Attention of the new frames over the layer's cached keys and values plus
   * their own: q and k [1, batch·steps, dModel] each side by side in `qk`
   * (q pre-scaled, both rotated), v [1, batch·steps, dModel]. One kernel for
   * every row, head and frame (core's causalAttention; this encoder used to
   * run a pair of matmuls and a softmax per head, some 50 kernels a layer).
   * Returns [1, batch·steps, dModel]. On host backends the new frames go
   * into the state's caches (reserved by extendStep, past their lengths:
   * the state only counts them once the pass succeeds); elsewhere it also
   * returns the layer's new caches, trimmed to `keep` frames.
   */
  function attend(
    qk: tf.Tensor3D,
    v: tf.Tensor3D,
    state: MutableState,
    layer: number,
    keep: number,
  ): { out: tf.Tensor3D; keys?: tf.Tensor4D; values?: tf.Tensor4D } {
    const { batch, leftContext } = state;
    const steps = qk.shape[1] / batch;
    const perHead: [number, number, number, number] = [batch, steps, heads, headDim];
    const [q4, newKeys] = k.split(qk, 2, 2);
    const q = k.reshape<tf.Rank.R4>(q4, perHead);
    const keys = k.reshape<tf.Rank.R4>(newKeys, perHead);
    const values = k.reshape<tf.Rank.R4>(v, perHead);
    const window = leftContext + 1;
    const previousKeys = state.keys[layer];
    const previousValues = state.values[layer];
    const cached = previousKeys?.length ?? 0;
    const shaped = (mixed: tf.Tensor2D) => k.reshape<tf.Rank.R3>(mixed, [1, batch * steps, dModel]);
    if (appendsInPlace()) {
      writeFrames(previousKeys!, keys);
      writeFrames(previousValues!, values);
      return {
        out: shaped(k.causalAttention(q, previousKeys!.buffer, previousValues!.buffer, cached, window)),
      };
    }
    const allKeys = previousKeys ? k.concat([previousKeys.buffer, keys], 1) : keys;
    const allValues = previousValues ? k.concat([previousValues.buffer, values], 1) : values;
    const mixed = k.causalAttention(q, allKeys, allValues, cached, window);
    const length = cached + steps;
    const trim = (t: tf.Tensor4D) =>
      keep >= length ? t : k.slice(t, [0, length - keep, 0, 0], [batch, keep, heads, headDim]);
    return {
      out: shaped(mixed),
      keys: keep === 0 ? undefined : trim(allKeys),
      values: keep === 0 ? undefined : trim(allValues),
    };
  }

  /**
   * Transformer + CTC head over `x` [1, batch·steps, dModel] (centered, see
   * frontEnd), new output frames from state.outputLength on.
   */
  function transformer(
    state: MutableState,
    x0: tf.Tensor3D,
  ): Pick<StepResult, 'outputs' | 'keys' | 'values'> {
    const { batch } = state;
    const steps = x0.shape[1] / batch;
    const start = state.outputLength;
    const { leftContext } = state;
    const cached = state.keys[0]?.length ?? 0;
    const keep = Math.min(leftContext, cached + steps);
    const tables = inverseFrequencies ? rotaryTablesQk(batch, steps, start) : undefined;
    const keys: (tf.Tensor4D | undefined)[] = [];
    const values: (tf.Tensor4D | undefined)[] = [];
    let x = x0;
    // Where attention is not one kernel (webgpu, odd head sizes) it is composed of ops,
    // which direct() cannot run.
    const scope = causalAttentionSupported(headDim) ? k.direct : tf.tidy;
    layers.forEach((layer, index) => {
      // One scope per layer: its intermediates are freed before the
      // next layer runs (reused memory: about 10% faster streamed than one
      // scope for the pass); its output and caches go on to the pass's tidy.
      const made = scope(() => {
        const h = scaleRows(x);
        let qk = dense(h, layer.qk);
        const v = dense(h, layer.v);
        if (tables) {
          const flat = k.reshape<tf.Rank.R2>(qk, [batch * steps * 2 * heads, headDim]);
          const rotated = k.reshape<tf.Rank.R3>(k.matMul(flat, rotateHalf!), qk.shape);
          qk = k.add(k.mul(qk, tables.cos), k.mul(rotated, tables.sin));
        }
        const attended = attend(qk, v, state, index, keep);
        const y = k.add(x, dense(attended.out, layer.o));
        const hidden = act.apply(dense(scaleRows(y), layer.up)) as tf.Tensor3D;
        return { x: k.add(y, dense(hidden, layer.down)), keys: attended.keys, values: attended.values };
      });
      x = made.x;
      keys.push(made.keys);
      values.push(made.values);
    });
    const outputs = k.direct(() =>
      k.reshape<tf.Rank.R3>(dense(scaleRows(x), ctcHead), [batch, steps, vocabSize]),
    );
    return appendsInPlace() ? { outputs } : { outputs, keys, values };
  }

  /**
   * The conv front end over `frames`, continuing from the state's tails:
   * the new tails, and the encoder frames the input completes (if any) as
   * the residual stream starts, [1, batch·steps, dModel], centered (see
   * PreparedLayer).
   */
  function frontEnd(state: MutableState, frames: tf.Tensor3D) {
    return k.direct(() => {
      const [batch, steps] = frames.shape;
      const input = k.reshape<tf.Rank.R4>(frames, [batch, 1, steps, nMels]);
      const first = causalConv(state.melTail, input, conv1);
      if (!first.out) return { melTail: first.tail, convTail: state.convTail, x: undefined };
      const second = causalConv(state.convTail, first.out, conv2);
      if (!second.out) return { melTail: first.tail, convTail: second.tail, x: undefined };
      const out = outScale ? k.mul(second.out, outScale) : second.out;
      const x = k.reshape<tf.Rank.R3>(out, [1, batch * out.shape[2], dModel]);
      return { melTail: first.tail, convTail: second.tail, x: k.sub(x, dense(x, mean)) };
    });
  }

  function forward(state: MutableState, frames: tf.Tensor3D): StepResult {
    return tf.tidy(() => {
      const unchanged = { melTail: state.melTail, convTail: state.convTail };
      const none = () => tf.zeros([state.batch, 0, vocabSize]) as tf.Tensor3D;
      if (frames.shape[1] === 0) return { outputs: none(), ...unchanged };
      const { melTail, convTail, x } = frontEnd(state, frames);
      if (!x) return { ...unchanged, outputs: none(), melTail, convTail };
      return { melTail, convTail, ...transformer(state, x) };
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

  /**
   * Room in every layer's caches for `steps` more frames, keeping what
   * attention can still reach (see reserveFrames; the state may keep the
   * result whatever the pass does next).
   */
  function reserveCaches(state: MutableState, steps: number): void {
    const reserve = (cache: FrameCache | undefined) => {
      if (cache === undefined) return createFrameCache(state.batch, steps, heads, headDim);
      return reserveFrames(cache, steps, Math.min(state.leftContext, cache.length));
    };
    state.keys = state.keys.map(reserve);
    state.values = state.values.map(reserve);
  }

  /** Replaces a cache by a new buffer holding exactly the frames kept, freeing the old one unless the pass kept it. */
  function swapCache(old: FrameCache | undefined, next: tf.Tensor4D | undefined): FrameCache | undefined {
    if (old && old.buffer !== next) old.buffer.dispose();
    return next && { buffer: next, length: next.shape[1] };
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
        melTail: tf.zeros([batch, 1, 1, nMels]),
        convTail: tf.zeros([batch, 1, 1, convChannels]),
        keys: layers.map(() => undefined),
        values: layers.map(() => undefined),
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
      // Output frame j comes with input frame 4j + 3 (see above).
      const newFrames = Math.floor((s.lengths[0] + steps) / 4) - s.outputLength;
      if (appendsInPlace() && newFrames > 0) reserveCaches(s, newFrames);
      const result = forward(s, frames);
      // The pass succeeded: only now does the state change.
      s.melTail = swap(s.melTail, result.melTail)!;
      s.convTail = swap(s.convTail, result.convTail)!;
      if (result.keys && result.values) {
        const [newKeys, newValues] = [result.keys, result.values];
        s.keys = s.keys.map((old, i) => swapCache(old, newKeys[i]));
        s.values = s.values.map((old, i) => swapCache(old, newValues[i]));
      } else if (newFrames > 0) {
        for (const cache of [...s.keys, ...s.values]) cache!.length += newFrames;
      }
      s.outputLength += result.outputs.shape[1];
      for (let r = 0; r < s.batch; r++) s.lengths[r] += steps;
      return { outputs: result.outputs, state };
    },
    disposeState(state) {
      const s = state as MutableState;
      if (s.disposed) return;
      s.disposed = true;
      const caches = [...s.keys, ...s.values].flatMap((c) => (c ? [c.buffer] : []));
      tf.dispose([s.melTail, s.convTail, ...caches]);
      s.keys = s.keys.map(() => undefined);
      s.values = s.values.map(() => undefined);
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      tf.dispose([conv1.filter, conv1.bias, conv2.filter, conv2.bias]);
      for (const layer of layers) {
        for (const l of [layer.qk, layer.v, layer.o, layer.up, layer.down]) disposeDense(l);
      }
      disposeDense(ctcHead);
      disposeDense(mean);
      disposeDense(variance);
      tf.dispose([...act.constants, ...(outScale ? [outScale] : []), ...(rotateHalf ? [rotateHalf] : [])]);
    },
  };
}

/** A causal conv as the pass runs it: filter [1, kernel, in, out] for conv2d, activation scales folded in. */
interface PreparedConv {
  filter: tf.Tensor4D;
  bias: tf.Tensor1D;
}

/**
 * Takes ownership of `conv`. `inputScale` undoes the previous activation's
 * outScale; the activation's inScale applies to filter and bias.
 */
function prepareConv(conv: StreamingConvWeights, inputScale: number, act: ActivationPlan): PreparedConv {
  const prepared = tf.tidy(() => {
    const [kernel, input, output] = conv.filter.shape;
    return {
      filter: tf.reshape(tf.mul(conv.filter, inputScale * act.inScale), [
        1,
        kernel,
        input,
        output,
      ]) as tf.Tensor4D,
      bias: tf.mul(conv.bias, act.inScale) as tf.Tensor1D,
    };
  });
  tf.dispose([conv.filter, conv.bias]);
  return prepared;
}

/** Takes ownership of `layer`: weight reshaped [1, in, out] and multiplied by `scale` (bias kept). */
function prepareDense(layer: Linear, scale = 1): Dense {
  const weight = tf.tidy(() => {
    const [input, output] = layer.weight.shape;
    return tf.reshape(scale === 1 ? layer.weight : tf.mul(layer.weight, scale), [1, input, output]);
  }) as tf.Tensor3D;
  layer.weight.dispose();
  return { weight, bias: layer.bias, activation: 'linear' };
}

/**
 * The matmul after a LayerNorm, with the norm folded in: its weight and bias
 * (foldNormIntoLinear) and its centering. For z = x − mean(x),
 * z·W = x·(W − 1·mean of W's rows), as x·1 = d·mean(x): with each column of
 * W made to sum to zero the matmul centers by itself (the stream it reads is
 * zero-mean already, up to rounding that would otherwise accumulate over the
 * layers). Weight and bias then multiplied by `scale`. Takes ownership of
 * both.
 */
function prepareAfterNorm(
  norm: NormWeights,
  layer: Linear,
  scale = 1,
  activation: Dense['activation'] = 'linear',
): Dense {
  const folded = foldNormIntoLinear(norm, layer);
  const prepared = tf.tidy(() => {
    const [input, output] = folded.weight.shape;
    const centered = tf.sub(folded.weight, tf.mean(folded.weight, 0, true));
    return {
      weight: tf.reshape(tf.mul(centered, scale), [1, input, output]) as tf.Tensor3D,
      bias: folded.bias && (tf.mul(folded.bias, scale) as tf.Tensor1D),
    };
  });
  disposeLinear(folded);
  return { ...prepared, activation };
}

/**
 * Takes ownership of `layer`: each row of the weight and the bias centered,
 * so every output row has zero mean (see PreparedLayer).
 */
function centerOutputs(layer: Dense): Dense {
  const centered = tf.tidy(() => ({
    weight: tf.sub(layer.weight, tf.mean(layer.weight, 2, true)) as tf.Tensor3D,
    bias: layer.bias && (tf.sub(layer.bias, tf.mean(layer.bias)) as tf.Tensor1D),
  }));
  disposeDense(layer);
  return { ...centered, activation: layer.activation };
}

function disposeDense(layer: RunDense): void {
  if ('packed' in layer) {
    disposePackedLinear(layer.packed);
    return;
  }
  layer.weight.dispose();
  layer.bias?.dispose();
}

/** Takes ownership of `layer`: packed for core's wasm product where models pack (useWasmKernels). */
function forRun(layer: Dense): RunDense {
  if (!useWasmKernels()) return layer;
  const [, input, output] = layer.weight.shape;
  const weight = tf.reshape(layer.weight, [input, output]) as tf.Tensor2D;
  layer.weight.dispose();
  const packed = packLinear(layer.bias ? { weight, bias: layer.bias } : { weight });
  return { packed, activation: layer.activation };
}

/** The activations of core's `activate`, as ActivationPlans. */
function activationPlan(kind: Activation): ActivationPlan {
  switch (kind) {
    case 'gelu': {
      const one = tf.scalar(1);
      return {
        inScale: Math.SQRT1_2,
        outScale: Math.SQRT1_2,
        fused: 'linear',
        apply: (u) => k.mul(u, k.add(k.erf(u), one)),
        constants: [one],
      };
    }
    case 'relu':
      return { inScale: 1, outScale: 1, fused: 'relu', apply: (u) => u, constants: [] };
    case 'silu':
      return {
        inScale: 1,
        outScale: 1,
        fused: 'linear',
        apply: (u) => k.mul(u, k.sigmoid(u)),
        constants: [],
      };
    case 'gelu_tanh': {
      // x·σ(2·√(2/π)·(x + 0.044715·x³)), as core's activate computes gelu_tanh.
      const a = 2 * Math.sqrt(2 / Math.PI);
      const linear = tf.scalar(a);
      const cubic = tf.scalar(a * 0.044715);
      return {
        inScale: 1,
        outScale: 1,
        fused: 'linear',
        apply: (u) => k.mul(u, k.sigmoid(k.mul(u, k.add(linear, k.mul(k.square(u), cubic))))),
        constants: [linear, cubic],
      };
    }
  }
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
