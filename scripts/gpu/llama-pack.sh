#!/usr/bin/env bash
# Builds .gpu-llama/, what the GPU machine needs besides the tree and .gpu/ (scripts/gpu/pack.sh)
# to run node-llama-cpp's prebuilt Vulkan binary there (scripts/gpu/llama-run.sh runs it):
#
#   scripts/gpu/llama-pack.sh          build or refresh .gpu-llama/, print its size and a call's
#
# .gpu-llama/ holds:
#   llama.tar.xz    node_modules/ with node-llama-cpp (as installed in packages/models), its runtime
#                   dependencies and @node-llama-cpp/linux-x64-vulkan of the same version (npm pack,
#                   cached in .data/gpu-llama/), laid out flat as npm would and trimmed
#                   (scripts/gpu/llama-tree.mjs says what is left out); packages.txt lists them
#   bundles.tar.xz  esbuild bundles (scripts/gpu/llama-bundle.mjs): llama-gpu.mjs
#                   (bench/peers/llama-gpu.ts), specstream-convert.mjs (the CLI's convert), chunk-*.mjs
#   source.txt      the commit the bundles were made from; the packages and CPU variants packed
#
# node itself comes from .gpu/node.xz (scripts/gpu/pack.sh), and the Vulkan loader from .gpu/debs:
# a call carries both folders. llama.tar.xz is redone only when its inputs change (about a minute
# of xz); the bundles every time (a second), so run this right before the call that carries it.
#
# SPECSTREAM_LLAMA_CPU_VARIANTS: ggml's CPU backends kept (libggml-cpu-<name>.so; ggml loads every
# one present, scores each by the CPU features it needs and the CPU has, and keeps the best; x64
# needs none, so something always loads). The default covers x86-64 servers of the last decade
# (Intel from Haswell to Sapphire/Emerald/Granite Rapids, AMD Zen 1 to 5) and leaves out client
# and older parts (sandybridge ivybridge piledriver alderlake cannonlake cooperlake).
set -euo pipefail
cd "$(dirname "$0")/../.."
PACK=.gpu-llama
LIMIT_MIB=16
TRAVEL_MIB=64
GPU=vulkan
CACHE=${SPECSTREAM_LLAMA_CACHE:-.data/gpu-llama}
VARIANTS=${SPECSTREAM_LLAMA_CPU_VARIANTS:-x64,sse42,haswell,skylakex,cascadelake,icelake,sapphirerapids,zen4}
LOCK=${SPECSTREAM_BENCH_LOCK:-/tmp/specstream-bench.lock}

# shellcheck source=scripts/gpu/lib.sh
. scripts/gpu/lib.sh # (the repository root is the working directory by now)
# Heavy CPU work waits for the shared benchmark lock (others time things on this machine).
locked() {
  if command -v flock >/dev/null; then flock "$LOCK" "$@"; else "$@"; fi
}
# xz with a temporary name, so an interrupted run leaves nothing that looks complete.
compress() {
  locked xz -T0 -9 -c "$1" >"$2.part"
  mv "$2.part" "$2"
}

[ "$(uname -m)" = x86_64 ] || die "the GPU machine is x86-64; this is $(uname -m)"
[ -d node_modules/.pnpm ] || die "no node_modules: install first (bash scripts/ensure-install.sh)"
node=$(readlink -f "$(command -v node)") || die "no node on PATH"
# node-llama-cpp as bench/peers/llama-cpp.ts finds it: a devDependency of packages/models.
nlc=$(readlink -f packages/models/node_modules/node-llama-cpp) || die "node-llama-cpp is not installed in packages/models"
[ -f "$nlc/package.json" ] || die "node-llama-cpp is not installed in packages/models"
version=$("$node" -p "require('$nlc/package.json').version")
esbuild=$(find node_modules/.pnpm -maxdepth 3 -path '*/esbuild@*/node_modules/esbuild' | sort -V | tail -1)
[ -f "$esbuild/lib/main.js" ] || die "no esbuild package under node_modules/.pnpm"
mkdir -p "$PACK" "$CACHE"

# The binary package, from the npm registry once (npm's own cache serves it after that).
bin_name=@node-llama-cpp/linux-x64-$GPU
tgz=$CACHE/node-llama-cpp-linux-x64-$GPU-$version.tgz
if [ ! -f "$tgz" ]; then
  echo "$bin_name@$version: npm pack (about 25 MB, once)"
  (cd "$CACHE" && npm pack --silent "$bin_name@$version" >/dev/null) || die "npm pack $bin_name@$version failed (network?)"
  [ -f "$tgz" ] || die "npm pack did not write $tgz"
fi
unpacked=$CACHE/linux-x64-$GPU-$version
if [ ! -f "$unpacked/package/package.json" ] || [ "$tgz" -nt "$unpacked/package/package.json" ]; then
  rm -rf "$unpacked"
  mkdir -p "$unpacked"
  tar -C "$unpacked" -xzf "$tgz"
  touch "$unpacked/package/package.json"
fi

# llama.tar.xz: redone when node-llama-cpp, the binary package, the variants or the tree script change.
inputs="node-llama-cpp $version at $nlc; $bin_name $version ($(sha256sum "$tgz" | cut -c1-16)); CPU variants $VARIANTS; llama-tree.mjs $(sha256sum scripts/gpu/llama-tree.mjs | cut -c1-16)"
if [ -f "$PACK/llama.tar.xz" ] && [ "$(cat "$PACK/llama.inputs" 2>/dev/null)" = "$inputs" ]; then
  echo "llama.tar.xz: up to date ($inputs)"
else
  echo "llama.tar.xz: laying out node_modules ($inputs)"
  stage=$(mktemp -d)
  trap 'rm -rf "$stage"' EXIT
  "$node" scripts/gpu/llama-tree.mjs "$nlc" "$unpacked/package" "$stage" "$VARIANTS"
  echo "  $(mib "$(bytes "$stage/node_modules")") MiB unpacked; xz -9 (about a minute)"
  tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner -cf "$stage/llama.tar" node_modules packages.txt
  compress "$stage/llama.tar" "$PACK/llama.tar.xz"
  echo "$inputs" >"$PACK/llama.inputs"
  cp "$stage/packages.txt" "$PACK/packages.txt"
  rm -rf "$stage"
  trap - EXIT
fi

# The bundles: built in a scratch folder one below the root (their import.meta.url rewrite needs
# that), then packed; on the GPU machine llama-run.sh unpacks them into .gpu-llama/.
echo "bundles (esbuild $(basename "$(dirname "$(dirname "$esbuild")")")):"
scratch=.gpu-llama-bundles.tmp
rm -rf "$scratch"
mkdir "$scratch"
"$node" scripts/gpu/llama-bundle.mjs "$esbuild" "$scratch"
tar -C "$scratch" --sort=name --owner=0 --group=0 --numeric-owner -cf "$scratch.tar" .
compress "$scratch.tar" "$PACK/bundles.tar.xz"
rm -rf "$scratch" "$scratch.tar"
# Bundles left unpacked here by an earlier try would be stale: llama-run.sh unpacks afresh.
find "$PACK" -maxdepth 1 -name '*.mjs' -delete

{
  echo "bundled $(date -u +%Y-%m-%dT%H:%MZ) from $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- packages bench scripts 2>/dev/null || echo ' with uncommitted changes')"
  echo "$inputs"
} >"$PACK/source.txt"

echo "sizes:"
for p in "$PACK/llama.tar.xz" "$PACK/bundles.tar.xz"; do
  printf '  %6s MiB  %s\n' "$(mib "$(bytes "$p")")" "$p"
done
total=$(bytes "$PACK")
printf '  %6s MiB  %s (limit %s MiB)\n' "$(mib "$total")" "$PACK/ in all" "$LIMIT_MIB"
[ "$total" -le $((LIMIT_MIB * 1048576)) ] || die "$PACK/ is over $LIMIT_MIB MiB"

# What a call carrying .gpu and .gpu-llama sends now (the tree as pack.sh counts it).
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -c %s -- 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
gpu=0
[ ! -d .gpu ] || gpu=$(bytes .gpu)
[ -f .gpu/node.xz ] || echo "  no .gpu/node.xz: run scripts/gpu/pack.sh too (llama-run.sh takes node and the Vulkan loader from .gpu)" >&2
sum=$((tree + gpu + total))
echo "a call carrying [\".gpu\", \"$PACK\"] sends $(mib "$sum") MiB now (tree $(mib "$tree"), .gpu $(mib "$gpu"), $PACK $(mib "$total"); limit $TRAVEL_MIB MiB)"
[ "$sum" -le $((TRAVEL_MIB * 1048576)) ] || echo "  over the limit: scripts/gpu/pack.sh away run first (the models then come from the stash call; docs/gpu.md)"
