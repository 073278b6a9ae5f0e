// Bundles what the GPU machine runs (it has Node only as carried by .gpu/, no
// node_modules): scripts/bench.ts as .gpu/bench.mjs, and each webgpu test suite
// as .gpu/test-<suite>.mjs over scripts/gpu/vitest-shim.mjs. Called by
// scripts/gpu/pack.sh with the path of esbuild's package:
//
//   node scripts/gpu/bundle.mjs <esbuild package dir> <out dir>
//
// Shared code goes into chunk-*.mjs beside them. Every module's import.meta.url
// is rewritten to where its source sits in the repository (the bundles live one
// folder below the root), so paths made from it stay right and the benches'
// "run as a script" checks stay false.
import { readdirSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const [esbuildDir, outArg] = process.argv.slice(2);
if (!esbuildDir || !outArg) {
  console.error('usage: node scripts/gpu/bundle.mjs <esbuild package dir> <out dir>');
  process.exit(2);
}
const root = fileURLToPath(new URL('../../', import.meta.url)).replace(/[/\\]$/, '');
const outdir = resolve(outArg);
if (relative(root, outdir).split(sep).length !== 1) {
  throw new Error(`${outdir}: the bundles must sit one folder below the repository root`);
}
const esbuild = createRequire(join(resolve(esbuildDir), 'package.json'))('./lib/main.js');

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
const suiteEntries = {
  name: 'suite-entries',
  setup(build) {
    build.onResolve({ filter: /^suite:/ }, (args) => ({ path: args.path.slice(6), namespace: 'suite' }));
    build.onLoad({ filter: /.*/, namespace: 'suite' }, (args) => ({
      contents: [
        `import { runCollected } from ${JSON.stringify(shim)};`,
        `import ${JSON.stringify(join(root, SUITES[args.path]))};`,
        `await runCollected(${JSON.stringify(args.path)});`,
      ].join('\n'),
      resolveDir: root,
      loader: 'js',
    }));
  },
};

const LOADERS = { '.ts': 'ts', '.mts': 'ts', '.js': 'js', '.mjs': 'js' };

/** import.meta.url of the repository's own modules → the URL of their source file. */
const sourceUrls = {
  name: 'source-urls',
  setup(build) {
    build.onLoad({ filter: /\.(ts|mts|js|mjs)$/ }, (args) => {
      if (args.path.includes(`${sep}node_modules${sep}`)) return undefined;
      const text = readFileSync(args.path, 'utf8');
      if (!text.includes('import.meta.url')) return undefined;
      const fromOut = relative(outdir, args.path).split(sep).join('/');
      const ext = args.path.slice(args.path.lastIndexOf('.'));
      return {
        contents:
          `const __sourceUrl = new URL(${JSON.stringify(fromOut)}, import.meta.url).href;\n` +
          text.replaceAll('import.meta.url', '__sourceUrl'),
        loader: LOADERS[ext],
      };
    });
  },
};

for (const name of readdirSync(outdir)) {
  if (name.endsWith('.mjs')) rmSync(join(outdir, name));
}
const result = await esbuild.build({
  absWorkingDir: root,
  entryPoints: [
    { in: 'scripts/bench.ts', out: 'bench' },
    ...Object.keys(SUITES).map((name) => ({ in: `suite:${name}`, out: `test-${name}` })),
  ],
  outdir,
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunk-[hash]',
  bundle: true,
  splitting: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  conditions: ['@specstream/source'],
  // webgpu comes from .gpu/node_modules; the others are backends the GPU runs do not use
  // (core's candidates import them lazily and skip them with the reason).
  external: ['webgpu', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-backend-wasm'],
  alias: { vitest: shim },
  nodePaths: [vitestDeps],
  // Bundled CommonJS (pino, node-fetch, tfjs) calls require for Node's own modules.
  banner: {
    js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
  },
  plugins: [suiteEntries, sourceUrls],
  metafile: true,
  logLevel: 'warning',
});
let chunks = 0;
let chunkBytes = 0;
for (const [file, output] of Object.entries(result.metafile.outputs)) {
  if (basename(file).startsWith('chunk-')) {
    chunks++;
    chunkBytes += output.bytes;
  } else console.log(`  ${(output.bytes / 1048576).toFixed(2).padStart(6)} MiB  ${relative(root, file)}`);
}
console.log(`  ${(chunkBytes / 1048576).toFixed(2).padStart(6)} MiB  ${chunks} shared chunk-*.mjs`);
