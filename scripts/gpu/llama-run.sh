#!/usr/bin/env bash
# Runs on the GPU machine, from the copy of the tree there, with .gpu/ and .gpu-llama/ carried
# (scripts/gpu/pack.sh and scripts/gpu/llama-pack.sh made them): node-llama-cpp's prebuilt Vulkan
# binary on GGUF exports of the shipped pair (bench/peers/llama-gpu.ts), issue 19's GPU peer.
#
#   bash scripts/gpu/llama-run.sh [llama-gpu flags]      e.g. --types f16 --draft-types ''
#
# 1. scripts/gpu/run.sh info: its setup (Vulkan loader debs into /, node into /tmp/specstream-gpu,
#    models/ refilled from the stash of an earlier call on the same machine) and the machine's
#    GPU, node and WebGPU adapter. A missing adapter is reported and the run goes on (llama.cpp
#    talks to Vulkan itself).
# 2. .gpu-llama/llama.tar.xz unpacked into /tmp/specstream-llama (once per machine), the bundles
#    into .gpu-llama/.
# 3. GGUF files made from the shipped HF folders by the CLI's converter (`specstream convert`,
#    bundled as .gpu-llama/specstream-convert.mjs): target-<TYPE>.gguf for each of
#    SPECSTREAM_LLAMA_TYPES (f32 f16 q8_0 q4_0), draft-<TYPE>.gguf for each of
#    SPECSTREAM_LLAMA_DRAFT_TYPES (f32 f16), in /tmp/specstream-llama/gguf; kept while newer
#    than the model.
# 4. node .gpu-llama/llama-gpu.mjs with NODE_PATH at the unpacked node_modules (where
#    bench/peers/llama-cpp.ts finds node-llama-cpp). Its output goes to $OUT/llama-gpu.log, its
#    JSON to $OUT/llama-gpu.json. Exit 2: the Vulkan binary did not load (the log says why).
#
# The models: the tree with the shipped models and both packs is over a call's 64 MiB, so, as for
# the pair bench (docs/gpu.md), a stash call first (scripts/gpu/pack.sh away stash; command
# `bash scripts/gpu/run.sh stash-models`), then this call with the models away
# (scripts/gpu/pack.sh away run; carry [".gpu", ".gpu-llama"]).
#
# SPECSTREAM_GPU_WORK, SPECSTREAM_MODELS_STASH, SPECSTREAM_GPU_DRY and SPECSTREAM_GPU_NODE act as
# in run.sh; SPECSTREAM_LLAMA_WORK moves /tmp/specstream-llama. Here without a GPU: lavapipe
# through a node whose own path forks work (node-llama-cpp tests its binary in a forked child:
# .dev/lavapipe/node runs node under a loader, whose children cannot start), and
# GGML_VK_VISIBLE_DEVICES=0 (ggml-vulkan skips CPU devices unless named).
set -euo pipefail
cd "$(dirname "$0")/../.."
PACK=.gpu-llama
WORK=${SPECSTREAM_GPU_WORK:-/tmp/specstream-gpu}
LWORK=${SPECSTREAM_LLAMA_WORK:-/tmp/specstream-llama}
TYPES=${SPECSTREAM_LLAMA_TYPES-f32 f16 q8_0 q4_0}
DRAFT_TYPES=${SPECSTREAM_LLAMA_DRAFT_TYPES-f32 f16}

# shellcheck source=scripts/gpu/lib.sh
. scripts/gpu/lib.sh # (the repository root is the working directory by now)

if [ -z "${OUT:-}" ]; then
  OUT=/tmp/specstream-out
  echo "llama-run.sh: OUT is not set; the log and results go to $OUT"
fi
export OUT
mkdir -p "$OUT"
LOG=$OUT/llama-gpu.log

# xz -d, or Python's lzma where xz is missing (as run.sh).

[ -f "$PACK/llama.tar.xz" ] && [ -f "$PACK/bundles.tar.xz" ] ||
  die "no $PACK/ here: run scripts/gpu/llama-pack.sh on the development machine and pass carry: [\".gpu\", \"$PACK\"]"

{
  step "setup (scripts/gpu/run.sh info)"
  bash scripts/gpu/run.sh info || echo "llama-run.sh: run.sh info failed (above); going on, since llama.cpp does not need Dawn's adapter"
} 2>&1 | tee "$LOG"
NODE=${SPECSTREAM_GPU_NODE:-$WORK/node}
[ -x "$NODE" ] || die "no node at $NODE: run.sh's setup did not unpack it (is .gpu carried?)"

# The same driver search as run.sh's setup (its exports end with it).
find_vulkan_driver

{
  step "node-llama-cpp pack"
  echo "pack: $(head -1 "$PACK/source.txt" 2>/dev/null)"
  sed -n 2p "$PACK/source.txt" 2>/dev/null || true
  mkdir -p "$LWORK"
  if [ ! -f "$LWORK/unpacked" ] || [ "$PACK/llama.tar.xz" -nt "$LWORK/unpacked" ]; then
    rm -rf "$LWORK/node_modules"
    unxz_to "$PACK/llama.tar.xz" "$LWORK/llama.tar"
    tar -C "$LWORK" -xf "$LWORK/llama.tar"
    rm -f "$LWORK/llama.tar"
    touch "$LWORK/unpacked"
    echo "unpacked into $LWORK ($(du -sh "$LWORK/node_modules" | cut -f1))"
  else
    echo "unpacked earlier into $LWORK"
  fi
  find "$PACK" -maxdepth 1 -name '*.mjs' -delete
  unxz_to "$PACK/bundles.tar.xz" "$PACK/bundles.tar"
  tar -C "$PACK" -xf "$PACK/bundles.tar"
  rm -f "$PACK/bundles.tar"
  echo "glibc $(ldd --version 2>/dev/null | head -1 | awk '{ print $NF }'); libstdc++: $(ls /usr/lib/x86_64-linux-gnu/libstdc++.so.6.* 2>/dev/null | xargs -r -n1 basename | tr '\n' ' ')(the binary needs GLIBC_2.34 and GLIBCXX_3.4.30); VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset}"
} 2>&1 | tee -a "$LOG"

{
  step "GGUF files (specstream convert)"
  mkdir -p "$LWORK/gguf"
  for pair in "target:$TYPES" "draft:$DRAFT_TYPES"; do
    name=${pair%%:*}
    folder=models/specstream-docs-$name
    for t in ${pair#*:}; do
      [ -f "$folder/model.safetensors" ] ||
        die "$folder is missing: make the stash call first on this same machine (scripts/gpu/pack.sh away stash; bash scripts/gpu/run.sh stash-models), then this one"
      gguf=$LWORK/gguf/$name-${t^^}.gguf
      if [ -f "$gguf" ] && [ "$gguf" -nt "$folder/model.safetensors" ]; then
        echo "$gguf: made earlier"
      else
        "$NODE" "$PACK/specstream-convert.mjs" convert "$folder" "$gguf" --type "$t" --force
      fi
    done
  done
} 2>&1 | tee -a "$LOG"

# The commit the bench records: the bundle's (llama-pack.sh wrote it), not this copy's git state.
SPECSTREAM_BENCH_COMMIT=$(sed -n '1s/.* from \([0-9a-f]*\).*/\1/p' "$PACK/source.txt")
export SPECSTREAM_BENCH_COMMIT
if head -1 "$PACK/source.txt" | grep -q uncommitted; then export SPECSTREAM_BENCH_DIRTY=1; fi

types=$(echo "$TYPES" | tr ' ' ',')
draft_types=$(echo "$DRAFT_TYPES" | tr ' ' ',')
step "node-llama-cpp on the GPU: llama-gpu.mjs --types $types --draft-types '$draft_types' $*" | tee -a "$LOG"
rc=0
NODE_PATH=$LWORK/node_modules "$NODE" "$PACK/llama-gpu.mjs" --gguf-dir "$LWORK/gguf" \
  --types "$types" --draft-types "$draft_types" --json "$OUT/llama-gpu.json" "$@" 2>&1 | tee -a "$LOG" || rc=$?
case $rc in
0) echo "results: \$OUT/llama-gpu.json, log \$OUT/llama-gpu.log" ;;
2) die "node-llama-cpp's Vulkan binary did not load (the reasons above, and in \$OUT/llama-gpu.log)" ;;
*) die "llama-gpu.mjs failed (exit $rc); its log is \$OUT/llama-gpu.log" ;;
esac
