// What scripts/gpu/bundle.mjs (.gpu/: the benches and webgpu suites) and
// scripts/gpu/llama-bundle.mjs (.gpu-llama/: node-llama-cpp's Vulkan comparison) share: the
// command line, esbuild's settings for the GPU machine (no node_modules there), and the rewrite
// of every repository module's import.meta.url to its source file's place in the tree, since the
// bundles sit one folder below the root: paths made from it stay right, and the benches' "run as a
// script" checks stay false. Shared code goes into chunk-*.mjs beside the entries.
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('../../', import.meta.url)).replace(/[/\\]$/, '');

/** The backends the GPU runs do not use: core's candidates import them lazily and skip them with the reason. */
export const UNUSED_BACKENDS = [
  '@tensorflow/tfjs-node',
  '@tensorflow/tfjs-node-gpu',
  '@tensorflow/tfjs-backend-wasm',
];

const LOADERS = { '.ts': 'ts', '.mts': 'ts', '.js': 'js', '.mjs': 'js' };

/** `node <script> <esbuild package dir> <out dir>`: esbuild loaded from there, and the checked out dir. */
export function bundleArgs(script) {
  const [esbuildDir, outArg] = process.argv.slice(2);
  if (!esbuildDir || !outArg) {
    console.error(`usage: node ${script} <esbuild package dir> <out dir>`);
    process.exit(2);
  }
  const outdir = resolve(outArg);
  if (relative(root, outdir).split(sep).length !== 1) {
    throw new Error(`${outdir}: the bundles must sit one folder below the repository root`);
  }
  const esbuild = createRequire(join(resolve(esbuildDir), 'package.json'))('./lib/main.js');
  return { esbuild, outdir };
}

function sourceUrls(outdir) {
  return {
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
}

/**
 * Removes the out dir's old .mjs files, bundles `entryPoints` (ESM for Node 20, the source
 * condition, splitting) with `options` merged in (external, plugins run before the URL rewrite,
 * alias, nodePaths), and prints each entry's size and the chunks'.
 */
export async function bundle(esbuild, outdir, entryPoints, { plugins = [], ...options } = {}) {
  for (const name of readdirSync(outdir)) {
    if (name.endsWith('.mjs')) rmSync(join(outdir, name));
  }
  const result = await esbuild.build({
    absWorkingDir: root,
    entryPoints,
    outdir,
    outExtension: { '.js': '.mjs' },
    chunkNames: 'chunk-[hash]',
    bundle: true,
    splitting: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    conditions: ['@specstream/source'],
    // Bundled CommonJS (pino, node-fetch, tfjs, commander) calls require for Node's own modules.
    banner: {
      js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
    },
    ...options,
    plugins: [...plugins, sourceUrls(outdir)],
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
  return result;
}

/**
 * An esbuild plugin for entries that exist only as generated code: `<prefix>:<name>` resolves to
 * `contentsOf(name)`, plain JavaScript whose imports resolve from `resolveDir`.
 */
export function virtualEntries(prefix, contentsOf, resolveDir = root) {
  return {
    name: `${prefix}-entries`,
    setup(build) {
      build.onResolve({ filter: new RegExp(`^${prefix}:`) }, (args) => ({
        path: args.path.slice(prefix.length + 1),
        namespace: prefix,
      }));
      build.onLoad({ filter: /.*/, namespace: prefix }, (args) => ({
        contents: contentsOf(args.path),
        resolveDir,
        loader: 'js',
      }));
    },
  };
}
