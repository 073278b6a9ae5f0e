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
