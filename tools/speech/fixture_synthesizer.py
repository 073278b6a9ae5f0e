"""A tiny random reference synthesizer as a test fixture for the TypeScript
loader (packages/models/src/speech/): the checkpoint format of
tools/train/speech_models.py's ReferenceSynthesizer (and train_speech.py's
config.json) with a few tens of thousands of seeded weights, and what its
PyTorch twin computes, autoregressively, for two texts.

Writes packages/models/test/fixtures/speech-synthesizer-tiny/:
  config.json        the shipped model's fields, tiny sizes
  model.safetensors  export_state() in F32
  reference.json     texts, their spoken form and ids, and per text the
                     frames [steps, r·n_mels] and stop logits [steps] of
                     `steps` decoder steps run after the whole text is known

The twin runs in float64 (on the F32 weights) so the reference carries no
float32 rounding of its own; the TypeScript side, in float32, should agree to
about 1e-5.

Run from the repository root (torch, numpy, safetensors, transformers):
  /tmp/specstream-onnx-venv/bin/python tools/speech/fixture_synthesizer.py
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "train"))
sys.path.insert(0, str(ROOT / "tools" / "speech"))
from speech_models import ReferenceSynthesizer, randomize_parameters  # noqa: E402
from text import normalize  # noqa: E402

OUT = ROOT / "packages" / "models" / "test" / "fixtures" / "speech-synthesizer-tiny"
SYMBOLS = ["<pad>", " ", "'", ",", ".", "?", "!"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
CONFIG = dict(
    model_type="specstream-synthesizer", vocab_size=len(SYMBOLS), hidden_size=32, heads=2, text_layers=1,
    decoder_layers=2, ff_size=48, prenet_size=16, n_mels=20, frames_per_step=2, sample_rate=16000, hop=64,
    n_fft=256, text_lookahead=2, text_tokens_per_step=0.5, stop_threshold=0.5, max_text_tokens=256,
    norm_eps=1e-5, rotary_theta=10000.0, mel_floor=1e-5, symbols=SYMBOLS, vocoder=dict(iterations=4, lookahead=2),
)
SEED = 2207
TEXTS = ["Hello, world!", "It's 3.11 -- isn't it?"]
# Decoder steps per text: past the first step that sees the whole text (lookahead + ⌊s·rate⌋ ≥ length).
EXTRA_STEPS = 6
# Stop-head bias: random weights know nothing of when speech ends. With this one the stop logit
# is positive on most steps, so both texts stop at the first step that sees all of their text
# (the steps before it must not stop), as a trained model's utterance ends.
STOP_BIAS = 0.6
# Frame-head bias: log10 mel power of the order of a real utterance's.
FRAME_BIAS = -1.5


def text_ids(spoken: str) -> list[int]:
    """train_speech.py's text_ids: characters outside the symbols are dropped."""
    return [SYMBOLS.index(c) for c in spoken if c in SYMBOLS]


def random_model() -> ReferenceSynthesizer:
    """Seeded N(0, 1/fan_in) matrices, N(0, 0.1²) biases, norms 1 + N(0, 0.1²) with N(0, 0.1²) biases,
    so that a norm whose weight or bias is not applied shows."""
    torch.manual_seed(SEED)
    model = randomize_parameters(
        ReferenceSynthesizer(CONFIG),
        lambda name, p, z: z if name == "embed_tokens.weight" else z / math.sqrt(p.shape[1]),
    )
    with torch.no_grad():
        model.stop_head.bias.fill_(STOP_BIAS)
        model.frame_head.bias.add_(FRAME_BIAS)
    return model.eval()


@torch.no_grad()
def autoregressive(model: ReferenceSynthesizer, ids: list[int], steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The TypeScript extendStep's loop: step 0's prenet reads zeros, step s the last frame of step
    s − 1. forward() is causal over steps, so each call on the growing `previous` recomputes the
    earlier steps unchanged; the last call gives every step's frames and stop logit."""
    r, m = CONFIG["frames_per_step"], CONFIG["n_mels"]
    text = torch.tensor([ids])
    lengths = torch.tensor([len(ids)])
    previous = torch.zeros(1, 1, m, dtype=torch.float64)
    for s in range(steps):
        frames, stop, _ = model(text, lengths, previous)
        if s + 1 < steps:
            previous = torch.cat([previous, frames[:, s : s + 1, (r - 1) * m :]], dim=1)
    return frames[0], stop[0]


def first_step_seeing_all(length: int) -> int:
    s = 0
    while CONFIG["text_lookahead"] + math.floor(s * CONFIG["text_tokens_per_step"]) < length:
        s += 1
    return s


def main() -> None:
    model = random_model()
    OUT.mkdir(parents=True, exist_ok=True)
    state = model.export_state()
    save_file({k: v.contiguous() for k, v in state.items()}, str(OUT / "model.safetensors"), metadata={"format": "pt"})
    (OUT / "config.json").write_text(json.dumps(CONFIG, indent=1) + "\n")

    twin = model.double()
    cases = []
    for text in TEXTS:
        spoken = normalize(text)
        ids = text_ids(spoken)
        steps = first_step_seeing_all(len(ids)) + EXTRA_STEPS
        frames, stop = autoregressive(twin, ids, steps)
        cases.append(dict(
            text=text, spoken=spoken, ids=ids, steps=steps,
            frames=[[round(v, 7) for v in row] for row in frames.tolist()],
            stop_logits=[round(v, 7) for v in stop.tolist()],
        ))
        print(f"{text!r}: {len(ids)} ids, {steps} steps, stop logits of the last steps {[round(v, 2) for v in stop.tolist()[-EXTRA_STEPS:]]}")
    (OUT / "reference.json").write_text(json.dumps(dict(seed=SEED, cases=cases)) + "\n")
    for f in sorted(OUT.iterdir()):
        print(f"{f.relative_to(ROOT)}: {f.stat().st_size} bytes")


if __name__ == "__main__":
    main()
