// The README's test command: lint, type-check/build every package, type-check
// the tests, benches and scripts (which vitest and tsx run without checking),
// run every test, and finish with one summary line ("N passed, N failed").
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';

const bin = (name) => `node_modules/.bin/${name}`;
const run = (cmd, args) => spawnSync(cmd, args, { stdio: 'inherit' }).status ?? 1;

const steps = [
  ['lint', () => run(bin('biome'), ['ci', '.'])],
  ['build', () => run(bin('tsc'), ['-b'])],
  ['type-check tests, benches, scripts', () => run(bin('tsc'), ['-p', 'tsconfig.check.json'])],
];
for (const [name, step] of steps) {
  const status = step();
  if (status !== 0) {
    console.error(`${name} failed (exit ${status})`);
    process.exit(status);
  }
}

const report = '.vitest-report.json';
rmSync(report, { force: true });
const status = run(bin('vitest'), [
  'run',
  '--reporter=default',
  '--reporter=json',
  `--outputFile.json=${report}`,
]);
/** Counts from a vitest JSON report, or undefined when none was written. */
function counts(file) {
  try {
    const r = JSON.parse(readFileSync(file, 'utf8'));
    return {
      passed: r.numPassedTests,
      failed: r.numFailedTests,
      skipped: r.numPendingTests + r.numTodoTests,
    };
  } catch {
    return undefined;
  }
}

// The webgpu suites skip where no WebGPU adapter exists (CI has no GPU). Mesa's lavapipe, a
// Vulkan on the CPU, is one: scripts/lavapipe.sh fetches it (Debian packages, ~120 MB, once
// into .dev/lavapipe) and they run again under it. Where it cannot be set up the reason is
// printed and nothing fails; SPECSTREAM_LAVAPIPE=off skips the attempt.
const WEBGPU_SUITES = [
  'packages/core/test/kernel-sets/webgpu.test.ts',
  'packages/core/test/kernel-sets/steps.test.ts',
  'packages/models/test/webgpu.test.ts',
  'packages/speculative/test/webgpu.test.ts',
  'packages/streaming/test/webgpu.test.ts',
];
function webgpuOnLavapipe() {
  if (process.env.SPECSTREAM_LAVAPIPE === 'off') return { note: 'SPECSTREAM_LAVAPIPE=off' };
  const setup = spawnSync('sh', ['scripts/lavapipe.sh'], { encoding: 'utf8' });
  if (setup.status !== 0 || !existsSync('.dev/lavapipe/node')) {
    const why =
      `${setup.stderr ?? ''}${setup.stdout ?? ''}`.trim().split('\n').pop() || `exit ${setup.status}`;
    return { note: `lavapipe could not be set up (${why})` };
  }
  console.log('\nwebgpu suites on lavapipe (a CPU Vulkan):');
  const file = '.vitest-webgpu.json';
  rmSync(file, { force: true });
  // Threads, not forks: under lavapipe's loader process.execPath is the loader itself.
  const status = run('.dev/lavapipe/node', [
    'node_modules/vitest/vitest.mjs',
    'run',
    '--pool=threads',
    '--reporter=default',
    '--reporter=json',
    `--outputFile.json=${file}`,
    ...WEBGPU_SUITES,
  ]);
  return { status, result: counts(file) };
}

const main = counts(report);
const webgpu = webgpuOnLavapipe();
if (main === undefined) console.log('\nTests: no report written');
else {
  const extra = webgpu.result ?? { passed: 0, failed: 0, skipped: 0 };
  console.log(
    `\nTests: ${main.passed + extra.passed} passed, ${main.failed + extra.failed} failed, ${main.skipped} skipped` +
      (webgpu.result
        ? ` (webgpu suites on lavapipe: ${extra.passed} passed, ${extra.failed} failed, ${extra.skipped} skipped)`
        : ` (webgpu suites not run on lavapipe: ${webgpu.note})`),
  );
}
process.exit(status !== 0 ? status : (webgpu.status ?? 0));
