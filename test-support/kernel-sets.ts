import { availableKernelSets, type BackendName, initBackend, type KernelSetName } from '@specstream/core';

export interface KernelSetCase {
  backend: BackendName;
  kernels: KernelSetName;
  /** "wasm set on wasm", for test names. */
  label: string;
}

/**
 * Every kernel set each of `backends` can run on this machine (the
 * reference set on every backend): suites that run once per case cover a
 * new set without being edited. Backends that cannot start here are left
 * out; the current backend is left as the last one tried.
 */
export async function kernelSetCases(backends: BackendName[]): Promise<KernelSetCase[]> {
  const cases: KernelSetCase[] = [];
  for (const backend of backends) {
    try {
      await initBackend({ backend });
    } catch {
      continue;
    }
    for (const set of availableKernelSets()) {
      cases.push({ backend, kernels: set.name, label: `${set.name} set on ${backend}` });
    }
  }
  return cases;
}
