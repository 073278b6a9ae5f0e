/**
 * The program keys (up to the first '_') the webgpu backend (`tf.backend()`)
 * runs while `work` runs: what tests use to see that core's own programs, not tfjs's
 * kernels, did the work. Test-only code, shared by the packages' tests.
 */
export async function programsUsed(
  webgpuBackend: unknown,
  work: () => void | Promise<void>,
): Promise<Set<string>> {
  const backend = webgpuBackend as {
    runWebGPUProgram: (program: { shaderKey: string }, ...rest: unknown[]) => unknown;
  };
  const original = backend.runWebGPUProgram;
  const keys = new Set<string>();
  backend.runWebGPUProgram = function (this: unknown, program, ...rest) {
    keys.add(program.shaderKey.split('_')[0]);
    return original.call(this, program, ...rest);
  };
  try {
    await work();
  } finally {
    backend.runWebGPUProgram = original;
  }
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
  const backend = webgpuBackend as {
    uploadToGPU: (dataId: object) => void;
    tensorMap: { get(dataId: object): { values?: unknown; resource?: unknown; shape: number[] } };
  };
  const original = backend.uploadToGPU;
  const shapes: number[][] = [];
  backend.uploadToGPU = function (this: unknown, dataId) {
    const data = backend.tensorMap.get(dataId);
    if (data.resource == null && data.values != null) shapes.push(data.shape);
    return original.call(this, dataId);
  };
  try {
    await work();
  } finally {
    backend.uploadToGPU = original;
  }
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
