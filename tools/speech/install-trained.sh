#!/usr/bin/env bash
# Puts trained speech models from the GPU machine (tools/speech/gpu-train.sh's recognizer.tar,
# synthesizer.tar) into models/, file by file: what the tar does not hold stays (the recogniser's
# lm-text.txt, the LM's text, is made here, not there). Then run the shipped-speech tests and
# `pnpm bench --only speech --backends wasm`, and update models/SPEECH.md from report.json.
#
#   bash tools/speech/install-trained.sh /path/to/recognizer.tar [/path/to/synthesizer.tar]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
[ $# -ge 1 ] || { echo "usage: $0 recognizer.tar|synthesizer.tar ..." >&2; exit 2; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for tar in "$@"; do
  [ -f "$tar" ] || { echo "$tar: no such file" >&2; exit 1; }
  tar -C "$scratch" -xf "$tar"
done
for folder in "$scratch"/specstream-speech-*; do
  [ -d "$folder" ] || { echo "no specstream-speech-* folder in $*" >&2; exit 1; }
  name=$(basename "$folder")
  [ -f "$folder/config.json" ] && [ -f "$folder/model.safetensors" ] || { echo "$name: config.json or model.safetensors missing" >&2; exit 1; }
  mkdir -p "$root/models/$name"
  # A shipped ensemble (config.json's "ensemble") names its members; the trained config names none,
  # so installing over it would leave the old members unused: say so rather than guess a new ensemble.
  if grep -q '"ensemble"' "$root/models/$name/config.json" 2>/dev/null; then
    echo "models/$name/config.json lists an ensemble; the new config.json does not: the folder is now the new model alone (delete the old members, or add \"ensemble\" back, models/SPEECH.md)" >&2
  fi
  cp -r "$folder"/. "$root/models/$name/"
  chmod -R u+rwX,go+rX "$root/models/$name"
  echo "models/$name: $(cd "$folder" && find . -type f | sort | tr '\n' ' ')"
done
