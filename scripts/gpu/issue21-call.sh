#!/usr/bin/env bash
# One device call (carry .gpu, models away): transformers on the same shapes unless a JSON
# measured on the same kind of card earlier in the session is given as $1, then the GPU suite,
# then the webgpu test suites; more arguments go to the bench (e.g. --gpu-per-op ''). docs/gpu.md
# has the calls around it. With SPECSTREAM_PAIR_ARGS set (the models stashed by the call before,
# or sent), the pair suite runs between the two with those arguments (e.g. "--pair-prompts-count 8
# --pair-max-k 6"). SPECSTREAM_GPU_SUITE_S caps the GPU suite's seconds (default: no cap), so
# what follows it still runs inside the call's limit.
set -u
nvidia-smi -L | tee "$OUT/gpu-id.txt"
given=${1:-}
shift || true
json=/tmp/transformers-shapes.json
card=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
if [ -n "$given" ] && [ -f "$given" ] && { grep -q "\"device\": \"$card\"" "$given" || [ -n "${SPECSTREAM_KEEP_TRANSFORMERS:-}" ]; }; then
  echo "transformers: $given was measured on a $card too; not measured again"
  cp "$given" "$json"
else
  python3 tools/peers/transformers_shapes.py --out "$json" --max-seconds 150 >"$OUT/transformers-shapes.log" 2>&1
  tail -18 "$OUT/transformers-shapes.log" | cut -c1-100
fi
cp "$json" "$OUT/"
SPECSTREAM_DAWN_OPTIONS='enable-dawn-features=allow_unsafe_apis;disable-dawn-features=timestamp_quantization' \
  timeout "${SPECSTREAM_GPU_SUITE_S:-0}" bash scripts/gpu/run.sh bench --only gpu --gpu-transformers "$json" --gpu-steps 24 --gpu-reps 3 --gpu-per-op f32 "$@" 2>&1 |
  grep -E '^  G |rror|failed' | cut -c1-230
b=${PIPESTATUS[0]}
if [ -n "${SPECSTREAM_PAIR_ARGS:-}" ]; then
  # shellcheck disable=SC2086 # the arguments are meant to split
  bash scripts/gpu/run.sh bench --only pair $SPECSTREAM_PAIR_ARGS 2>&1 | grep -vE '^\s*$' | tail -40 | cut -c1-200
  b=$((b | PIPESTATUS[0]))
fi
bash scripts/gpu/run.sh test >/tmp/tests.out 2>&1
t=$?
grep -h '^Tests ' "$OUT"/test-*.log
# One file for the five test logs, the card's id and transformers' JSON: what comes back is at
# most 8 files.
extra=$(cd "$OUT" && ls test-*.log gpu-id.txt transformers-shapes.json 2>/dev/null)
# shellcheck disable=SC2086 # one name a line, none with spaces
tar -czf "$OUT/call-extra.tgz" -C "$OUT" $extra && (cd "$OUT" && rm -f $extra)
exit $((t | b))
