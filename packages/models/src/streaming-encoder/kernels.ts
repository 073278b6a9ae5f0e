/**
 * The few tfjs ops the streaming encoder's forward pass runs, calling their
 * kernels directly. Each tf.* op runs its kernel inside a scope of its own
 * (startScope/endScope plus argument conversion): on wasm about 2 µs per op,
 * as much as the kernel itself for the small tensors of a streamed chunk,
 * and a pass runs some 500 of them per call. Inputs must already be float32
 * tensors of compatible shapes (no conversion, no checks beyond the
 * kernels' own); shapes broadcast as the kernels do, like the ops.
 *
 * Inside `direct(fn)` the kernels run without the engine at all (see there).
 */
import {
  CAUSAL_ATTENTION,
  causalAttentionSupported,
  causalAttention as composedOrKernel,
  PACKED_MATMUL,
  type PackedLinear,
  packedMatMulCall,
  STANDARDIZE,
} from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';

/**
 * Backends whose kernels return plain TensorInfos, which direct() frees
 * itself (tfjs-node's may return engine tensors; webgpu is left to the
 * engine too).
 */
const DIRECT_BACKENDS = new Set(['wasm', 'cpu']);

/** Outputs of the kernels run inside the current direct() call; undefined outside. */
let arena: tf.TensorInfo[] | undefined;
const kernelFuncs = new Map<string, tf.KernelFunc>();
let kernelFuncsBackend: string | undefined;

function kernelFunc(kernel: string): tf.KernelFunc {
  const backendName = tf.getBackend();
  if (backendName !== kernelFuncsBackend) {
    kernelFuncs.clear();
    kernelFuncsBackend = backendName;
  }
  let func = kernelFuncs.get(kernel);
  if (func === undefined) {
    func = tf.getKernel(kernel, backendName)?.kernelFunc;
    if (func === undefined) throw new Error(`Kernel '${kernel}' not registered for backend '${backendName}'`);
    kernelFuncs.set(kernel, func);
  }
  return func;
}

function run<T extends tf.Tensor | tf.Tensor[]>(
  kernel: string,
  inputs: tf.NamedTensorMap | tf.Tensor[],
  attrs?: tf.NamedAttrMap,
): T {
  if (arena === undefined) return tf.engine().runKernel<T>(kernel, inputs as tf.NamedTensorMap, attrs);
  const out = kernelFunc(kernel)({
    inputs: inputs as tf.NamedTensorMap,
    attrs: attrs ?? {},
    backend: tf.backend(),
  });
  if (Array.isArray(out)) arena.push(...out);
  else arena.push(out);
  return out as unknown as T;
}

/**
 * Runs `fn` with its kernels called straight on the backend, skipping the
 * engine's bookkeeping (kernel lookup, scopes, tensor tracking; on wasm
 * about 5% of a streamed call of the 10 M encoder). What the kernels return
 * inside `fn` are the backend's bare outputs, typed as the tensors they
 * stand for: read their shape, pass them to the functions of this module,
 * return them; nothing else (no tf.* ops, no methods). When `fn` returns,
 * the outputs in its result (arrays and plain objects are searched) become
 * engine tensors, tracked by the enclosing tf.tidy like any op's output,
 * and every other output is freed; if `fn` throws, all are freed. Tensors
 * made outside pass through untouched. tf.memory() and tf.profile() do not
 * see the kernels or their outputs in between (the backend's numDataIds()
 * does). On backends not in DIRECT_BACKENDS it is tf.tidy(fn); nested, it
 * runs in the enclosing call.
 */
export function direct<T extends tf.TensorContainer>(fn: () => T): T {
  if (arena !== undefined) return fn();
  if (!DIRECT_BACKENDS.has(tf.getBackend())) return tf.tidy(fn);
  const outputs: tf.TensorInfo[] = [];
  arena = outputs;
  let result: T;
  try {
    result = fn();
  } catch (error) {
    free(outputs, new Map());
    throw error;
  } finally {
    arena = undefined;
  }
  const made = new Set(outputs);
  const adopted = new Map<tf.TensorInfo, tf.Tensor>();
  const adopt = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(adopt);
    if (value === null || typeof value !== 'object' || value instanceof tf.Tensor) return value;
    if (made.has(value as tf.TensorInfo)) {
      const info = value as tf.TensorInfo;
      let tensor = adopted.get(info);
      if (tensor === undefined) {
        tensor = tf.engine().makeTensorFromTensorInfo(info);
        adopted.set(info, tensor);
      }
      return tensor;
    }
    return Object.fromEntries(Object.entries(value).map(([key, v]) => [key, adopt(v)]));
  };
  const out = adopt(result) as T;
  free(outputs, adopted);
  return out;
}

function free(outputs: tf.TensorInfo[], keep: Map<tf.TensorInfo, tf.Tensor>): void {
  const backend = tf.backend();
  for (const info of outputs) if (!keep.has(info)) backend.disposeData(info.dataId);
}

export const add = <T extends tf.Tensor>(a: T, b: tf.Tensor): T => run<T>(tf.Add, { a, b });
export const sub = <T extends tf.Tensor>(a: T, b: tf.Tensor): T => run<T>(tf.Sub, { a, b });
export const mul = <T extends tf.Tensor>(a: T, b: tf.Tensor): T => run<T>(tf.Multiply, { a, b });
export const square = <T extends tf.Tensor>(x: T): T => run<T>(tf.Square, { x });
export const rsqrt = <T extends tf.Tensor>(x: T): T => run<T>(tf.Rsqrt, { x });
export const erf = <T extends tf.Tensor>(x: T): T => run<T>(tf.Erf, { x });
export const sigmoid = <T extends tf.Tensor>(x: T): T => run<T>(tf.Sigmoid, { x });
export const relu = <T extends tf.Tensor>(x: T): T => run<T>(tf.Relu, { x });

/** Softmax over the last axis. */
export const softmax = <T extends tf.Tensor>(logits: T): T =>
  run<T>(tf.Softmax, { logits }, { dim: logits.shape.length - 1 });

export const reshape = <R extends tf.Rank>(x: tf.Tensor, shape: tf.ShapeMap[R]): tf.Tensor<R> =>
  run<tf.Tensor<R>>(tf.Reshape, { x }, { shape });

/** [batch, rows, cols] → [batch, cols, rows]. */
export const transposeLast = (x: tf.Tensor3D): tf.Tensor3D =>
  run<tf.Tensor3D>(tf.Transpose, { x }, { perm: [0, 2, 1] });

export const concat = <T extends tf.Tensor>(xs: T[], axis: number): T =>
  xs.length === 1 ? xs[0] : run<T>(tf.Concat, xs, { axis });

export const split = <T extends tf.Tensor>(x: T, sizes: number | number[], axis: number): T[] =>
  run<T[]>(tf.SplitV, { x }, { numOrSizeSplits: sizes, axis });

export const slice = <T extends tf.Tensor>(x: T, begin: number[], size: number[]): T =>
  run<T>(tf.Slice, { x }, { begin, size });

/** a · b, both [1, rows, inner] / [1, inner, cols] or plain 2-D. */
export const matMul = <T extends tf.Tensor>(a: T, b: tf.Tensor): T =>
  run<T>(tf.BatchMatMul, { a, b }, { transposeA: false, transposeB: false });

/** a [1, rows, in] · b [1, in, out] + bias (+ relu): one kernel. */
export function fusedMatMul(
  a: tf.Tensor3D,
  b: tf.Tensor3D,
  bias: tf.Tensor1D | undefined,
  activation: 'linear' | 'relu',
): tf.Tensor3D {
  const inputs: tf.NamedTensorMap = bias ? { a, b, bias } : { a, b };
  return run<tf.Tensor3D>(tf._FusedMatMul, inputs, {
    transposeA: false,
    transposeB: false,
    activation,
    leakyreluAlpha: 0,
  });
}

/** conv2d (NHWC, 'valid', no dilation) + bias (+ relu): one kernel. */
export function fusedConv2d(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  bias: tf.Tensor1D,
  strides: [number, number],
  activation: 'linear' | 'relu',
): tf.Tensor4D {
  return run<tf.Tensor4D>(
    tf.FusedConv2D,
    { x, filter, bias },
    {
      strides,
      pad: 'valid',
      dataFormat: 'NHWC',
      dilations: [1, 1],
      activation,
      leakyreluAlpha: 0,
    },
  );
}

/**
 * core's causalAttention, keys and values slots-first [batch, slots, heads,
 * headDim], every row's new steps starting at slot `start`, each seeing at
 * most `window` slots. One kernel where core has one for the backend
 * (causalAttentionSupported); elsewhere core composes tfjs ops, which is
 * not allowed inside direct() (callers use tf.tidy there instead).
 */
export function causalAttention(
  q: tf.Tensor4D,
  keys: tf.Tensor4D,
  values: tf.Tensor4D,
  start: number,
  window: number,
): tf.Tensor2D {
  const starts = new Array<number>(q.shape[0]).fill(start);
  if (!causalAttentionSupported(q.shape[3])) {
    if (arena !== undefined)
      throw new Error('causalAttention: composed attention cannot run inside direct()');
    return composedOrKernel(q, keys, values, starts, { window, layout: 'slots' });
  }
  const attrs = { starts, window: Math.min(window, 2 ** 31 - 1), layout: 'slots' };
  return run<tf.Tensor2D>(CAUSAL_ATTENTION, { q, keys, values }, attrs);
}

/** x [batch, rows, in] · a layer packed for core's wasm product (+ its bias), in one kernel. */
export function packedMatMul(x: tf.Tensor3D, layer: PackedLinear): tf.Tensor3D {
  const { inputs, attrs } = packedMatMulCall(x, layer);
  return run<tf.Tensor3D>(PACKED_MATMUL, inputs, attrs);
}

/** core's one-kernel x / √(mean(x²) + eps) over the last axis (callers check standardizeRowsSupported). */
export const rmsStandardize = <T extends tf.Tensor>(x: T, eps: number): T =>
  run<T>(STANDARDIZE, { x }, { eps, center: false });
