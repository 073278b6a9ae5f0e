"""A plumbing check of train_speech.py on this machine's CPU, before spending GPU time on it.

Debian's python3-torch here is 1.13 (no scaled_dot_product_attention; autocast("cuda") asks for
CUDA even when disabled) and there is no transformers or scipy: this shims those, builds a tiny
synthetic corpus (noise with random transcripts, no TTS), and runs a few steps of the recognizer's
and the synthesizer's training loops with their augmentations (the vocoded share included), then
the corpus split with and without --only recognizer. It checks that the code runs end to end and
that losses are finite; the stand-in mel filter bank is triangular on a linear scale, so nothing
numeric carries over to the real run.

    /usr/bin/python3 tools/train/smoke_cpu.py
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def shim() -> None:
    if not hasattr(F, "scaled_dot_product_attention"):
        def sdpa(q, k, v, attn_mask=None, is_causal=False, dropout_p=0.0, **_):
            s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
            if is_causal:
                n, m = s.shape[-2:]
                attn_mask = torch.ones(n, m, dtype=torch.bool, device=s.device).tril(m - n)
            if attn_mask is not None:
                s = s.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else s + attn_mask
            return torch.softmax(s, -1) @ v
        F.scaled_dot_product_attention = sdpa
    try:
        import transformers.audio_utils  # noqa: F401
    except ImportError:
        def mel_filter_bank(num_frequency_bins, num_mel_filters, *_, **__):
            f = np.arange(num_frequency_bins, dtype=np.float64)
            c = np.linspace(0, num_frequency_bins - 1, num_mel_filters + 2)
            out = np.zeros((num_frequency_bins, num_mel_filters))
            for m in range(num_mel_filters):
                lo, mid, hi = c[m], c[m + 1], c[m + 2]
                out[:, m] = np.clip(np.minimum((f - lo) / (mid - lo), (hi - f) / (hi - mid)), 0, None)
            return out
        audio_utils = types.ModuleType("transformers.audio_utils")
        audio_utils.mel_filter_bank = mel_filter_bank
        sys.modules["transformers"] = types.ModuleType("transformers")
        sys.modules["transformers.audio_utils"] = audio_utils
    try:
        import scipy.signal  # noqa: F401
    except ImportError:
        signal = types.ModuleType("scipy.signal")
        signal.resample_poly = lambda *a, **k: (_ for _ in ()).throw(NotImplementedError("no scipy here"))
        sys.modules["scipy"] = types.ModuleType("scipy")
        sys.modules["scipy.signal"] = signal


def main() -> None:
    shim()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import train_speech as ts

    if not torch.cuda.is_available():
        ts.torch.autocast = lambda *a, **k: contextlib.nullcontext()
    rng = np.random.default_rng(0)
    words = ["hello", "world", "python", "module", "the", "a", "function", "returns"]
    texts = [" ".join(rng.choice(words, size=3 + i % 4)) + "." for i in range(24)]
    audio = [(rng.standard_normal(8000 * (2 + i % 3)) * 3000).astype(np.int16) for i in range(len(texts))]
    jobs = [(t, ts.SYNTH_VOICE) for t in texts]
    corpus = {"train": (jobs, audio), "synth_train": (jobs, audio)}
    args = argparse.Namespace(
        smoke=True, recognizer_lr=1e-3, synthesizer_lr=1e-3, vocoded_share=0.5, vocoded_iterations=4,
        batch_samples=16000 * 8, synth_batch_samples=16000 * 8, recognizer_epochs=1, synthesizer_epochs=1,
        recognizer_seconds=15, synthesizer_seconds=15, guided_weight=2.0, sampled_share=0.5,
        checkpoint=None, recognizer_total_seconds=None, synthesizer_total_seconds=None, eq_share=0.5,
    )
    device = torch.device("cpu")
    report: dict = {}
    model = ts.train_recognizer(corpus, args, device, report)
    ts.train_synthesizer(corpus, args, device, report)
    others = [ts.render.Voice("gnuspeech", "female", 1.0, -4), ts.render.Voice("pico", "en-GB", 100, 80)]
    mixed = [(t, others[i % 3 - 1] if i % 3 else v) for i, (t, v) in enumerate(jobs[:6])]
    scores = ts.evaluate_recognizer(model, mixed, audio[:6], ts.mel_filters(80, 400, 16000, device), device)
    assert set(scores["engines"]) == {"espeak", "gnuspeech", "pico"} and sum(e["words"] for e in scores["engines"].values()) == scores["words"], scores
    print(f"evaluate_recognizer: WER {scores['wer']} over {scores['words']} words, by engine {scores['engines']}")
    for name in ("recognizer", "synthesizer"):
        losses = [h["loss"] for h in report[name]["history"]]
        assert losses and all(math.isfinite(x) for x in losses), (name, losses)
        print(f"{name}: {report[name]['steps']} steps, first loss {losses[0]}")

    # The random equaliser: within its ±17 dB, smooth across bins, on about its share of utterances.
    eq = ts.random_eq(400, 200, torch.Generator().manual_seed(0), 0.5, torch.device("cpu"))
    db = 10 * torch.log10(eq)
    flat = (db == 0).all(1).float().mean().item()
    assert db.abs().max().item() <= 17 + 1e-3 and 0.4 < flat < 0.6, (db.abs().max(), flat)
    assert (db[:, 1:] - db[:, :-1]).abs().max().item() < 0.5, "the curve is smooth"
    print(f"random_eq: {1 - flat:.2f} of utterances shaped, up to {db.abs().max().item():.1f} dB")

    # A run over several calls: the second call resumes the first's state and goes on counting.
    with tempfile.TemporaryDirectory() as folder:
        for name, train in (("recognizer", ts.train_recognizer), ("synthesizer", ts.train_synthesizer)):
            calls = argparse.Namespace(**{**vars(args), "checkpoint": Path(folder), f"{name}_seconds": 4,
                                          f"{name}_total_seconds": 8, f"{name}_epochs": 50})
            first: dict = {}
            train(corpus, calls, device, first)
            second: dict = {}
            train(corpus, calls, device, second)
            a, b = first[name], second[name]
            assert b["calls"] == 2 and b["steps"] > a["steps"] > 0, (a, b)
            assert b["history"][: len(a["history"])] == a["history"], "the second call keeps the first's history"
            assert a["total_seconds"] < b["total_seconds"] <= 8 + 4, (a, b)
            print(f"{name} resumed: {a['steps']} steps, then {b['steps']} ({b['total_seconds']} of 8 s)")

    ts.render_all = lambda jobs, workers: [np.zeros(1600 * (1 + i % 3), dtype=np.int16) for i in range(len(jobs))]
    sentences = {"train": texts[:6], "heldout": texts[6:9]}
    for only in ("recognizer", None):
        a = argparse.Namespace(limit=0, heldout_limit=10, renders=2, flite_share=0.3, festival_share=0.15, festival_voices=2, gnuspeech_share=0.1, pico_share=0.1, workers=1, only=only)
        c = ts.speech_corpus(sentences, a)
        sizes = {k: len(v[1]) for k, v in c.items() if k != "stats"}
        assert sizes["train"] == 12 and sizes["heldout_voice"] == 3, sizes
        assert (sizes["synth_train"] == 0) == (only == "recognizer"), sizes
        print(f"corpus (--only {only}): {sizes}")
    # The corpus kept between calls: the second read is the first's, other settings render anew.
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "sentences.json").write_text(json.dumps(sentences))
        a = argparse.Namespace(limit=0, heldout_limit=10, renders=2, flite_share=0.3, festival_share=0.15, festival_voices=2, gnuspeech_share=0.1, pico_share=0.1, workers=1,
                               only="recognizer", sentences=Path(folder) / "sentences.json", corpus_cache=Path(folder))
        made = ts.cached_corpus(a)
        ts.render_all = lambda jobs, workers: (_ for _ in ()).throw(AssertionError("rendered again"))
        kept = ts.cached_corpus(a)
        assert kept["stats"] == made["stats"] and all(np.array_equal(x, y) for x, y in zip(kept["train"][1], made["train"][1]))
        try:
            ts.cached_corpus(argparse.Namespace(**{**vars(a), "renders": 1}))
            raise SystemExit("a cache made with other settings was used")
        except AssertionError:
            pass
        print("corpus cache: ok")
    print("smoke: ok")


if __name__ == "__main__":
    main()
