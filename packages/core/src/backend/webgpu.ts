/**
 * WebGPU in Node comes from Dawn (the `webgpu` package), which tfjs expects to
 * find as `navigator.gpu`. A machine without a GPU still loads Dawn fine and
 * only says so by returning a null adapter, so the adapter is the real test.
 */

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const ADAPTER_TIMEOUT_MS = 3000;
const VULKAN_LOADER = 'libvulkan.so.1';

/**
 * Whether Dawn could find a Vulkan loader on Linux. Without one Dawn still loads, prints a
 * two-line warning to stderr that no caller can silence, and returns no adapter, so the
 * main command on a GPU-less machine would open with that noise. A set VK_DRIVER_FILES or
 * VK_ICD_FILENAMES means someone arranged Vulkan on purpose (lavapipe runs node under its
 * own loader path): then Dawn is always tried. Elsewhere than Linux, always tried.
 */
export function vulkanLoaderFindable(
  env: Record<string, string | undefined> = globalThis.process?.env ?? {},
  platform: string = globalThis.process?.platform ?? 'unknown',
  readLdCache: () => string = () => readFileSync('/etc/ld.so.cache', 'latin1'),
): boolean {
  if (platform !== 'linux') return true;
  if (env.VK_DRIVER_FILES || env.VK_ICD_FILENAMES) return true;
  for (const dir of (env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean)) {
    if (existsSync(join(dir, VULKAN_LOADER))) return true;
  }
  try {
    return readLdCache().includes(VULKAN_LOADER);
  } catch {
    return true; // no cache to read: let Dawn decide
  }
}

interface GpuLike {
  requestAdapter(): Promise<unknown>;
}

type ScopeWithNavigator = { navigator?: { gpu?: GpuLike } };

/** Resolves once `navigator.gpu` is present and has an adapter; throws the reason otherwise. */
export async function requireWebGpuAdapter(): Promise<void> {
  const existing = (globalThis as ScopeWithNavigator).navigator?.gpu;
  if (existing !== undefined) {
    await requireAdapter(existing);
    return;
  }
  if (!vulkanLoaderFindable()) {
    throw new Error(`no Vulkan loader (${VULKAN_LOADER}) on this machine, so no WebGPU adapter`);
  }
  const dawn = await import('webgpu');
  const gpu = dawn.create(dawnOptions());
  await requireAdapter(gpu);
  // Installed only once proven useful, so a GPU-less machine is left as it was.
  installMissingGlobals(dawn.globals);
  installNavigatorGpu(gpu);
}

/**
 * Options for Dawn's `create`, from SPECSTREAM_DAWN_OPTIONS (separated by
 * semicolons), e.g. `enable-dawn-features=allow_unsafe_apis;backend=vulkan`.
 * allow_unsafe_apis exposes timestamp queries, which tf.time needs for kernel times.
 */
function dawnOptions(): string[] {
  const raw = globalThis.process?.env?.SPECSTREAM_DAWN_OPTIONS ?? '';
  return raw
    .split(';')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

async function requireAdapter(gpu: GpuLike): Promise<void> {
  const adapter = await withTimeout(
    gpu.requestAdapter(),
    ADAPTER_TIMEOUT_MS,
    'navigator.gpu.requestAdapter()',
  );
  if (adapter === null) throw new Error('navigator.gpu.requestAdapter() returned null: no WebGPU adapter');
}

async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// tfjs-backend-webgpu uses GPUBufferUsage and friends as globals.
function installMissingGlobals(globals: object): void {
  for (const [name, value] of Object.entries(globals)) {
    if (!(name in globalThis))
      Object.defineProperty(globalThis, name, { value, configurable: true, writable: true });
  }
}

// Node 20 has no navigator; newer Node has one, which must be kept.
function installNavigatorGpu(gpu: GpuLike): void {
  const scope = globalThis as ScopeWithNavigator;
  if (scope.navigator === undefined) {
    Object.defineProperty(globalThis, 'navigator', { value: {}, configurable: true, writable: true });
  }
  Object.defineProperty(scope.navigator, 'gpu', { value: gpu, configurable: true, enumerable: true });
}
