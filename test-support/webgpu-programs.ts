/**
 * Runs `work` with `object[method]` replaced by `replace(original)`, then
 * puts the original back, whatever `work` did.
 */
async function whileReplaced<T extends object, K extends keyof T>(
  object: T,
  method: K,
  replace: (original: T[K]) => T[K],
  work: () => void | Promise<void>,
): Promise<void> {
  const original = object[method];
  object[method] = replace(original);
  try {
    await work();
  } finally {
    object[method] = original;
  }
}

interface WebGpuBackendInternals {
  runWebGPUProgram(program: { shaderKey: string }, ...rest: unknown[]): unknown;
  uploadToGPU(dataId: object): void;
  tensorMap: { get(dataId: object): { values?: unknown; resource?: unknown; shape: number[] } };
}

/**
 * The program keys (up to the first '_') the webgpu backend (`tf.backend()`)
 * runs while `work` runs: what tests use to see that core's own programs, not tfjs's
 * kernels, did the work. Test-only code, shared by the packages' tests.
 */
export async function programsUsed(
  webgpuBackend: unknown,
  work: () => void | Promise<void>,
): Promise<Set<string>> {
  const keys = new Set<string>();
  await whileReplaced(
    webgpuBackend as WebGpuBackendInternals,
    'runWebGPUProgram',
    (original) =>
      function (this: unknown, program, ...rest) {
        keys.add(program.shaderKey.split('_')[0]);
        return original.call(this, program, ...rest);
      },
    work,
  );
  return keys;
}

/**
 * Host-to-device uploads the webgpu backend makes while `work` runs: the
 * shapes of tensors whose values it copies from the host (a staging buffer
 * and a copy each). Outputs it only allocates are not counted.
 */
export async function uploadsDuring(
  webgpuBackend: unknown,
  work: () => void | Promise<void>,
): Promise<number[][]> {
  const backend = webgpuBackend as WebGpuBackendInternals;
  const shapes: number[][] = [];
  await whileReplaced(
    backend,
    'uploadToGPU',
    (original) =>
      function (this: unknown, dataId) {
        const data = backend.tensorMap.get(dataId);
        if (data.resource == null && data.values != null) shapes.push(data.shape);
        return original.call(this, dataId);
      },
    work,
  );
  return shapes;
}

/**
 * Starts webgpu through core's `initBackend` (passed in: test-support has no
 * dependencies of its own) and returns why it cannot, or undefined when it
 * did; a suite skipped for that reason says so.
 */
export async function webgpuUnavailable(
  initBackend: (options: { backend: 'webgpu' }) => Promise<unknown>,
  suite: string,
): Promise<string | undefined> {
  const reason = await initBackend({ backend: 'webgpu' }).then(
    () => undefined,
    (error: Error) => error.message,
  );
  if (reason !== undefined) console.info(`${suite} skipped: ${reason}`);
  return reason;
}
