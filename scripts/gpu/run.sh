#!/usr/bin/env bash
# Runs on the GPU machine, from the copy of the working tree there, with .gpu/
# carried (scripts/gpu/pack.sh made it; docs/gpu.md has the whole procedure):
#
#   scripts/gpu/run.sh stash-models        copy models/ to /tmp/specstream-models (the first of two calls)
#   scripts/gpu/run.sh info                set up, print the GPU, node and the WebGPU adapter
#   scripts/gpu/run.sh bench [bench args]  set up, node .gpu/bench.mjs --backends webgpu [bench args]
#   scripts/gpu/run.sh test [suites]       set up, run the webgpu suites (core core-sets models speculative streaming)
#
# Setup, each step once per machine: the Vulkan loader and glvnd packages are
# unpacked into / (dpkg -x) and ldconfig run; node and dawn.node are unpacked
# into /tmp/specstream-gpu; the fixtures too; models/ is refilled from
# /tmp/specstream-models where files are missing. Logs and results go to $OUT.
#
# SPECSTREAM_GPU_DRY=1 prints the dpkg -x and ldconfig commands instead of
# running them (to try the rest on a machine whose system must stay as it is).
# SPECSTREAM_GPU_BENCH runs another bench bundle (e.g. .gpu-before/bench.mjs,
# bundled from an older commit for a same-machine A/B); its node_modules link
# to .gpu's. SPECSTREAM_GPU_WORK and SPECSTREAM_MODELS_STASH move /tmp/specstream-gpu and
# /tmp/specstream-models; SPECSTREAM_GPU_NODE runs another node (a wrapper).
set -euo pipefail
cd "$(dirname "$0")/../.."
PACK=.gpu
WORK=${SPECSTREAM_GPU_WORK:-/tmp/specstream-gpu}
STASH=${SPECSTREAM_MODELS_STASH:-/tmp/specstream-models}
DRY=${SPECSTREAM_GPU_DRY:-0}
MAX_FILES=8

# shellcheck source=scripts/gpu/lib.sh
. scripts/gpu/lib.sh # (the repository root is the working directory by now)

if [ -z "${OUT:-}" ]; then
  OUT=/tmp/specstream-out
  echo "run.sh: OUT is not set; logs and results go to $OUT"
fi
mkdir -p "$OUT"

stash_models() {
  [ -d models ] || die "no models/ in the tree here: the stash call must send the tree with the models (scripts/gpu/pack.sh away stash, not run)"
  mkdir -p "$STASH"
  cp -a models/. "$STASH/"
  echo "stashed models/ in $STASH ($(du -sh "$STASH" | cut -f1)):"
  (cd "$STASH" && find . -type f -size +1M -exec ls -l {} + | awk '{ print "  " $5 "  " $9 }')
}

restore_models() {
  [ -d "$STASH" ] || return 0
  local f n=0
  # Only files missing here: what the tree brought wins over the stash.
  while IFS= read -r f; do
    [ ! -e "models/$f" ] || continue
    mkdir -p "$(dirname "models/$f")"
    cp -p "$STASH/$f" "models/$f"
    n=$((n + 1))
  done < <(cd "$STASH" && find . -type f | sed 's#^\./##')
  [ "$n" = 0 ] || step "models: $n files restored from $STASH"
}

setup() {
  local icd egl
  [ -f "$PACK/node.xz" ] && [ -f "$PACK/node_modules/webgpu/dawn.node.xz" ] ||
    die "no $PACK/ here: run scripts/gpu/pack.sh on the development machine and pass carry: [\"$PACK\"]"
  mkdir -p "$WORK"

  if [ -f "$WORK/debs-unpacked" ]; then
    step "debs: unpacked earlier on this machine"
  else
    step "debs: unpacking $(ls "$PACK"/debs/*.deb | wc -l) packages into / and running ldconfig"
    for deb in "$PACK"/debs/*.deb; do
      if [ "$DRY" = 1 ]; then echo "   (dry) dpkg -x $deb /"; else dpkg -x "$deb" /; fi
    done
    if [ "$DRY" = 1 ]; then echo "   (dry) ldconfig"; else ldconfig; fi
    [ "$DRY" = 1 ] || touch "$WORK/debs-unpacked"
  fi

  if [ ! -x "$WORK/node" ] || [ "$PACK/node.xz" -nt "$WORK/node" ]; then
    unxz_to "$PACK/node.xz" "$WORK/node"
    chmod +x "$WORK/node"
  fi
  if [ ! -f "$WORK/dawn.node" ] || [ "$PACK/node_modules/webgpu/dawn.node.xz" -nt "$WORK/dawn.node" ]; then
    unxz_to "$PACK/node_modules/webgpu/dawn.node.xz" "$WORK/dawn.node"
  fi
  # The webgpu package's index.js loads dist/<platform>-<arch>/dawn.node beside itself.
  mkdir -p "$PACK/node_modules/webgpu/dist/linux-x64"
  ln -sf "$WORK/dawn.node" "$PACK/node_modules/webgpu/dist/linux-x64/dawn.node"
  NODE=${SPECSTREAM_GPU_NODE:-$WORK/node}

  if [ -f "$PACK/fixtures.tar.xz" ] && [ -z "${SPECSTREAM_FIXTURES:-}" ]; then
    if [ ! -f "$WORK/fixtures.done" ] || [ "$PACK/fixtures.tar.xz" -nt "$WORK/fixtures.done" ]; then
      rm -rf "$WORK/fixtures"
      mkdir -p "$WORK/fixtures/hf"
      unxz_to "$PACK/fixtures.tar.xz" "$WORK/fixtures.tar"
      tar -C "$WORK/fixtures/hf" -xf "$WORK/fixtures.tar"
      rm -f "$WORK/fixtures.tar"
      touch "$WORK/fixtures.done"
    fi
    export SPECSTREAM_FIXTURES=$WORK/fixtures/hf
  fi
  restore_models

  find_vulkan_driver
  [ -n "${VK_DRIVER_FILES:-}" ] || echo "run.sh: no NVIDIA Vulkan driver file found; Dawn is left to the loader's search" >&2
  for egl in "${__EGL_VENDOR_LIBRARY_FILENAMES:-}" /usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json; do
    if [ -n "$egl" ] && [ -f "$egl" ]; then
      export __EGL_VENDOR_LIBRARY_FILENAMES=$egl
      break
    fi
  done

  # Printed, and kept for the top of each log.
  machine_info | tee "$WORK/machine.txt" ||
    die "no WebGPU adapter (above). Check the Vulkan loader: ldconfig -p | grep libvulkan; and VK_DRIVER_FILES / __EGL_VENDOR_LIBRARY_FILENAMES"
}

machine_info() {
  step "machine"
  [ ! -f "$PACK/source.txt" ] || echo "pack: $(cat "$PACK/source.txt")"
  if command -v nvidia-smi >/dev/null; then nvidia-smi -L 2>&1 || true; else echo "nvidia-smi: not on PATH"; fi
  echo "node $("$WORK/node" --version) ($WORK/node${SPECSTREAM_GPU_NODE:+; running under $SPECSTREAM_GPU_NODE}); VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset}"
  "$NODE" scripts/gpu/adapter.mjs "$PACK/node_modules/webgpu/index.js" 2>&1
}

# A log name not used yet in $OUT: bench-core.log, then bench-core-2.log, ...
fresh_name() {
  local base=$1 ext=$2 n=2 name="$1.$2"
  while [ -e "$OUT/$name" ]; do
    name="$base-$n.$ext"
    n=$((n + 1))
  done
  echo "$name"
}

# Copies the files a run wrote (newer than $1) into $OUT, or one tar of them
# when they would take $OUT past its 8 files.
collect() {
  local marker=$1 label=$2 have room tarname
  local -a files=()
  mapfile -t files < <(
    {
      find bench-results -maxdepth 1 -name '*.json' -newer "$marker" 2>/dev/null
      find . -maxdepth 1 -name RESULTS.md -newer "$marker"
      find docs/bench -maxdepth 1 -name '*.svg' -newer "$marker" 2>/dev/null
    } | sed 's#^\./##' | sort
  )
  [ ${#files[@]} -gt 0 ] || {
    echo "results: none written"
    return 0
  }
  have=$(find "$OUT" -maxdepth 1 -type f | wc -l)
  room=$((MAX_FILES - have))
  if [ ${#files[@]} -le "$room" ]; then
    cp "${files[@]}" "$OUT/"
    echo "results in \$OUT: ${files[*]}"
  else
    [ "$room" -ge 1 ] || die "\$OUT already holds $have files; no room for ${files[*]}"
    tarname=$(fresh_name "$label-results" tar)
    tar -cf "$OUT/$tarname" "${files[@]}"
    echo "results in \$OUT/$tarname: ${files[*]}"
  fi
}

bench() {
  local only="" prev="" a label log marker m rc=0
  local -a args=("$@")
  for a in "$@"; do
    case $a in --only=*) only=${a#--only=} ;; esac
    [ "$prev" != --only ] || only=$a
    prev=$a
  done
  # bench.ts's own default adds load, which runs tsx children on wasm: not in the pack.
  if [ -z "$only" ]; then
    only=core,speculative,streaming
    args=(--only "$only" "${args[@]}")
  fi
  [[ ",$only," != *,load,* ]] || die "--only load is not supported from the pack (it starts tsx children, on wasm)"
  setup
  if [[ ",$only," == *,pair,* ]] && [[ " ${args[*]} " != *--pair-target* ]]; then
    for m in specstream-docs-target specstream-docs-draft; do
      [ -f "models/$m/model.safetensors" ] ||
        die "models/$m is missing, and the pair suite needs it: send it with the tree, or stash it first on this same machine (scripts/gpu/run.sh stash-models, the call before; $STASH $([ -d "$STASH" ] && echo 'exists but lacks it' || echo 'does not exist: a fresh machine?'))"
    done
  fi
  label="bench-${only//,/-}"
  log=$(fresh_name "$label" log)
  marker=$(mktemp)
  # the file times must be able to differ from the marker's
  sleep 1
  step "bench: node .gpu/bench.mjs --backends webgpu ${args[*]} (log: \$OUT/$log)"
  cp "$WORK/machine.txt" "$OUT/$log"
  # The bench names the commit it ran: the bundle's (pack.sh wrote it), not this copy's git state.
  local bundle=${SPECSTREAM_GPU_BENCH:-$PACK/bench.mjs}
  local from
  from=$(dirname "$bundle")
  [ -f "$bundle" ] || die "no bench bundle $bundle"
  [ "$from" = "$PACK" ] || [ -e "$from/node_modules" ] || ln -s "$(pwd)/$PACK/node_modules" "$from/node_modules"
  echo "bundle: $bundle ($(cat "$from/source.txt" 2>/dev/null))" >>"$OUT/$log"
  if [ -f "$from/source.txt" ]; then
    SPECSTREAM_BENCH_COMMIT=$(sed -n 's/.* from \([0-9a-f]*\).*/\1/p' "$from/source.txt")
    export SPECSTREAM_BENCH_COMMIT
    if grep -q uncommitted "$from/source.txt"; then export SPECSTREAM_BENCH_DIRTY=1; fi
  fi
  "$NODE" "$bundle" --backends webgpu "${args[@]}" 2>&1 | tee -a "$OUT/$log" || rc=$?
  collect "$marker" "$label"
  rm -f "$marker"
  [ "$rc" = 0 ] || die "the bench failed (exit $rc); its log is \$OUT/$log"
  if grep -q '^== webgpu: not available' "$OUT/$log"; then
    die "the bench ran without webgpu: $(grep -m1 '^== webgpu: not available' "$OUT/$log")"
  fi
}

tests() {
  local suites=("$@") s log rc failed=""
  [ ${#suites[@]} -gt 0 ] || suites=(core core-sets models speculative streaming)
  for s in "${suites[@]}"; do
    [ -f "$PACK/test-$s.mjs" ] || die "no suite '$s' (core, core-sets, models, speculative, streaming)"
  done
  setup
  for s in "${suites[@]}"; do
    log=$(fresh_name "test-$s" log)
    step "test $s (log: \$OUT/$log)"
    rc=0
    cp "$WORK/machine.txt" "$OUT/$log"
    SPECSTREAM_TESTS_REQUIRE_RUN=1 "$NODE" "$PACK/test-$s.mjs" 2>&1 | tee -a "$OUT/$log" || rc=$?
    [ "$rc" = 0 ] || failed="$failed $s(exit $rc)"
  done
  step "summary"
  grep -h '^Tests ' "$OUT"/test-*.log || true
  [ -z "$failed" ] || die "failed:$failed (exit 1: a test failed; 3: everything skipped, i.e. no adapter)"
}

set -o pipefail
case ${1:-} in
stash-models) stash_models ;;
info) setup ;;
bench)
  shift
  bench "$@"
  ;;
test)
  shift
  tests "$@"
  ;;
*) die "usage: scripts/gpu/run.sh stash-models | info | bench [bench args] | test [core models speculative streaming]" ;;
esac
