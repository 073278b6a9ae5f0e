#!/usr/bin/env bash
# On the GPU machine (docs/gpu.md): unpack the TTS engines carried in .tts/debs,
# train both speech models (tools/train/train_speech.py, arguments passed on)
# and put the results under $OUT as tars, since only files two folders down
# come back: recognizer.tar, synthesizer.tar, report.json, train.log.
set -uo pipefail
cd "$(dirname "$0")/../.."
: "${OUT:?set OUT to the folder that comes back}"
bash tools/speech/fetch-tts.sh --unpack-only || exit 1
work=/tmp/speech-train
PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True PYTHONUNBUFFERED=1 python3 tools/train/train_speech.py --out "$work" "$@" 2>&1 | tee "$OUT/train.log"
status=${PIPESTATUS[0]}
cp "$work/report.json" "$OUT/" 2>/dev/null
cp "$work/synth-sample.wav" "$OUT/" 2>/dev/null
for m in recognizer synthesizer; do
  [ -d "$work/models/specstream-speech-$m" ] && tar -C "$work/models" -cf "$OUT/$m.tar" "specstream-speech-$m"
done
ls -la "$OUT"
exit "$status"
