"""A tiny random streaming CTC recogniser as a test fixture for the TypeScript
loader (packages/models/src/speech/): the checkpoint format of
tools/train/speech_models.py's CtcRecognizer with some 8,500 seeded
weights, and what its PyTorch twin computes on a short input.

Writes packages/models/test/fixtures/speech-recognizer-tiny/:
  config.json        the shipped model's fields, tiny sizes
  model.safetensors  export_state() in F32 (the (x + 4) / 4 map folded into conv1)
  reference.json     the twin's logits, in float64: on `mel` (raw log-mel frames) as
                     `logits` (the model as trained, the map in forward), `logits_folded`
                     (the exported weights: equal up to float32 rounding, which checks the
                     fold) and `logits_f16_weights` (the F16 file's weights); on `audio`
                     (int16 samples of a synthetic signal) through the twin's Whisper log-mel
and speech-recognizer-tiny-f16/{config.json, model.safetensors}: the same
weights in F16, as the trainer ships them.

Run with a Python that has torch, safetensors and transformers (the mel filters):
  /tmp/specstream-onnx-venv/bin/python tools/speech/fixture_recognizer.py
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "train"))
from speech_models import CtcRecognizer, mel_filters, randomize_parameters, whisper_log_mel  # noqa: E402

OUT = ROOT / "packages" / "models" / "test" / "fixtures"
VOCABULARY = ["", " ", "'"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
CONFIG = dict(
    model_type="specstream-ctc", n_mels=80, conv_channels=12, d_model=16, layers=2, heads=2, ff_dim=32,
    vocab_size=len(VOCABULARY), norm_eps=1e-5, activation="gelu", rotary_theta=10000.0, left_context=5,
    sample_rate=16000, n_fft=400, hop=160, chunk_frames=8, vocabulary=VOCABULARY,
)
# Chosen among the first 60 for what the tests need: the greedy path of `mel` has a blank,
# a space, repeated labels and 5+ distinct ones, and no near-tie (top-2 gap 0.06 at least).
SEED = 35
# 54 frames: 13 output frames, the last 2 input frames short of a group (they give none).
MEL_FRAMES = 54
# 0.45 s of audio: 45 log-mel frames, 11 output frames.
AUDIO_SAMPLES = 7200


def random_model() -> CtcRecognizer:
    """Seeded N(0, 4/fan_in) matrices and filters (twice the usual scale: with less, every frame's
    argmax is the same label and the CTC paths go untested), N(0, 0.1²) biases, norms away from
    1 and 0 so a missing one shows."""
    torch.manual_seed(SEED)
    model = randomize_parameters(CtcRecognizer(CONFIG), lambda _, p, z: z * 2 / math.sqrt(p[0].numel()))
    return model.eval()


def folded_twin(state: dict[str, torch.Tensor]) -> CtcRecognizer:
    """The twin on exported weights, in float64: raw log-mel in, as the TypeScript encoder takes
    it; float64 so the references hold the weights' own arithmetic, not float32 rounding."""
    model = CtcRecognizer(CONFIG, folded=True)
    model.load_state_dict({k: v.double() for k, v in state.items()}, assign=True)
    return model.double().eval()


def synthetic_speechlike(samples: int) -> torch.Tensor:
    """A gliding harmonic tone with a syllable-rate envelope over a little noise, as int16 steps
    (exact in JSON and WAV). The noise keeps every mel bin well above log-mel's 1e-10 floor, where
    float32 STFTs of the twin and the TypeScript front end would differ by whole units of 1e-3."""
    t = torch.arange(samples, dtype=torch.float64) / CONFIG["sample_rate"]
    pitch = 2 * math.pi * (140 * t + 60 * t**2)
    tone = sum(torch.sin(k * pitch) / k for k in range(1, 6))
    envelope = 0.5 * (1 - torch.cos(2 * math.pi * 4 * t))
    noise = torch.randn(samples, generator=torch.Generator().manual_seed(SEED), dtype=torch.float64)
    audio = 0.3 * envelope * tone + 0.01 * noise
    return torch.round(audio * 32768).clamp(-32768, 32767)


def rounded(values: torch.Tensor, digits: int) -> torch.Tensor:
    """Values as JSON will carry them, so both sides start from the same float32 numbers."""
    return torch.tensor([round(v, digits) for v in values.flatten().tolist()], dtype=torch.float32).view(values.shape)


def main() -> None:
    model = random_model()
    exported = model.export_state()
    f16 = {k: v.half() for k, v in exported.items()}
    twin = folded_twin(exported)
    twin_f16 = folded_twin(f16)

    generator = torch.Generator().manual_seed(SEED)
    # Raw log10 mel of speech spans about -6 … 1; a drifting level gives the frames some structure.
    level = torch.cumsum(torch.randn(1, MEL_FRAMES, 1, generator=generator), 1) * 0.8 - 2
    noise = torch.randn(1, MEL_FRAMES, CONFIG["n_mels"], generator=generator)
    mel = rounded((level + noise).clamp(-6, 1), 4)
    pcm = synthetic_speechlike(AUDIO_SAMPLES)
    filters = mel_filters(CONFIG["n_mels"], CONFIG["n_fft"], CONFIG["sample_rate"], "cpu")
    audio_mel = whisper_log_mel((pcm / 32768).float()[None], filters, CONFIG["n_fft"], CONFIG["hop"])

    with torch.no_grad():
        # The unfolded model (as trained: the map in forward) against the folded weights.
        logits = model.double()(mel.double())
        logits_folded = twin(mel.double())
        logits_f16 = twin_f16(mel.double())
        audio_logits = twin(audio_mel.double())
    # Only float32 rounding of the folded conv1 separates the two.
    fold_error = (logits - logits_folded).abs().max().item()
    assert fold_error < 1e-4, f"export_state's fold changes the logits by {fold_error}"

    def values(t: torch.Tensor) -> list[float]:
        return [float(f"{v:.7g}") for v in t.flatten().tolist()]

    reference = {
        "about": "tools/speech/fixture_recognizer.py: the PyTorch twin (tools/train/speech_models.py) on this folder's weights",
        "mel": {"frames": MEL_FRAMES, "values": values(mel)},
        "logits": {"frames": logits.shape[1], "values": values(logits)},
        "logits_folded": {"frames": logits_folded.shape[1], "values": values(logits_folded)},
        "logits_f16_weights": {"frames": logits_f16.shape[1], "values": values(logits_f16)},
        "audio": {
            "pcm16": [int(v) for v in pcm.tolist()],
            "mel_frames": audio_mel.shape[1],
            "logits": {"frames": audio_logits.shape[1], "values": values(audio_logits)},
        },
        "fold_max_abs_error": fold_error,
    }
    write_folder(OUT / "speech-recognizer-tiny", exported, reference)
    write_folder(OUT / "speech-recognizer-tiny-f16", f16, None)


def write_folder(dest: Path, state: dict[str, torch.Tensor], reference: dict | None) -> None:
    from safetensors.torch import save_file

    dest.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(dest / "model.safetensors"), metadata={"format": "pt"})
    (dest / "config.json").write_text(json.dumps(CONFIG, indent=1) + "\n")
    if reference is not None:
        (dest / "reference.json").write_text(json.dumps(reference) + "\n")
    sizes = ", ".join(f"{p.name} {p.stat().st_size / 1000:.1f} kB" for p in sorted(dest.iterdir()))
    print(f"{dest.relative_to(ROOT)}: {sizes}")


if __name__ == "__main__":
    main()
