// Lays out node-llama-cpp, its runtime dependencies and its prebuilt Vulkan binary package as a
// plain npm-style node_modules tree (no pnpm symlinks), trimmed to what runs: called by
// scripts/gpu/llama-pack.sh, whose tarball the GPU machine unpacks (scripts/gpu/llama-run.sh).
//
//   node scripts/gpu/llama-tree.mjs <node-llama-cpp dir> <binary package dir> <out dir> <cpu variants>
//
// <node-llama-cpp dir>: the installed package (its dependencies are found the way pnpm lays them
// out: beside it in its own node_modules). <binary package dir>: @node-llama-cpp/linux-x64-vulkan
// unpacked (npm pack). <cpu variants>: comma-separated names of the libggml-cpu-<name>.so kept.
//
// Kept whole: every package's JavaScript and JSON (node-llama-cpp imports much of it statically,
// and what an error path imports lazily must be there too). Left out: source maps, type
// declarations, READMEs and changelogs; node-llama-cpp's llama/ folder (34 MB of llama.cpp
// sources for building) but for the release file it reads at import and the grammars; its
// templates/ and its own bins/ (notes that the binaries moved to the per-platform packages).
// Two versions of one package: the one nearer the root is hoisted, the other nested under its
// dependent, as npm does. Writes <out dir>/node_modules and <out dir>/packages.txt.
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, relative, sep } from 'node:path';

const [nlcArg, binArg, outArg, variantsArg] = process.argv.slice(2);
if (!nlcArg || !binArg || !outArg || variantsArg === undefined) {
  console.error(
    'usage: node scripts/gpu/llama-tree.mjs <node-llama-cpp dir> <binary package dir> <out dir> <cpu variants>',
  );
  process.exit(2);
}
const out = join(outArg, 'node_modules');
if (existsSync(out)) throw new Error(`${out} exists: start from an empty folder`);
const variants = new Set(variantsArg.split(',').filter((v) => v !== ''));

const readJson = (file) => JSON.parse(readFileSync(file, 'utf8'));

/** Where pnpm put a package's dependency `name`: beside the package, in the same node_modules. */
function dependencyDir(pkgDir, pkgName, name) {
  const nodeModules = pkgName.startsWith('@') ? dirname(dirname(pkgDir)) : dirname(pkgDir);
  const dir = join(nodeModules, name);
  if (!existsSync(join(dir, 'package.json'))) {
    throw new Error(`${pkgName} depends on ${name}, which is not installed beside it (${dir})`);
  }
  return realpathSync(dir);
}

/** Files left out of every package. */
function skipped(rel) {
  const name = basename(rel);
  if (rel.split(sep).includes('node_modules')) return true;
  if (/\.(map|d\.ts|d\.mts|d\.cts|tsbuildinfo)$/.test(name)) return true;
  if (/^(readme|changelog|history)(\.|$)/i.test(name)) return true;
  return false;
}

/** Extra rules for node-llama-cpp's own files (paths relative to its folder). */
function nlcSkipped(rel) {
  const parts = rel.split(sep);
  if (parts[0] === 'templates' || parts[0] === 'bins') return true;
  if (parts[0] === 'llama') {
    if (parts.length === 1) return false;
    if (parts[1] === 'grammars') return false;
    return !['binariesGithubRelease.json', 'llama.cpp.info.json', 'package.json'].includes(parts[1]);
  }
  return false;
}

/** Extra rules for the binary package: only the chosen CPU variants of ggml's CPU backend. */
function binSkipped(rel) {
  const m = /^libggml-cpu-(.+)\.so$/.exec(basename(rel));
  return m !== null && !variants.has(m[1]);
}

function copyPackage(src, dest, extra) {
  mkdirSync(dest, { recursive: true });
  cpSync(src, dest, {
    recursive: true,
    dereference: true,
    preserveTimestamps: true,
    filter: (from) => {
      const rel = relative(src, from);
      return rel === '' || (!skipped(rel) && !extra(rel));
    },
  });
}

// npm-style placement: breadth first from the root, so the versions nearest it are hoisted.
/** install path (relative to out) → { name, version, src } */
const placed = new Map();
const queue = [];
function place(installRel, src) {
  const pkg = readJson(join(src, 'package.json'));
  placed.set(installRel, { name: pkg.name, version: pkg.version, src });
  queue.push(installRel);
}
const nlcSrc = realpathSync(nlcArg);
const binSrc = realpathSync(binArg);
const nlcPkg = readJson(join(nlcSrc, 'package.json'));
const binPkg = readJson(join(binSrc, 'package.json'));
if (binPkg.version !== nlcPkg.version) {
  throw new Error(
    `${binPkg.name} is ${binPkg.version} but node-llama-cpp is ${nlcPkg.version}: node-llama-cpp ignores a binary package of another version`,
  );
}
place(nlcPkg.name, nlcSrc);
place(binPkg.name, binSrc);

while (queue.length > 0) {
  const at = queue.shift();
  const { name, src } = placed.get(at);
  const deps = Object.keys(readJson(join(src, 'package.json')).dependencies ?? {});
  for (const dep of deps) {
    const depSrc = dependencyDir(src, name, dep);
    const version = readJson(join(depSrc, 'package.json')).version;
    // What Node finds from `at`: at/node_modules/dep, then each ancestor's node_modules.
    let found;
    for (let dir = at; ; ) {
      const candidate = dir === '' ? dep : `${dir}/node_modules/${dep}`;
      if (placed.has(candidate)) {
        found = placed.get(candidate);
        break;
      }
      if (dir === '') break;
      const i = dir.lastIndexOf('/node_modules/');
      dir = i < 0 ? '' : dir.slice(0, i);
    }
    if (found?.version === version) continue;
    place(found ? `${at}/node_modules/${dep}` : dep, depSrc);
  }
}

const lines = [];
for (const [rel, { name, version, src }] of [...placed].sort(([a], [b]) => a.localeCompare(b))) {
  const extra = name === nlcPkg.name ? nlcSkipped : name === binPkg.name ? binSkipped : () => false;
  copyPackage(src, join(out, rel), extra);
  lines.push(`${rel.split('/node_modules/').join(' > ')} ${version}`);
}
const kept = readdirSync(join(out, binPkg.name, 'bins', 'linux-x64-vulkan')).filter((f) =>
  f.startsWith('libggml-cpu-'),
);
const missing = [...variants].filter((v) => !kept.includes(`libggml-cpu-${v}.so`));
if (missing.length > 0) throw new Error(`no libggml-cpu-{${missing.join(',')}}.so in ${binSrc}`);
writeFileSync(join(outArg, 'packages.txt'), `${lines.join('\n')}\n`);
console.log(
  `  ${placed.size} packages (${lines.filter((l) => l.includes(' > ')).length} nested); CPU variants: ${kept.join(' ')}`,
);
