#!/usr/bin/env bash
# One device call (carry .gpu, models away): transformers on the same shapes unless a JSON
# measured on the same kind of card earlier in the session is given as $1, then the GPU suite,
# then the webgpu test suites; more arguments go to the bench (e.g. --gpu-per-op ''). docs/gpu.md
# has the calls around it.
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
  bash scripts/gpu/run.sh bench --only gpu --gpu-transformers "$json" --gpu-steps 24 --gpu-reps 3 --gpu-per-op f32 "$@" 2>&1 |
  grep -E '^  G |rror|failed' | cut -c1-230
b=${PIPESTATUS[0]}
bash scripts/gpu/run.sh test >/tmp/tests.out 2>&1
t=$?
grep -h '^Tests ' "$OUT"/test-*.log
# One file for the five logs: what comes back is at most 8 files.
tar -czf "$OUT/test-logs.tgz" -C "$OUT" $(cd "$OUT" && ls test-*.log) && rm -f "$OUT"/test-*.log
exit $((t | b))
