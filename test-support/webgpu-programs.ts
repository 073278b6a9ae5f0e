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
