import * as tf from '@tensorflow/tfjs-core';
import { kernelSetAllowed } from '../setting.js';
import { recordingRunner } from './pass-tape.js';

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
  /** Set by the backend when it runs the program: the compiled pipeline (pass-tape.ts keeps it). */
  pipeline?: unknown;
}

export interface ProgramUniform {
  type: 'float32' | 'int32';
  data: number[];
}

export interface WebGpuBackendPrograms {
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
 * programs are on (SPECSTREAM_KERNELS naming another set, e.g. reference,
 * turns them off, for comparing with tfjs's own kernels).
 */
export function webGpuPrograms(): WebGpuBackendPrograms | undefined {
  if (tf.getBackend() !== 'webgpu' || !kernelSetAllowed('webgpu')) return undefined;
  const backend = tf.backend() as unknown as Partial<WebGpuBackendPrograms>;
  return typeof backend.runWebGPUProgram === 'function' ? (backend as WebGpuBackendPrograms) : undefined;
}

/** webGpuPrograms() inside a kernel registered for webgpu, where their absence is a bug. */
export function requireWebGpuPrograms(): WebGpuBackendPrograms {
  const programs = webGpuPrograms();
  if (programs === undefined) throw new Error('core webgpu programs are unavailable on this backend');
  // While a pass is being recorded (pass-tape.ts), a runner that also records each call.
  return recordingRunner(programs);
}

/** Integers that ride in uniforms; more go in a buffer (a uniform struct is small and its accessor a chain of ifs). */
const UNIFORM_INTS = 16;

/** Small per-row or per-token integers (cache starts, token ids) for a program, with a WGSL accessor. */
export interface IntTable {
  /** Uniform fields to declare (empty when the values are a buffer). */
  fields: string;
  /** WGSL `fn <accessor>(i : i32) -> i32`. */
  accessor: string;
  uniforms: ProgramUniform[];
  /** Names the layout in shader keys. */
  key: string;
  /** The input's name when the values are a buffer. */
  name: string;
  /** Set when the values are a buffer: runWithStarts binds it as the input `name`, after the others. */
  buffer?: tf.TensorInfo;
  /** Frees the buffer if this table wrote it, once the program is recorded. */
  release(): void;
}

/** Per-row cache starts, read in WGSL as `startOf(row)`. */
export type RowStarts = IntTable;

/**
 * Up to 16 values: vec4 uniform fields name0, name1, … (no upload of their
 * own: the backend writes uniforms for every dispatch anyway, while an
 * uploaded tensor costs a mapped staging buffer and a copy). More values (a
 * batch of 20,000 in the sampling test, a prefill's ids): an int32 buffer,
 * bound as the input `name`; a tensor already on the device is bound as it is.
 */
export function intTable(
  name: string,
  accessorName: string,
  values: ArrayLike<number> | tf.TensorInfo,
): IntTable {
  const read = `fn ${accessorName}(i : i32) -> i32 { return ${name}[i]; }`;
  if ('dataId' in values) {
    return { fields: '', accessor: read, uniforms: [], key: 'buffer', name, buffer: values, release() {} };
  }
  if (values.length > UNIFORM_INTS) {
    const backend = tf.backend();
    const shape = [values.length];
    const dataId = backend.write(Int32Array.from(values), shape, 'int32');
    return {
      fields: '',
      accessor: read,
      uniforms: [],
      key: 'buffer',
      name,
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
  const fields = Array.from({ length: vectors }, (_, i) => `${name}${i} : vec4<i32>, `).join('');
  const branches = Array.from(
    { length: vectors },
    (_, i) => `if (i < ${4 * (i + 1)}) { return uniforms.${name}${i}[i - ${4 * i}]; }`,
  ).join('\n      ');
  const accessor = `fn ${accessorName}(i : i32) -> i32 {
      ${branches}
      return 0;
    }`;
  return { fields, accessor, uniforms, key: `u${vectors}`, name, release() {} };
}

/** Per-row cache starts as `startOf(row)`: see intTable. */
export function rowStarts(values: ArrayLike<number> | tf.TensorInfo): RowStarts {
  return intTable('starts', 'startOf', values);
}

/**
 * Runs `program` over `inputs` plus the tables' buffers (in the tables'
 * order, after `inputs`), with `uniforms` then each table's uniform fields,
 * then releases what the tables wrote. The program declares its uniform
 * fields in that order.
 */
export function runWithStarts(
  program: WebGpuProgram,
  inputs: tf.TensorInfo[],
  tables: IntTable | readonly IntTable[],
  uniforms: ProgramUniform[],
  output?: tf.TensorInfo,
): tf.TensorInfo {
  const all = 'fields' in tables ? [tables as IntTable] : (tables as readonly IntTable[]);
  const buffered = all.filter((t) => t.buffer !== undefined);
  try {
    return requireWebGpuPrograms().runWebGPUProgram(
      buffered.length > 0
        ? {
            ...program,
            variableNames: [...program.variableNames, ...buffered.map((t) => t.name)],
            ...(program.variableComponents
              ? { variableComponents: [...program.variableComponents, ...buffered.map(() => 1)] }
              : {}),
          }
        : program,
      [...inputs, ...buffered.map((t) => t.buffer!)],
      output?.dtype ?? 'float32',
      [...uniforms, ...all.flatMap((t) => t.uniforms)],
      output,
    );
  } finally {
    for (const t of all) t.release();
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
