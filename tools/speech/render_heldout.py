"""Held-out speech for the speech benchmark (bench/speech): the first N held-out
sentences (models/speech-heldout-sentences.json, never trained on), each spoken by a trained voice
(drawn as in training, seed 2024 + 1) and by the held-out voice (flite kal16),
written as 16 kHz WAV files with a manifest.json of {wav, text, transcript,
voice, heldout_voice}. Needs tools/speech/fetch-tts.sh first.

    python3 tools/speech/render_heldout.py --out DIR [--count 40] [--skip 0]
"""

import argparse
import json
import random
import sys
import wave
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import render  # noqa: E402
from text import transcript  # noqa: E402

HELDOUT_VOICE = render.Voice("flite", "kal16", 1.0, 0)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sentences", type=Path, default=Path("models/speech-heldout-sentences.json"))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--count", type=int, default=40)
    p.add_argument("--skip", type=int, default=0,
                   help="start at this sentence (the beam's tuning set starts after the benchmark's)")
    args = p.parse_args()
    heldout = json.loads(args.sentences.read_text())
    heldout = (heldout["heldout"] if isinstance(heldout, dict) else heldout)[: args.skip + args.count]
    if len(heldout) < args.skip + args.count:
        raise SystemExit(f"--skip {args.skip} --count {args.count}: only {len(heldout)} held-out sentences")
    rng = random.Random(2025)
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = []
    for i, text in enumerate(heldout):
        # Every sentence draws its voice, rendered or not, so sentence i has one voice whatever --skip is.
        trained_voice = render.random_training_voice(rng)
        if i < args.skip:
            continue
        for kind, voice in (("trained", trained_voice), ("heldout", HELDOUT_VOICE)):
            name = f"{i:03d}-{kind}.wav"
            audio = np.clip(render.render(text, voice), -1, 1)
            with wave.open(str(args.out / name), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(render.SAMPLE_RATE)
                w.writeframes((audio * 32767).astype("<i2").tobytes())
            manifest.append(dict(wav=name, text=text, transcript=transcript(text), voice=voice.label(),
                                 heldout_voice=kind == "heldout"))
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{len(manifest)} utterances in {args.out}")


if __name__ == "__main__":
    main()
