import * as tf from '@tensorflow/tfjs-core';

/**
 * Core's own WGSL programs, run through tfjs-backend-webgpu (4.x) like its
 * own: the backend writes the shader's preamble (bindings, a `uniforms`
 * struct with every input's shape, `result`) and caches one pipeline per
 * shaderKey, so a key must name every constant baked into the code. On a
 * GPU driven from Node each dispatch costs tens of µs of host time (a GPT-2
 * small decode step was ~37 tfjs kernels per layer, 45 ms per token on an
 * H200), so one program per norm, attention and activation is where the
 * time goes down.
 */
export interface WebGpuProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  /** Every output axis on x: the backend then passes main() a flat global index. */
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  /** Adds `size` (the output's element count) to the uniforms. */
  size?: boolean;
  /** Components per element each input is declared with (4: array<vec4<f32>>); default 1. */
  variableComponents?: number[];
  /** Extra uniform fields, e.g. `eps : f32, `; their values follow the backend's own, in order. */
  uniforms?: string;
  getUserCode(): string;
}

export interface ProgramUniform {
  type: 'float32' | 'int32';
  data: number[];
}

interface WebGpuBackendPrograms {
  runWebGPUProgram(
    program: WebGpuProgram,
    inputs: tf.TensorInfo[],
    dtype: tf.DataType,
    uniforms?: ProgramUniform[],
    output?: tf.TensorInfo,
  ): tf.TensorInfo;
}

/**
 * The backend's program runner when the current backend is webgpu and core's
 * programs are on (SPECSTREAM_WEBGPU_KERNELS=off turns them off, for
 * comparing with tfjs's own kernels).
 */
export function webGpuPrograms(): WebGpuBackendPrograms | undefined {
  if (tf.getBackend() !== 'webgpu' || globalThis.process?.env?.SPECSTREAM_WEBGPU_KERNELS === 'off') {
    return undefined;
  }
  const backend = tf.backend() as unknown as Partial<WebGpuBackendPrograms>;
  return typeof backend.runWebGPUProgram === 'function' ? (backend as WebGpuBackendPrograms) : undefined;
}

/** webGpuPrograms() inside a kernel registered for webgpu, where their absence is a bug. */
export function requireWebGpuPrograms(): WebGpuBackendPrograms {
  const programs = webGpuPrograms();
  if (programs === undefined) throw new Error('core webgpu programs are unavailable on this backend');
  return programs;
}

/** Rows whose starts ride in uniforms; more go in a buffer (a uniform struct is small and its accessor a chain of ifs). */
const UNIFORM_ROWS = 16;

/** Per-row integers (cache starts) for a program, with the WGSL accessor `startOf(row)`. */
export interface RowStarts {
  /** Uniform fields to declare (empty when the starts are a buffer). */
  fields: string;
  accessor: string;
  uniforms: ProgramUniform[];
  /** Names the layout in shader keys. */
  key: string;
  /** Set when the starts are an input buffer: add it as the program's input named `starts`. */
  buffer?: tf.TensorInfo;
  /** Frees the buffer, if any, once the program is recorded. */
  release(): void;
}

/**
 * Up to 16 rows: vec4 uniform fields starts0, starts1, … (no upload of their
 * own: the backend writes uniforms for every dispatch anyway). More rows
 * (a batch of 20,000 in the sampling test): an int32 buffer, bound as the
 * input `starts`.
 */
export function rowStarts(values: ArrayLike<number>): RowStarts {
  if (values.length > UNIFORM_ROWS) {
    const backend = tf.backend();
    const shape = [values.length];
    const dataId = backend.write(Int32Array.from(values), shape, 'int32');
    return {
      fields: '',
      accessor: 'fn startOf(row : i32) -> i32 { return starts[row]; }',
      uniforms: [],
      key: 'buffer',
      buffer: { dataId, shape, dtype: 'int32' },
      // Safe right after recording: the backend keeps a buffer its queued commands use until they are submitted.
      release: () => backend.disposeData(dataId),
    };
  }
  const vectors = Math.max(1, Math.ceil(values.length / 4));
  const uniforms: ProgramUniform[] = [];
  for (let i = 0; i < vectors; i++) {
    const data = [0, 0, 0, 0];
    for (let j = 0; j < 4 && 4 * i + j < values.length; j++) data[j] = values[4 * i + j];
    uniforms.push({ type: 'int32', data });
  }
  const fields = Array.from({ length: vectors }, (_, i) => `starts${i} : vec4<i32>, `).join('');
  const branches = Array.from(
    { length: vectors },
    (_, i) => `if (row < ${4 * (i + 1)}) { return uniforms.starts${i}[row - ${4 * i}]; }`,
  ).join('\n      ');
  const accessor = `fn startOf(row : i32) -> i32 {
      ${branches}
      return 0;
    }`;
  return { fields, accessor, uniforms, key: `u${vectors}`, release() {} };
}

/** Runs `program` over `inputs` plus the starts' buffer when they have one, then releases it. */
export function runWithStarts(
  program: WebGpuProgram,
  inputs: tf.TensorInfo[],
  starts: RowStarts,
  uniforms: ProgramUniform[],
  output?: tf.TensorInfo,
): tf.TensorInfo {
  try {
    return requireWebGpuPrograms().runWebGPUProgram(
      starts.buffer ? { ...program, variableNames: [...program.variableNames, 'starts'] } : program,
      starts.buffer ? [...inputs, starts.buffer] : inputs,
      output?.dtype ?? 'float32',
      [...uniforms, ...starts.uniforms],
      output,
    );
  } finally {
    starts.release();
  }
}

/** Workgroups one dispatch axis takes (WebGPU's default limit): programs with a workgroup per row stop there. */
export const MAX_WORKGROUPS = 65535;

/**
 * WGSL for `workgroupSum(tid, value)`: the sum over a workgroup of `threads`
 * invocations (a power of two), returned to all of them, through the
 * workgroup array `lanes` it declares. Call it in uniform control flow.
 */
export function workgroupSumWgsl(threads: number): string {
  return `
    var<workgroup> lanes : array<f32, ${threads}>;

    fn workgroupSum(tid : i32, value : f32) -> f32 {
      workgroupBarrier();
      lanes[tid] = value;
      workgroupBarrier();
      for (var half = ${threads / 2}; half > 0; half = half / 2) {
        if (tid < half) { lanes[tid] = lanes[tid] + lanes[tid + half]; }
        workgroupBarrier();
      }
      return lanes[0];
    }`;
}

/** The program's main() header: the backend calls it with the flat global invocation index. */
export const MAIN = 'fn main(index : i32)';
