import * as tf from '@tensorflow/tfjs-core';
import type { BackendName } from '../backend.js';
import { getLogger } from '../log.js';
import { requireWebGpuAdapter } from './webgpu.js';

/** One way of getting a backend: the package that provides it and how to start it. */
export interface Candidate {
  readonly backend: BackendName;
  readonly source: string;
  /** Loads the package and makes its backend current; throws with the reason it cannot. */
  start(): Promise<void>;
}

/** Fastest first: 'auto' takes the first that starts. */
export const CANDIDATES: readonly Candidate[] = [
  {
    backend: 'tensorflow',
    source: '@tensorflow/tfjs-node-gpu',
    start: () => startTensorflow('@tensorflow/tfjs-node-gpu'),
  },
  {
    backend: 'tensorflow',
    source: '@tensorflow/tfjs-node',
    start: () => startTensorflow('@tensorflow/tfjs-node'),
  },
  { backend: 'webgpu', source: '@tensorflow/tfjs-backend-webgpu', start: startWebGpu },
  { backend: 'wasm', source: '@tensorflow/tfjs-backend-wasm', start: startWasm },
  { backend: 'cpu', source: '@tensorflow/tfjs-backend-cpu', start: startCpu },
];

/** The first line of an error's message: native-binding errors go on for paragraphs. */
export function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0].trim() || String(error);
}

async function activate(backend: BackendName): Promise<void> {
  // tfjs swallows the init error itself (only log.warn, muted in prod mode).
  if (!(await tf.setBackend(backend))) throw new Error(`tf.setBackend('${backend}') resolved false`);
  await tf.ready();
}

async function startTensorflow(pkg: string): Promise<void> {
  await importOptional(pkg);
  await activate('tensorflow');
}

// The specifier goes through a variable so TypeScript does not type-load the
// optional packages: they may be absent, and nothing is used from them but
// the backend they register on import.
function importOptional(specifier: string): Promise<unknown> {
  return import(specifier);
}

async function startWebGpu(): Promise<void> {
  await requireWebGpuAdapter();
  await import('@tensorflow/tfjs-backend-webgpu');
  tuneWebGpu();
  await activate('webgpu');
  watchWebGpuErrors();
}

const webGpuErrorLog: string[] = [];

/**
 * Errors the WebGPU device reported outside any error scope, oldest first
 * (the last 100). Dawn skips the command that caused one and carries on, so
 * whatever it belonged to computed nothing: tests assert there were none.
 */
export function webGpuErrors(): readonly string[] {
  return webGpuErrorLog;
}

interface DeviceWithErrors {
  onuncapturederror: ((event: { error?: { message?: string } }) => void) | null;
}

function watchWebGpuErrors(): void {
  const device = (tf.backend() as unknown as { device?: DeviceWithErrors }).device;
  if (device === undefined) return;
  device.onuncapturederror = (event) => {
    const message = event.error?.message ?? 'unknown WebGPU error';
    webGpuErrorLog.push(message);
    if (webGpuErrorLog.length > 100) webGpuErrorLog.shift();
    getLogger('webgpu').error({ message }, 'WebGPU error: the command it came from was skipped');
  };
}

/**
 * Two tfjs-webgpu defaults cost most of a decode step under Dawn in Node
 * (measured on an H100, GPT-2 small, ~430 ms of JavaScript per step):
 * - CPU forwarding runs small ops whose inputs are still on the host (masks,
 *   indices, positions) in JavaScript, then uploads the result through a new
 *   staging buffer; a broadcast mask alone took 6 ms per layer that way.
 * - The command stream is submitted every 15 dispatches, and each submit took
 *   ~2 ms. Submitting only when results are read keeps one submit per step.
 */
export const WEBGPU_FLAGS = {
  WEBGPU_CPU_FORWARD: false,
  WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE: 100_000,
} as const;

function tuneWebGpu(): void {
  for (const [flag, value] of Object.entries(WEBGPU_FLAGS)) tf.env().set(flag, value);
}

async function startCpu(): Promise<void> {
  await import('@tensorflow/tfjs-backend-cpu');
  await activate('cpu');
}

async function startWasm(): Promise<void> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  if (tf.env().getBool('IS_NODE')) await pointWasmAtInstalledBinaries(wasm.setWasmPaths);
  await activate('wasm');
}

let wasmPathsSet = false;

// In Node the backend looks for its .wasm files next to whatever file ended up
// importing it, which is wrong under vitest, tsx and bundles alike; the
// installed package's own dist/ is right everywhere. Only settable before the
// first wasm init, hence once.
async function pointWasmAtInstalledBinaries(setWasmPaths: (prefix: string) => void): Promise<void> {
  if (wasmPathsSet) return;
  setWasmPaths(await installedWasmDirectory());
  wasmPathsSet = true;
}

// node: modules are imported lazily so this file still loads in a browser.
async function installedWasmDirectory(): Promise<string> {
  const { createRequire } = await import('node:module');
  const { dirname, sep } = await import('node:path');
  const wasmFile = createRequire(import.meta.url).resolve(
    '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm',
  );
  return dirname(wasmFile) + sep;
}
