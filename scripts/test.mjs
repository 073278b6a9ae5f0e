// The README's test command: lint, type-check/build every package, type-check
// the tests, benches and scripts (which vitest and tsx run without checking),
// run every test, and finish with one summary line ("N passed, N failed").
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';

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
try {
  const result = JSON.parse(readFileSync(report, 'utf8'));
  const skipped = result.numPendingTests + result.numTodoTests;
  console.log(
    `\nTests: ${result.numPassedTests} passed, ${result.numFailedTests} failed, ${skipped} skipped`,
  );
} catch {
  console.log('\nTests: no report written');
}
process.exit(status);
