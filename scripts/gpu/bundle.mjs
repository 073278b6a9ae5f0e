// Bundles what the GPU machine runs (it has Node only as carried by .gpu/, no
// node_modules): scripts/bench.ts as .gpu/bench.mjs, and each webgpu test suite
// as .gpu/test-<suite>.mjs over scripts/gpu/vitest-shim.mjs. Called by
// scripts/gpu/pack.sh with the path of esbuild's package:
//
//   node scripts/gpu/bundle.mjs <esbuild package dir> <out dir>
//
// The settings and the import.meta.url rewrite are bundle-common.mjs's.
import { realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { bundle, bundleArgs, root, UNUSED_BACKENDS, virtualEntries } from './bundle-common.mjs';

const { esbuild, outdir } = bundleArgs('scripts/gpu/bundle.mjs');

const SUITES = {
  core: 'packages/core/test/kernel-sets/webgpu.test.ts',
  'core-sets': 'packages/core/test/kernel-sets/steps.test.ts',
  models: 'packages/models/test/webgpu.test.ts',
  speculative: 'packages/speculative/test/webgpu.test.ts',
  streaming: 'packages/streaming/test/webgpu.test.ts',
};
const shim = join(root, 'scripts/gpu/vitest-shim.mjs');
// The shim takes expect() from @vitest/expect, a dependency of vitest's, not of the root.
const vitestDeps = dirname(realpathSync(join(root, 'node_modules/vitest')));

/** Entries `suite:<name>`: import the suite, then run what it registered. */
const suiteEntries = virtualEntries('suite', (name) =>
  [
    `import { runCollected } from ${JSON.stringify(shim)};`,
    `import ${JSON.stringify(join(root, SUITES[name]))};`,
    `await runCollected(${JSON.stringify(name)});`,
  ].join('\n'),
);

await bundle(
  esbuild,
  outdir,
  [
    { in: 'scripts/bench.ts', out: 'bench' },
    ...Object.keys(SUITES).map((name) => ({ in: `suite:${name}`, out: `test-${name}` })),
  ],
  {
    // webgpu comes from .gpu/node_modules.
    external: ['webgpu', ...UNUSED_BACKENDS],
    alias: { vitest: shim },
    nodePaths: [vitestDeps],
    plugins: [suiteEntries],
  },
);
