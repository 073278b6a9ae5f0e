#!/usr/bin/env bash
# Builds .gpu/, what the GPU machine needs besides the working tree to run the
# benchmarks and the webgpu test suites through Dawn (docs/gpu.md):
#
#   scripts/gpu/pack.sh                 build or refresh .gpu/, print sizes and what a call would send
#   scripts/gpu/pack.sh sizes           only print what a call would send
#   scripts/gpu/pack.sh away stash|run  move model files out of the tree for a device call
#   scripts/gpu/pack.sh back            move them back
#
# .gpu/ holds node.xz (this machine's node), node_modules/webgpu (index.js,
# package.json, dawn.node.xz for linux-x64), debs/ (the Vulkan loader and glvnd
# packages), fixtures.tar.xz (the HF reference fixtures, from
# ${SPECSTREAM_FIXTURES:-../shared/fixtures/hf}) and the bundles bench.mjs,
# test-<suite>.mjs and their chunk-*.mjs. Compressed artifacts are redone only
# when their input is newer; the bundles are rebuilt every time (about a second).
set -euo pipefail
cd "$(dirname "$0")/../.."
PACK=.gpu
LIMIT_MIB=40
TRAVEL_MIB=64
DEBS="libvulkan1 libglvnd0 libglx0 libegl1 libgl1 libgles2 libopengl0"
AWAY=${SPECSTREAM_MODELS_AWAY:-${TMPDIR:-/tmp}/specstream-models-away}

# shellcheck source=scripts/gpu/lib.sh
. scripts/gpu/lib.sh # (the repository root is the working directory by now)
# True when $1 exists and is newer than every later argument (files or folders' contents).
fresh() {
  local target=$1
  shift
  [ -e "$target" ] || return 1
  [ -z "$(find "$@" -newer "$target" -print -quit)" ]
}
# xz with a temporary name, so an interrupted run leaves nothing that looks complete.
compress() {
  xz -T0 -9 -c "$1" >"$2.part"
  mv "$2.part" "$2"
}

# Bytes of what a device call sends without carry: tracked files present in the
# working tree and untracked files git does not ignore (plus shared/ if any).
tree_bytes() {
  git ls-files -z --cached --others --exclude-standard |
    xargs -0 -r stat -c %s -- 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'
  [ ! -d shared ] || bytes shared
}

sizes() {
  local tree pack=0
  tree=$(tree_bytes | awk '{ s += $1 } END { print s + 0 }')
  [ ! -d "$PACK" ] || pack=$(bytes "$PACK")
  echo "a device call sends: working tree $(mib "$tree") MiB; with carry [\"$PACK\"] $(mib $((tree + pack))) MiB (limit $TRAVEL_MIB MiB)"
  if [ "$tree" -gt $((TRAVEL_MIB * 1048576)) ]; then
    echo "  the tree alone is over the limit: before the stash call, scripts/gpu/pack.sh away stash"
  elif [ $((tree + pack)) -gt $((TRAVEL_MIB * 1048576)) ]; then
    echo "  with the pack it is over the limit: before a call carrying $PACK, scripts/gpu/pack.sh away run"
  fi
}

# What each call needs out of the tree: the stash call keeps the trained pair
# (and the prompts) but not the reference checkpoints or the speech models the
# pair bench does not read; a call carrying the pack keeps none of the large files.
SPEECH_MODELS="models/specstream-speech-recognizer models/specstream-speech-synthesizer"
away_paths() {
  case $1 in
  stash) echo models/reference $SPEECH_MODELS ;;
  run) echo models/reference models/specstream-docs-target models/specstream-docs-draft $SPEECH_MODELS ;;
  *) die "away: stash or run, not '$1'" ;;
  esac
}

# git commands that write the index retry while another engineer's git holds its lock.
git_retry() {
  local i
  for i in 1 2 3 4 5 6 7 8 9 10; do
    "$@" && return 0
    [ -e .git/index.lock ] || return 1
    sleep 1
  done
  return 1
}

away() {
  local p moved=""
  local -a files
  mkdir -p "$AWAY/models"
  for p in $(away_paths "${1:-}"); do
    if [ -e "$p" ] && [ -e "$AWAY/$p" ]; then
      die "$p is both here and in $AWAY: bring things back first (scripts/gpu/pack.sh back)"
    elif [ -e "$p" ]; then
      # skip-worktree: while the files are away, git status and add -A/commit -a leave them alone.
      mapfile -t files < <(git ls-files -- "$p")
      [ ${#files[@]} -eq 0 ] || git_retry git update-index --skip-worktree -- "${files[@]}"
      mv "$p" "$AWAY/$p"
      moved="$moved $p"
    elif [ -e "$AWAY/$p" ]; then
      echo "pack.sh: $p is away already"
    else
      echo "pack.sh: $p is in neither place, nothing to move" >&2
    fi
  done
  [ -z "$moved" ] || echo "moved to $AWAY:$moved (git hides their absence; scripts/gpu/pack.sh back restores them)"
  sizes
}

back() {
  local p
  local -a files
  [ -d "$AWAY/models" ] || {
    echo "pack.sh: nothing away ($AWAY/models does not exist)"
    return 0
  }
  for p in $(cd "$AWAY" && find models -mindepth 1 -maxdepth 1 | sort); do
    if [ -e "$p" ]; then
      diff -rq "$p" "$AWAY/$p" >/dev/null || die "$p is both here and in $AWAY and they differ: sort it out by hand"
      rm -rf "${AWAY:?}/$p"
    else
      mv "$AWAY/$p" "$p"
    fi
    mapfile -t files < <(git ls-files -- "$p")
    [ ${#files[@]} -eq 0 ] || git_retry git update-index --no-skip-worktree -- "${files[@]}"
    echo "back: $p"
  done
  rmdir "$AWAY/models" "$AWAY" 2>/dev/null || true
  git status --short -- models
}

build() {
  [ "$(uname -m)" = x86_64 ] || die "the GPU machine is x86-64; this is $(uname -m), whose node and dawn.node would not run there"
  [ -d node_modules/.pnpm ] || die "no node_modules: install first (bash scripts/ensure-install.sh)"
  local node webgpu esbuild fixtures p missing
  node=$(readlink -f "$(command -v node)") || die "no node on PATH"
  "$node" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
    die "$node is $("$node" --version); the project needs Node 20 or newer"
  webgpu=$(readlink -f packages/core/node_modules/webgpu 2>/dev/null ||
    find node_modules/.pnpm -maxdepth 3 -path '*/webgpu@*/node_modules/webgpu' | sort -V | tail -1)
  [ -f "$webgpu/dist/linux-x64/dawn.node" ] || die "no webgpu package with dist/linux-x64/dawn.node (looked at '$webgpu')"
  esbuild=$(find node_modules/.pnpm -maxdepth 3 -path '*/esbuild@*/node_modules/esbuild' | sort -V | tail -1)
  [ -f "$esbuild/lib/main.js" ] || die "no esbuild package under node_modules/.pnpm"
  mkdir -p "$PACK/node_modules/webgpu" "$PACK/debs"

  if fresh "$PACK/node.xz" "$node"; then
    echo "node.xz: up to date ($("$node" --version))"
  else
    echo "node.xz: compressing $node ($("$node" --version), about 40 s)"
    compress "$node" "$PACK/node.xz"
  fi
  "$node" --version >"$PACK/node.version"

  # index.js picks dist/<platform>-<arch>/dawn.node; run.sh puts the unpacked one there.
  cp -p "$webgpu/index.js" "$webgpu/package.json" "$webgpu/LICENSE.md" "$PACK/node_modules/webgpu/"
  if fresh "$PACK/node_modules/webgpu/dawn.node.xz" "$webgpu/dist/linux-x64/dawn.node"; then
    echo "dawn.node.xz: up to date"
  else
    echo "dawn.node.xz: compressing $webgpu/dist/linux-x64/dawn.node"
    compress "$webgpu/dist/linux-x64/dawn.node" "$PACK/node_modules/webgpu/dawn.node.xz"
  fi

  missing=""
  for p in $DEBS; do
    if ! ls "$PACK/debs/${p}_"*.deb >/dev/null 2>&1; then
      # The device README's own download folder, if someone made it.
      if ls .gl/"${p}_"*amd64.deb >/dev/null 2>&1; then cp -p .gl/"${p}_"*amd64.deb "$PACK/debs/"; else missing="$missing $p"; fi
    fi
  done
  if [ -n "$missing" ]; then
    echo "debs: downloading$missing (amd64)"
    local o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
    mkdir -p /tmp/amd64/partial
    # shellcheck disable=SC2086
    if ! (cd "$PACK/debs" && apt-get "${o[@]}" download $missing) >/dev/null 2>&1; then
      apt-get "${o[@]}" update >/dev/null || die "apt-get update failed (network?); the debs can also be put in .gl/"
      # shellcheck disable=SC2086
      (cd "$PACK/debs" && apt-get "${o[@]}" download $missing) || die "apt-get download$missing failed"
    fi
  else
    echo "debs: up to date"
  fi

  fixtures=${SPECSTREAM_FIXTURES:-../shared/fixtures/hf}
  if [ -d "$fixtures" ]; then
    if fresh "$PACK/fixtures.tar.xz" "$fixtures"; then
      echo "fixtures.tar.xz: up to date ($fixtures)"
    else
      echo "fixtures.tar.xz: packing $fixtures"
      tar -C "$fixtures" -cf "$PACK/fixtures.tar" .
      compress "$PACK/fixtures.tar" "$PACK/fixtures.tar.xz"
      rm -f "$PACK/fixtures.tar"
    fi
  else
    rm -f "$PACK/fixtures.tar.xz"
    echo "fixtures: $fixtures not found; the models and speculative suites will fail on the GPU without them" >&2
  fi

  echo "bundles (esbuild $(basename "$(dirname "$(dirname "$esbuild")")")):"
  "$node" scripts/gpu/bundle.mjs "$esbuild" "$PACK"

  # The bundles are the sources as they are now: which commit, and whether the tree had changes.
  echo "bundled $(date -u +%Y-%m-%dT%H:%MZ) from $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- packages bench scripts test-support 2>/dev/null || echo ' with uncommitted changes')" >"$PACK/source.txt"
  echo "sizes:"
  for p in "$PACK/node.xz" "$PACK/node_modules/webgpu/dawn.node.xz" "$PACK/debs" "$PACK/fixtures.tar.xz"; do
    [ ! -e "$p" ] || printf '  %6s MiB  %s\n' "$(mib "$(bytes "$p")")" "$p"
  done
  printf '  %6s MiB  %s\n' "$(mib "$(cat "$PACK"/*.mjs | wc -c)")" "$PACK/*.mjs ($(ls "$PACK"/*.mjs | wc -l) files)"
  local total
  total=$(bytes "$PACK")
  printf '  %6s MiB  %s (limit %s MiB)\n' "$(mib "$total")" "$PACK/ in all" "$LIMIT_MIB"
  [ "$total" -le $((LIMIT_MIB * 1048576)) ] || die "$PACK/ is over $LIMIT_MIB MiB"
  sizes
}

case ${1:-build} in
build) build ;;
sizes) sizes ;;
away) away "${2:-}" ;;
back) back ;;
*) die "unknown command '$1' (build, sizes, away stash|run, back)" ;;
esac
