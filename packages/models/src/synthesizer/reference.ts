import {
  applyRotary,
  CacheOverflowError,
  cachedAttention,
  causalMask,
  checkNotDisposed,
  checkPositiveInteger,
  createKvCache,
  type DenseLayer,
  DisposedError,
  disposeLinear,
  disposeNorm,
  InvalidArgumentError,
  type KvCache,
  kernelSet,
  type Linear,
  layerNorm,
  linear,
  mlp,
  type NormWeights,
  rotaryInverseFrequencies,
  rotaryTables,
  rotateHalfMatrix,
  type SynthesisResult,
  type Synthesizer,
  type SynthesizerState,
  type SynthesizerStateOptions,
  standardize,
  type TextBatch,
} from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { fuseLinears } from '../whisper/attention.js';
import { type PreparedDecoderLayer, prepareDecoderLayer } from '../whisper/decoder-layers.js';
import { checkSynthesizerConfig, type ReferenceSynthesizerConfig } from './config.js';
import type { ReferenceSynthesizerWeights } from './weights.js';

/**
 * The reference synthesizer: a Tacotron-style autoregressive transformer.
 *
 * - Text: token embedding → a *causal* transformer encoder (rotary
 *   positions) whose keys/values live in a KV cache, so `appendText` encodes
 *   only the new tokens and earlier encodings never change. Each appended
 *   chunk is also projected once, per decoder layer, to cross-attention
 *   keys/values (a second KV cache indexed by text position).
 * - Decoder: one step = prenet (2 ReLU layers) on the previous step's last
 *   frame (zeros before the first) → pre-norm layers of causal
 *   self-attention over earlier steps (KV-cached, rotary), cross-attention
 *   to the text, GELU MLP → final norm → a head emitting framesPerStep·nMels
 *   values (the step's frames, log10 mel power) and a stop logit.
 * - Streaming text (wait-k): step s attends to the first
 *   min(textLength, textLookahead + ⌊s·textTokensPerStep⌋) tokens, and may
 *   stop only if that is the whole text and endText was called. A step runs
 *   only once that prefix is final (see readySteps), so frames depend on the
 *   text alone, not on how it was appended.
 * - extendStep(state, steps) runs the AR loop `steps` times on device and
 *   syncs once (the stop logits) at the end.
 *
 * Not implemented (a trained model would want them): a postnet, dropout in
 * the prenet at inference, location-sensitive attention, rollback.
 */
export interface ReferenceSynthesizerState extends SynthesizerState {
  /** Text encoder self-attention keys/values, one layer per text layer. */
  readonly textCache: KvCache;
  /** Cross-attention keys/values of the encoded text, one layer per decoder layer. */
  readonly crossCache: KvCache;
  /** Decoder self-attention keys/values, one slot per decoder step. */
  readonly decoderCache: KvCache;
  /** [batch, nMels]: the frame the next step's prenet reads. */
  readonly lastFrame: tf.Tensor2D;
}

export interface ReferenceSynthesisResult extends SynthesisResult<ReferenceSynthesizerState> {
  /** [batch·steps], row-major: every step's stop logit (read back for the stop decision anyway). */
  stopLogits: Float32Array;
}

export interface ReferenceSynthesizer extends Synthesizer<ReferenceSynthesizerState> {
  readonly config: ReferenceSynthesizerConfig;
  extendStep(state: ReferenceSynthesizerState, steps: number): Promise<ReferenceSynthesisResult>;
  /** Text tokens step `step` (0-based decoder step) of a row with `textLength` tokens attends to. */
  visibleText(step: number, textLength: number): number;
}

interface MutableState {
  batch: number;
  maxFrames: number;
  maxTextTokens: number;
  lengths: Int32Array;
  textLengths: Int32Array;
  textEnded: boolean;
  done: boolean[];
  stopFrames: Int32Array;
  disposed: boolean;
  /** An extendStep is waiting for its stop logits: the state must not be touched meanwhile. */
  busy: boolean;
  textCache: KvCache;
  crossCache: KvCache;
  decoderCache: KvCache;
  lastFrame: tf.Tensor2D;
}

interface PreparedTextLayer {
  attnNorm: NormWeights;
  qkv: Linear;
  o: Linear;
  mlpNorm: NormWeights;
  mlp: { up: Linear; down: Linear };
}

/** Added to masked scores (as core's causalMask does). */
const MASKED = -1e9;
/** Cross-attention spans the visible text rounded up to this many slots (the inplace cache's read granularity). */
const CROSS_BUCKET = 64;

/** Takes ownership of `weights` (q/k/v are fused here, the originals disposed; dispose() frees the rest). */
export function createReferenceSynthesizer(
  config: ReferenceSynthesizerConfig,
  weights: ReferenceSynthesizerWeights,
): ReferenceSynthesizer {
  checkSynthesizerConfig(config);
  checkWeights(config, weights);
  const { hiddenSize, heads, nMels, framesPerStep: r, normEps: eps, vocabSize } = config;
  const headDim = hiddenSize / heads;
  const scale = 1 / Math.sqrt(headDim);
  const textLayers: PreparedTextLayer[] = weights.textLayers.map((l) => ({
    attnNorm: l.attnNorm,
    qkv: fuseLinears([{ layer: l.q, factor: scale }, { layer: l.k }, { layer: l.v }]),
    o: l.o,
    mlpNorm: l.mlpNorm,
    mlp: { up: l.up, down: l.down },
  }));
  // The decoder layer is Whisper's (self-attention, cross-attention, MLP): same preparation.
  const decoderLayers: PreparedDecoderLayer[] = weights.decoderLayers.map((l) =>
    prepareDecoderLayer(
      {
        attnNorm: l.selfNorm,
        attn: { q: l.q, k: l.k, v: l.v, o: l.o },
        crossNorm: l.crossNorm,
        cross: { q: l.crossQ, k: l.crossK, v: l.crossV, o: l.crossO },
        mlpNorm: l.mlpNorm,
        fc1: l.up,
        fc2: l.down,
      },
      scale,
      kernelSet(),
    ),
  );

  const { embedTokens, textNorm, prenet, finalNorm, frameHead, stopHead } = weights;
  const inverseFrequencies = rotaryInverseFrequencies({ theta: config.rotaryTheta, headDim });
  const rotateHalf = rotateHalfMatrix(headDim);
  const stopLogitThreshold = Math.log(config.stopThreshold / (1 - config.stopThreshold));
  const rateF32 = Math.fround(config.textTokensPerStep);
  let disposed = false;

  const checkModel = () => {
    if (disposed) throw new InvalidArgumentError('the synthesizer was disposed');
  };
  const checkIdle = (s: MutableState) => {
    if (s.busy) {
      throw new InvalidArgumentError(
        'extendStep is still running on this state: await it before changing the state',
      );
    }
  };

  function visibleText(step: number, textLength: number): number {
    return Math.min(textLength, config.textLookahead + textTokensBy(step));
  }

  /**
   * ⌊step·textTokensPerStep⌋ in float32, as the PyTorch twin computes it (a long tensor times a
   * float is a float32 product): in float64 it differs for some rates (0.29 at step 100: 29 against
   * 28), and a trained model must see the text it was trained to see. step·rate of two float32
   * values is exact in float64, so fround rounds it once, as float32 multiplication does.
   */
  function textTokensBy(step: number): number {
    return Math.floor(Math.fround(step * rateF32));
  }

  function createState(options: SynthesizerStateOptions): ReferenceSynthesizerState {
    checkModel();
    const { batch, maxFrames, maxTextTokens = config.maxTextTokens } = options;
    checkPositiveInteger('batch', batch);
    checkPositiveInteger('maxFrames', maxFrames);
    checkPositiveInteger('maxTextTokens', maxTextTokens);
    if (maxFrames < r) {
      throw new InvalidArgumentError(`maxFrames ${maxFrames} is less than one step's ${r} frames`);
    }
    const shape = { batch, kvHeads: heads, headDim };
    const caches: KvCache[] = [];
    try {
      caches.push(
        createKvCache({ ...shape, layers: textLayers.length, capacity: maxTextTokens }, config.kvCache),
      );
      caches.push(
        createKvCache({ ...shape, layers: decoderLayers.length, capacity: maxTextTokens }, config.kvCache),
      );
      caches.push(
        createKvCache(
          { ...shape, layers: decoderLayers.length, capacity: Math.floor(maxFrames / r) },
          config.kvCache,
        ),
      );
    } catch (error) {
      for (const c of caches) c.dispose();
      throw error;
    }
    const state: MutableState = {
      batch,
      maxFrames,
      maxTextTokens,
      lengths: new Int32Array(batch),
      textLengths: new Int32Array(batch),
      textEnded: false,
      done: new Array(batch).fill(false),
      stopFrames: new Int32Array(batch).fill(-1),
      disposed: false,
      busy: false,
      textCache: caches[0],
      crossCache: caches[1],
      decoderCache: caches[2],
      lastFrame: tf.zeros([batch, nMels]),
    };
    return state;
  }

  function rotary(positions: Int32Array, batch: number, steps: number): { cos: tf.Tensor; sin: tf.Tensor } {
    const tables = rotaryTables(inverseFrequencies, positions);
    return {
      cos: tf.tensor4d(tables.cos, [batch, steps, 1, headDim]),
      sin: tf.tensor4d(tables.sin, [batch, steps, 1, headDim]),
    };
  }

  /** q [batch, steps, heads, headDim] and k/v as the cache stores them, [batch, heads, steps, headDim]. */
  function selfProjections(
    h: tf.Tensor2D,
    qkvLayer: DenseLayer,
    batch: number,
    steps: number,
    angles: { cos: tf.Tensor; sin: tf.Tensor },
  ): { q: tf.Tensor4D; k: tf.Tensor4D; v: tf.Tensor4D } {
    const qkv = tf.reshape(linear(h, qkvLayer), [batch, steps, 3 * heads, headDim]);
    const [qk, v] = tf.split(qkv, [2 * heads, heads], 2) as tf.Tensor4D[];
    const [q, k] = tf.split(applyRotary(qk, angles.cos, angles.sin, rotateHalf), 2, 2) as tf.Tensor4D[];
    return { q, k: headsFirst(k, steps), v: headsFirst(v, steps) };
  }

  /** [batch, steps, heads, headDim] → [batch, heads, steps, headDim]; one step needs only a reshape. */
  function headsFirst(x: tf.Tensor4D, steps: number): tf.Tensor4D {
    const [batch, , h, dim] = x.shape;
    return steps === 1 ? tf.reshape(x, [batch, h, 1, dim]) : tf.transpose(x, [0, 2, 1, 3]);
  }

  /** Encodes `steps` new tokens per row (ids padded row-major) into the text and cross caches. */
  function encodeText(s: MutableState, ids: Int32Array, steps: number): void {
    const { batch, textLengths: starts } = s;
    const positions = new Int32Array(batch * steps);
    for (let b = 0; b < batch; b++) for (let j = 0; j < steps; j++) positions[b * steps + j] = starts[b] + j;
    const readLength = Math.max(...starts) + steps;
    tf.tidy(() => {
      const angles = rotary(positions, batch, steps);
      let x = tf.gather(embedTokens, ids) as tf.Tensor2D;
      let mask: tf.Tensor | undefined;
      textLayers.forEach((layer, index) => {
        const h = layerNorm(x, layer.attnNorm, eps) as tf.Tensor2D;
        const { q, k, v } = selfProjections(h, layer.qkv, batch, steps, angles);
        s.textCache.write(index, k, v, starts);
        const { keys, values } = s.textCache.read(index, readLength);
        mask ??= causalMask(starts, steps, keys.shape[2]);
        x = tf.add(x, linear(cachedAttention(q, keys, values, mask), layer.o));
        // The text layer's norms are applied here, weight and bias (nothing is folded into its products).
        const h2 = layerNorm(x, layer.mlpNorm, eps) as tf.Tensor2D;
        x = tf.add(x, mlp(h2, layer.mlp, 'gelu', false));
      });
      const encoded = layerNorm(x, textNorm, eps) as tf.Tensor2D;
      decoderLayers.forEach((layer, index) => {
        const kv = tf.reshape(linear(encoded, layer.crossKv), [batch, steps, 2 * heads, headDim]);
        const [k, v] = tf.split(kv, 2, 2) as tf.Tensor4D[];
        s.crossCache.write(index, headsFirst(k, steps), headsFirst(v, steps), starts);
      });
    });
  }

  /**
   * The text slots a step's cross-attention spans: the text it sees rounded up to a bucket,
   * never however much text happens to be appended. Softmax and products over other lengths
   * round differently (on wasm, in the last bits), and Griffin-Lim carries such differences to
   * the samples, so with this the frames are bit for bit the same however the text arrived.
   */
  function crossLength(seen: number, capacity: number): number {
    return Math.min(capacity, Math.ceil(seen / CROSS_BUCKET) * CROSS_BUCKET);
  }

  /** Each layer's keys/values read from the cache, cut (or zero-padded: masked) to a length, once per length. */
  function crossReads(read: ReadonlyArray<{ keys: tf.Tensor4D; values: tf.Tensor4D }>) {
    const byLength = new Map<number, Array<{ keys: tf.Tensor4D; values: tf.Tensor4D }>>();
    const fit = (t: tf.Tensor4D, length: number): tf.Tensor4D => {
      const [batch, h, held, dim] = t.shape;
      if (held === length) return t;
      if (held > length) return tf.slice(t, [0, 0, 0, 0], [batch, h, length, dim]);
      return tf.pad(t, [
        [0, 0],
        [0, 0],
        [0, length - held],
        [0, 0],
      ]);
    };
    return (length: number) => {
      let cross = byLength.get(length);
      if (cross === undefined) {
        cross = read.map(({ keys, values }) => ({ keys: fit(keys, length), values: fit(values, length) }));
        byLength.set(length, cross);
      }
      return cross;
    };
  }

  /** Additive cross-attention mask [batch, 1, 1, 1, length]: row b sees its first visible[b] text slots. */
  function textMask(visible: Int32Array, length: number): tf.Tensor {
    const mask = new Float32Array(visible.length * length);
    for (let b = 0; b < visible.length; b++) mask.fill(MASKED, b * length + visible[b], (b + 1) * length);
    return tf.tensor(mask, [visible.length, 1, 1, 1, length]);
  }

  /** One decoder step for every row at decoder position `step`: frames [batch, r·nMels], stop logits [batch]. */
  function decoderStep(
    s: MutableState,
    previous: tf.Tensor2D,
    cross: ReadonlyArray<{ keys: tf.Tensor4D; values: tf.Tensor4D }>,
    step: number,
  ): { frames: tf.Tensor2D; stop: tf.Tensor1D } {
    const { batch } = s;
    const positions = new Int32Array(batch).fill(step);
    const visible = new Int32Array(batch);
    for (let b = 0; b < batch; b++) visible[b] = visibleText(step, s.textLengths[b]);
    return tf.tidy(() => {
      let x = tf.relu(linear(tf.relu(linear(previous, prenet[0])) as tf.Tensor2D, prenet[1])) as tf.Tensor2D;
      const angles = rotary(positions, batch, 1);
      const crossMask = textMask(visible, cross[0].keys.shape[2]);
      let mask: tf.Tensor | undefined;
      decoderLayers.forEach((layer, index) => {
        // The decoder layer's norms are folded into the products after them (prepareDecoderLayer).
        const h = standardize('layer', x, eps) as tf.Tensor2D;
        const { q, k, v } = selfProjections(h, layer.qkv, batch, 1, angles);
        s.decoderCache.write(index, k, v, positions);
        const { keys, values } = s.decoderCache.read(index, step + 1);
        mask ??= causalMask(positions, 1, keys.shape[2]);
        x = tf.add(x, linear(cachedAttention(q, keys, values, mask), layer.o));
        const hc = standardize('layer', x, eps) as tf.Tensor2D;
        const qc = tf.reshape(linear(hc, layer.crossQ), [batch, 1, heads, headDim]) as tf.Tensor4D;
        x = tf.add(
          x,
          linear(cachedAttention(qc, cross[index].keys, cross[index].values, crossMask), layer.crossO),
        );
        const h2 = standardize('layer', x, eps) as tf.Tensor2D;
        x = tf.add(x, mlp(h2, layer.mlp, 'gelu', false));
      });
      const y = layerNorm(x, finalNorm, eps) as tf.Tensor2D;
      return { frames: linear(y, frameHead), stop: tf.reshape(linear(y, stopHead), [batch]) as tf.Tensor1D };
    });
  }

  function readySteps(state: ReferenceSynthesizerState): number {
    const s = state as MutableState;
    checkNotDisposed(s);
    let ready = Number.POSITIVE_INFINITY;
    for (let b = 0; b < s.batch; b++) {
      const left = Math.floor((s.maxFrames - s.lengths[b]) / r);
      if (s.textEnded) {
        ready = Math.min(ready, left);
        continue;
      }
      // Not ended: step k is final only if text exists past what it sees (so neither
      // its visible prefix nor its permission to stop can change).
      const first = s.lengths[b] / r;
      let k = 0;
      while (k < left && config.textLookahead + textTokensBy(first + k) < s.textLengths[b]) k++;
      ready = Math.min(ready, k);
    }
    return ready;
  }

  function appendText(state: ReferenceSynthesizerState, tokens: TextBatch): void {
    const s = state as MutableState;
    checkModel();
    checkNotDisposed(s);
    checkIdle(s);
    if (s.textEnded) throw new InvalidArgumentError('the text was ended (endText): no more can be appended');
    if (!Array.isArray(tokens) || tokens.length !== s.batch) {
      throw new InvalidArgumentError(
        `tokens must have one row per batch row: expected ${s.batch} rows, got ${Array.isArray(tokens) ? tokens.length : typeof tokens}`,
      );
    }
    let steps = 0;
    for (let b = 0; b < s.batch; b++) {
      const row = tokens[b];
      if (row === null || typeof row !== 'object' || typeof row.length !== 'number') {
        throw new InvalidArgumentError(`tokens row ${b} is not an array of ids`);
      }
      for (let j = 0; j < row.length; j++) {
        const id = row[j];
        if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
          throw new InvalidArgumentError(
            `token id ${id} at row ${b}, index ${j} is outside the vocabulary [0, ${vocabSize})`,
          );
        }
      }
      steps = Math.max(steps, row.length);
    }
    if (steps === 0) return;
    for (let b = 0; b < s.batch; b++) {
      // Rows are padded to the longest row of the call; the padding is written (then masked) too.
      if (s.textLengths[b] + steps > s.maxTextTokens) {
        throw new CacheOverflowError(
          `row ${b} would reach ${s.textLengths[b] + steps} text slots (${s.textLengths[b]} held + ${steps}, rows padded to the longest), past maxTextTokens ${s.maxTextTokens}`,
        );
      }
    }
    const ids = new Int32Array(s.batch * steps);
    for (let b = 0; b < s.batch; b++) {
      const row = tokens[b];
      for (let j = 0; j < row.length; j++) ids[b * steps + j] = row[j];
    }
    encodeText(s, ids, steps);
    for (let b = 0; b < s.batch; b++) s.textLengths[b] += tokens[b].length;
  }

  function endText(state: ReferenceSynthesizerState): void {
    const s = state as MutableState;
    checkModel();
    checkNotDisposed(s);
    checkIdle(s);
    if (s.textEnded) return;
    for (let b = 0; b < s.batch; b++) {
      if (s.textLengths[b] === 0)
        throw new InvalidArgumentError(`row ${b} has no text: append some before endText`);
    }
    s.textEnded = true;
  }

  async function extendStep(
    state: ReferenceSynthesizerState,
    steps: number,
  ): Promise<ReferenceSynthesisResult> {
    const s = state as MutableState;
    checkModel();
    checkNotDisposed(s);
    checkIdle(s);
    checkPositiveInteger('steps', steps);
    for (let b = 0; b < s.batch; b++) {
      if (s.lengths[b] + steps * r > s.maxFrames) {
        throw new CacheOverflowError(
          `row ${b} would reach ${s.lengths[b] + steps * r} frames (${steps} steps of ${r}), past the state's maxFrames ${s.maxFrames}`,
        );
      }
    }
    const ready = readySteps(s);
    if (steps > ready) {
      throw new InvalidArgumentError(
        `only ${ready} of the ${steps} steps asked for can run with the text appended so far: append more text or call endText`,
      );
    }
    const first = s.lengths[0] / r;
    const textRead = Math.max(...s.textLengths);
    const out = tf.tidy(() => {
      const read = decoderLayers.map((_, index) => s.crossCache.read(index, textRead));
      const crossFor = crossReads(read);
      let previous = s.lastFrame;
      const groups: tf.Tensor2D[] = [];
      const stops: tf.Tensor1D[] = [];
      for (let i = 0; i < steps; i++) {
        let seen = 0;
        for (let b = 0; b < s.batch; b++) seen = Math.max(seen, visibleText(first + i, s.textLengths[b]));
        const cross = crossFor(crossLength(seen, s.maxTextTokens));
        const { frames, stop } = decoderStep(s, previous, cross, first + i);
        groups.push(frames);
        stops.push(stop);
        previous = tf.slice(frames, [0, (r - 1) * nMels], [s.batch, nMels]);
      }
      const frames = tf.reshape(groups.length === 1 ? groups[0] : tf.concat(groups, 1), [
        s.batch,
        steps * r,
        nMels,
      ]) as tf.Tensor3D;
      return { frames, stops: tf.stack(stops, 1) as tf.Tensor2D, last: previous };
    });
    // Asynchronous read: webgpu in Node has no synchronous download path.
    let stopLogits: Float32Array;
    s.busy = true;
    try {
      stopLogits = (await out.stops.data()) as Float32Array;
      if (s.disposed)
        throw new DisposedError('the synthesizer state was disposed while extendStep was running');
    } catch (error) {
      tf.dispose([out.frames, out.last]);
      throw error;
    } finally {
      out.stops.dispose();
      s.busy = false;
    }
    // Success: only now does the state change.
    s.lastFrame.dispose();
    s.lastFrame = out.last;
    const validFrames: number[] = [];
    for (let b = 0; b < s.batch; b++) {
      if (s.done[b]) {
        validFrames.push(0);
        continue;
      }
      let valid = steps * r;
      for (let i = 0; i < steps; i++) {
        const step = first + i;
        const seesAll = s.textEnded && visibleText(step, s.textLengths[b]) === s.textLengths[b];
        if (seesAll && stopLogits[b * steps + i] > stopLogitThreshold) {
          valid = (i + 1) * r;
          s.done[b] = true;
          s.stopFrames[b] = s.lengths[b] + valid;
          break;
        }
      }
      validFrames.push(valid);
    }
    for (let b = 0; b < s.batch; b++) s.lengths[b] += steps * r;
    return { frames: out.frames, done: [...s.done], validFrames, state, stopLogits };
  }

  function disposeState(state: ReferenceSynthesizerState): void {
    const s = state as MutableState;
    if (s.disposed) return;
    s.textCache.dispose();
    s.crossCache.dispose();
    s.decoderCache.dispose();
    s.lastFrame.dispose();
    s.disposed = true;
  }

  return {
    config,
    vocabSize,
    nMels,
    framesPerStep: r,
    sampleRate: config.sampleRate,
    hop: config.hop,
    maxTextTokens: config.maxTextTokens,
    visibleText,
    createState,
    appendText,
    endText,
    readySteps,
    extendStep,
    disposeState,
    dispose() {
      if (disposed) return;
      disposed = true;
      for (const l of textLayers) {
        disposeNorm(l.attnNorm);
        disposeNorm(l.mlpNorm);
        for (const lin of [l.qkv, l.o, l.mlp.up, l.mlp.down]) disposeLinear(lin);
      }
      for (const l of decoderLayers) {
        for (const lin of [l.qkv, l.o, l.crossQ, l.crossKv, l.crossO, l.mlp.up, l.mlp.down])
          disposeLinear(lin);
      }
      embedTokens.dispose();
      disposeNorm(textNorm);
      disposeNorm(finalNorm);
      for (const lin of [...prenet, frameHead, stopHead]) disposeLinear(lin);
      rotateHalf.dispose();
    },
  };
}

function checkWeights(config: ReferenceSynthesizerConfig, weights: ReferenceSynthesizerWeights): void {
  const expect = (what: string, actual: readonly number[], expected: readonly number[]) => {
    if (actual.length !== expected.length || actual.some((v, i) => v !== expected[i])) {
      throw new InvalidArgumentError(`${what} has shape [${actual}], expected [${expected}]`);
    }
  };
  const { hiddenSize: d, nMels, framesPerStep: r } = config;
  if (weights.textLayers.length !== config.textLayers) {
    throw new InvalidArgumentError(
      `config has ${config.textLayers} text layers but weights have ${weights.textLayers.length}`,
    );
  }
  if (weights.decoderLayers.length !== config.decoderLayers) {
    throw new InvalidArgumentError(
      `config has ${config.decoderLayers} decoder layers but weights have ${weights.decoderLayers.length}`,
    );
  }
  expect('embedTokens', weights.embedTokens.shape, [config.vocabSize, d]);
  expect('prenet[0]', weights.prenet[0].weight.shape, [nMels, config.prenetSize]);
  expect('prenet[1]', weights.prenet[1].weight.shape, [config.prenetSize, d]);
  expect('frameHead', weights.frameHead.weight.shape, [d, r * nMels]);
  expect('stopHead', weights.stopHead.weight.shape, [d, 1]);
}
