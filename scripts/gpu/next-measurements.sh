#!/usr/bin/env bash
# One device call (carry .gpu, after the stash call; docs/gpu.md, "Measurements waiting for a
# GPU"): the pair with two reads an iteration against one (--pair-verify-on-device), and with
# --rows first the product program's row block 16 against 32 at batches 8 and 32 (measured
# 2026-12-07c: 32 is slower), each alternated twice so drift shows. Every run's logs and results
# go into one tar ($OUT/next-measurements.tgz: a call brings back at most 8 files), rewritten
# after each run so a call cut off by its time limit still brings back what finished; the key
# lines are printed.
set -u
: "${OUT:?set OUT to the folder that comes back}"
final=$OUT
scratch=$(mktemp -d)
nvidia-smi -L | tee "$scratch/gpu-id.txt"
shapes=${SPECSTREAM_NEXT_SHAPES:-Llama-0.5B f32,Llama-0.5B f16,GPT-2 small f32}
blocks=""
[ "${1:-}" = --rows ] && blocks="16 32 16 32"
rc=0
i=0
for block in $blocks; do
  i=$((i + 1))
  echo "== gpu suite, SPECSTREAM_LINEAR_ROW_BLOCK=$block"
  mkdir -p "$scratch/$i-gpu-block-$block"
  OUT="$scratch/$i-gpu-block-$block" SPECSTREAM_LINEAR_ROW_BLOCK=$block bash scripts/gpu/run.sh bench --only gpu \
    --gpu-shapes "$shapes" --gpu-batches 8,32 --gpu-steps 24 --gpu-reps 3 --gpu-per-op '' 2>&1 |
    grep -E '^  G [^ ]' | grep -v profile | cut -c1-170
  rc=$((rc | PIPESTATUS[0]))
  tar -czf "$final/next-measurements.tgz" -C "$scratch" .
done
for flag in "" --pair-verify-on-device "" --pair-verify-on-device; do
  i=$((i + 1))
  name=${flag:+one-read}
  name=${name:-two-reads}
  echo "== pair, $name"
  mkdir -p "$scratch/$i-pair-$name"
  # shellcheck disable=SC2086 # an empty flag is no argument
  OUT="$scratch/$i-pair-$name" bash scripts/gpu/run.sh bench --only pair --pair-prompts-count 6 --pair-max-k 4 $flag 2>&1 |
    grep -E '│ +(0 \(target\)|[1-4]|adaptive) |best fixed' | cut -c1-130
  rc=$((rc | PIPESTATUS[0]))
  tar -czf "$final/next-measurements.tgz" -C "$scratch" .
done
ls -la "$final"
exit "$rc"
