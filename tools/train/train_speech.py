"""Trains specstream's speech models on one GPU from speech made by Debian's TTS
engines: a streaming CTC recogniser and the reference synthesizer.

    python3 tools/speech/text.py                       # .data/speech/sentences.json
    bash tools/speech/fetch-tts.sh                     # espeak-ng, flite, festival under .tts/root
    python3 tools/train/train_speech.py --out OUT [--only recognizer|synthesizer] [--smoke]

Stages (each logs its wall time): render → recogniser → synthesizer → export
and evaluate. Speech is rendered in parallel into memory (nothing touches
disk); features are computed on the GPU per batch, so augmentation (gain,
noise, vocal-tract-length warping, SpecAugment) differs every epoch. Time caps
(--recognizer-seconds, --synthesizer-seconds) bound both loops so one run fits
a 10-minute command. The recogniser can train longer over several such commands
on one machine: --checkpoint keeps its state between them (the cosine schedule spans
--recognizer-total-seconds) and --corpus-cache the rendered speech. Every random
choice is seeded.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import pickle
import random
import sys
import time
import wave
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "speech"))
import render  # noqa: E402
from speech_models import CtcRecognizer, ReferenceSynthesizer, mel_filters, synth_log_mel, whisper_log_mel  # noqa: E402
from text import transcript  # noqa: E402

VOCABULARY = ["", " ", "'"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
SYMBOLS = ["<pad>", " ", "'", ",", ".", "?", "!"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]

RECOGNIZER = dict(
    model_type="specstream-ctc", n_mels=80, conv_channels=256, d_model=256, layers=8, heads=4, ff_dim=1024,
    vocab_size=len(VOCABULARY), norm_eps=1e-5, activation="gelu", rotary_theta=10000.0, left_context=64,
    sample_rate=16000, n_fft=400, hop=160, chunk_frames=32, vocabulary=VOCABULARY,
)
SYNTHESIZER = dict(
    model_type="specstream-synthesizer", vocab_size=len(SYMBOLS), hidden_size=256, heads=4, text_layers=3,
    decoder_layers=4, ff_size=1024, prenet_size=256, n_mels=80, frames_per_step=4, sample_rate=16000, hop=200,
    n_fft=800, text_lookahead=12, text_tokens_per_step=1.0, stop_threshold=0.5, max_text_tokens=1024,
    norm_eps=1e-5, rotary_theta=10000.0, mel_floor=1e-5, symbols=SYMBOLS, vocoder=dict(iterations=8, lookahead=3),
)
SYNTH_VOICE = render.Voice("espeak", "en-us", 165, 50)
HELDOUT_VOICE = render.Voice("flite", "kal16", 1.0, 0)
SMOKE = dict(d_model=64, conv_channels=64, layers=2, ff_dim=128, hidden_size=64, text_layers=1, decoder_layers=2, ff_size=128, prenet_size=64)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def cosine_lr(step: int, progress: float, peak: float, warmup: int) -> float:
    """Linear warm-up over `warmup` steps, then cosine to 5% over `progress` ∈ [0, 1] of the run."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def to_int16(audio: np.ndarray) -> np.ndarray:
    return (np.clip(audio, -1, 1) * 32767).astype(np.int16)


# ------------------------------------------------------------------ corpus


def render_all(jobs: list[tuple[str, render.Voice]], workers: int) -> list[np.ndarray]:
    with Pool(workers) as pool:
        return [to_int16(a) for a in pool.map(render.render_job, jobs, chunksize=16)]


def speech_corpus(sentences: dict, args) -> dict:
    rng = random.Random(2024)
    train = sentences["train"][: args.limit] if args.limit else sentences["train"]
    heldout = sentences["heldout"][: args.heldout_limit]
    voice = lambda: render.random_training_voice(rng, flite_share=args.flite_share, festival_share=args.festival_share,
                                                 festival_voices=args.festival_voices,
                                                 gnuspeech_share=args.gnuspeech_share, pico_share=args.pico_share)
    recognizer_jobs = [(s, voice()) for s in train for _ in range(args.renders)]
    rng.shuffle(recognizer_jobs)
    trained_voice = [(s, voice()) for s in heldout]
    heldout_voice = [(s, HELDOUT_VOICE) for s in heldout]
    # The held-out speaker is never trained on (flite's kal16; festival's kal_diphone is not even fetched).
    assert all("kal" not in v.name for _, v in recognizer_jobs + trained_voice)
    # The synthesizer's corpus only when it is trained (a sixth of the rendering time otherwise).
    synth = args.only != "recognizer"
    synth_jobs = [(s, SYNTH_VOICE) for s in train] if synth else []
    synth_heldout = [(s, SYNTH_VOICE) for s in heldout] if synth else []
    t = time.time()
    audio = render_all(recognizer_jobs + trained_voice + heldout_voice + synth_jobs + synth_heldout, args.workers)
    cut = np.cumsum([0, len(recognizer_jobs), len(trained_voice), len(heldout_voice), len(synth_jobs)])
    parts = [audio[a:b] for a, b in zip(cut, list(cut[1:]) + [len(audio)])]
    hours = lambda xs: sum(len(x) for x in xs) / 16000 / 3600
    corpus = {
        "train": (recognizer_jobs, parts[0]),
        "heldout_trained_voices": (trained_voice, parts[1]),
        "heldout_voice": (heldout_voice, parts[2]),
        "synth_train": (synth_jobs, parts[3]),
        "synth_heldout": (synth_heldout, parts[4]),
    }
    stats = {k: dict(utterances=len(v[1]), hours=round(hours(v[1]), 2)) for k, v in corpus.items()}
    for k in ("train", "heldout_trained_voices"):
        jobs, clips = corpus[k]
        stats[k]["engines"] = {e: dict(utterances=sum(v.engine == e for _, v in jobs),
                                       hours=round(hours([a for (_, v), a in zip(jobs, clips) if v.engine == e]), 2))
                               for e in sorted({v.engine for _, v in jobs})}
    log(f"rendered {len(audio)} utterances in {time.time() - t:.0f} s: {stats}")
    corpus["stats"] = stats
    return corpus


def cached_corpus(args) -> dict:
    """speech_corpus, kept in --corpus-cache (a folder on the GPU machine's disk, ~3.5 GB) for the
    next call of a run over several calls: reading it back takes seconds where rendering takes a
    minute. A cache made with other settings or sentences is rendered anew."""
    sentences = json.loads(args.sentences.read_text())
    key = dict(sentences=hashlib.sha256(json.dumps(sentences).encode()).hexdigest(), limit=args.limit,
               heldout_limit=args.heldout_limit, renders=args.renders, flite_share=args.flite_share,
               festival_share=args.festival_share, festival_voices=args.festival_voices,
               gnuspeech_share=args.gnuspeech_share, pico_share=args.pico_share, synthesizer=args.only != "recognizer")
    path = args.corpus_cache / "corpus.pkl" if args.corpus_cache else None
    if path is not None and path.exists():
        t = time.time()
        with path.open("rb") as f:
            saved = pickle.load(f)
        if saved["key"] == key:
            log(f"corpus read from {path} in {time.time() - t:.0f} s")
            return saved["corpus"]
        log(f"{path} was made with other settings: rendering anew")
    corpus = speech_corpus(sentences, args)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.with_suffix(".tmp").open("wb") as f:
            pickle.dump(dict(key=key, corpus=corpus), f, protocol=pickle.HIGHEST_PROTOCOL)
        path.with_suffix(".tmp").replace(path)
    return corpus


# ------------------------------------------------------------------ recogniser


def labels(text: str) -> list[int]:
    return [VOCABULARY.index(c) for c in transcript(text)]


BUCKET = 8000  # padded lengths are multiples of 0.5 s: few distinct shapes, so the allocator and kernel caches settle


def bucketed(n: int) -> int:
    return -(-n // BUCKET) * BUCKET


def pad_batch(items: list[np.ndarray], device) -> tuple[torch.Tensor, torch.Tensor]:
    n = bucketed(max(len(x) for x in items))
    out = np.zeros((len(items), n), dtype=np.float32)
    for i, x in enumerate(items):
        out[i, : len(x)] = x / 32768.0
    return torch.from_numpy(out).to(device, non_blocking=True), torch.tensor([len(x) for x in items], device=device)


def augment_audio(audio: torch.Tensor, lengths: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    B, N = audio.shape
    dev = audio.device
    gain = 10 ** (torch.empty(B, 1, device=dev).uniform_(-18, 6, generator=gen) / 20)
    valid = torch.arange(N, device=dev)[None, :] < lengths[:, None]
    power = (audio**2).sum(1, keepdim=True) / lengths[:, None]
    snr = torch.empty(B, 1, device=dev).uniform_(5, 45, generator=gen)
    noisy = torch.rand(B, 1, device=dev, generator=gen) < 0.7
    noise = torch.randn(B, N, device=dev, generator=gen) * torch.sqrt(power / 10 ** (snr / 10)) * noisy
    return torch.clamp((audio + noise) * gain, -1, 1) * valid


def vocoded(audio: torch.Tensor, lengths: torch.Tensor, gen: torch.Generator, share: float, vocoder: dict) -> torch.Tensor:
    """A `share` of the utterances as the synthesizer's vocoder would give them back: the
    synthesizer's mel (n_fft 800, hop 200, floor 1e-5), inverted by the filter bank's pseudo-inverse
    and Griffin-Lim (phase from noise, a few iterations), at the original level. The recogniser
    then hears vocoder artefacts, as it does in the round trip (speak, then transcribe)."""
    B, N = audio.shape
    pick = torch.rand(B, device=audio.device, generator=gen) < share
    if not bool(pick.any()):
        return audio
    x = audio[pick]
    n_fft, hop, pinv, window = vocoder["n_fft"], vocoder["hop"], vocoder["pinv"], vocoder["window"]
    spec = torch.stft(x, n_fft, hop, window=window, center=True, return_complex=True)
    mel = torch.clamp(vocoder["filters"].T @ spec.abs() ** 2, min=vocoder["floor"])
    magnitude = torch.clamp(pinv @ mel, min=0).sqrt()
    phase = torch.rand(magnitude.shape, device=audio.device, generator=gen) * (2 * math.pi)
    angle = torch.polar(torch.ones_like(magnitude), phase)
    for _ in range(vocoder["iterations"]):
        y = torch.istft(magnitude * angle, n_fft, hop, window=window, center=True, length=N)
        s = torch.stft(y, n_fft, hop, window=window, center=True, return_complex=True)
        angle = s / torch.clamp(s.abs(), min=1e-8)
    y = torch.istft(magnitude * angle, n_fft, hop, window=window, center=True, length=N)
    level = x.abs().amax(1, keepdim=True) / torch.clamp(y.abs().amax(1, keepdim=True), min=1e-4)
    valid = torch.arange(N, device=audio.device)[None, :] < lengths[pick][:, None]
    out = audio.clone()
    out[pick] = y * level * valid
    return out


def warped_log_mel(audio: torch.Tensor, filters: torch.Tensor, gen: torch.Generator | None,
                   eq_share: float = 0.0) -> torch.Tensor:
    """Whisper log-mel; with a generator, each utterance's spectrum is stretched by α ∈ [0.85, 1.15]
    (VTLP), and an `eq_share` of them shaped by a random smooth equaliser (random_eq)."""
    window = torch.hann_window(400, device=audio.device)
    power = torch.stft(audio, 400, 160, window=window, center=True, pad_mode="reflect", return_complex=True)[..., :-1].abs() ** 2
    if gen is not None:
        B, Fq, T = power.shape
        alpha = torch.empty(B, 1, device=audio.device).uniform_(0.85, 1.15, generator=gen)
        source = torch.clamp(torch.arange(Fq, device=audio.device)[None, :] / alpha, max=Fq - 1)
        lo = source.floor().long()
        hi = torch.clamp(lo + 1, max=Fq - 1)
        frac = (source - lo)[:, :, None]
        power = torch.gather(power, 1, lo[:, :, None].expand(B, Fq, T)) * (1 - frac) + torch.gather(
            power, 1, hi[:, :, None].expand(B, Fq, T)) * frac
        if eq_share > 0:
            power = power * random_eq(B, Fq, gen, eq_share, audio.device)[:, :, None]
    return torch.log10(torch.clamp(filters.T @ power, min=1e-10)).transpose(1, 2)


def random_eq(batch: int, bins: int, gen: torch.Generator, share: float, device) -> torch.Tensor:
    """Power gains over frequency, one smooth curve per utterance for a `share` of them (1 for the
    rest): a tilt of ±10 dB across the band plus three cosines of ±4 dB, like the colour a voice,
    a microphone or a vocoder gives speech. A voice never trained on differs from the trained ones
    in its spectral envelope as much as in anything (the held-out flite kal16 is a residual-LPC
    diphone voice), so the recogniser should not lean on one."""
    f = torch.arange(bins, device=device)[None, :] / (bins - 1)
    tilt = torch.empty(batch, 1, device=device).uniform_(-10, 10, generator=gen)
    db = tilt * (f - 0.5)
    for k in (1, 2, 3):
        amplitude = torch.empty(batch, 1, device=device).uniform_(-4, 4, generator=gen)
        phase = torch.rand(batch, 1, device=device, generator=gen) * (2 * math.pi)
        db = db + amplitude * torch.cos(math.pi * k * f + phase)
    pick = torch.rand(batch, 1, device=device, generator=gen) < share
    return torch.where(pick, 10 ** (db / 10), torch.ones_like(db))


def spec_augment(mel: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    B, T, M = mel.shape
    dev = mel.device
    out = mel.clone()
    floor = -10.0
    for _ in range(2):
        w = torch.randint(0, 14, (B, 1), device=dev, generator=gen)
        f0 = (torch.rand(B, 1, device=dev, generator=gen) * (M - w)).long()
        m = torch.arange(M, device=dev)[None, :]
        out = torch.where(((m >= f0) & (m < f0 + w))[:, None, :], floor, out)
    for _ in range(3):
        w = torch.randint(0, max(2, T // 25), (B, 1), device=dev, generator=gen)
        t0 = (torch.rand(B, 1, device=dev, generator=gen) * (T - w)).long()
        t = torch.arange(T, device=dev)[None, :]
        out = torch.where(((t >= t0) & (t < t0 + w))[:, :, None], floor, out)
    return out


def length_batches(lengths: list[int], max_samples: int, rng: random.Random):
    """Batches of similar length, each ≤ max_samples padded samples, in random order."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i] + rng.random() * 8000)
    batches, current = [], []
    for i in order:
        if current and bucketed(lengths[i]) * (len(current) + 1) > max_samples:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches


def ctc_greedy(logits: torch.Tensor, length: int) -> str:
    ids = logits[:length].argmax(-1).tolist()
    out, prev = [], 0
    for i in ids:
        if i != prev and i != 0:
            out.append(VOCABULARY[i])
        prev = i
    return "".join(out)


def word_errors(ref: str, hyp: str) -> tuple[int, int]:
    r, h = ref.split(), hyp.split()
    d = list(range(len(h) + 1))
    for i in range(1, len(r) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(h) + 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (r[i - 1] != h[j - 1]))
            prev, d[j] = d[j], cur
    return d[len(h)], len(r)


@torch.no_grad()
def evaluate_recognizer(model, jobs, audio, filters, device, limit: int | None = None) -> dict:
    model.eval()
    errors = words = 0
    examples = []
    engines: dict[str, list[int]] = {}  # engine -> [errors, words]: the mix differs between recipes
    n = len(audio) if limit is None else min(limit, len(audio))
    for start in range(0, n, 32):
        items = audio[start : min(n, start + 32)]
        x, lengths = pad_batch(items, device)
        mel = whisper_log_mel(x, filters)
        logits = model(mel).float()
        for i, item in enumerate(items):
            text = jobs[start + i][0]
            hyp = ctc_greedy(logits[i], (len(item) // 160) // 4)
            e, w = word_errors(transcript(text), hyp)
            errors, words = errors + e, words + w
            tally = engines.setdefault(jobs[start + i][1].engine, [0, 0])
            tally[0], tally[1] = tally[0] + e, tally[1] + w
            if len(examples) < 4:
                examples.append(dict(reference=transcript(text), hypothesis=hyp, voice=jobs[start + i][1].label()))
    model.train()
    by_engine = {k: dict(wer=round(e / max(1, w), 4), words=w) for k, (e, w) in sorted(engines.items())}
    return dict(wer=round(errors / max(1, words), 4), words=words, utterances=n, engines=by_engine, examples=examples)


def time_capped_training(name, model, opt, lengths, step, rng, batch_samples, epochs, seconds, peak_lr,
                         horizon: float | None = None, resume: dict | None = None) -> dict:
    """Epochs of length-bucketed batches until `epochs` or `seconds` runs out, whichever binds
    first (the cosine schedule follows it); `step(batch)` returns the losses, "loss" the one to
    minimise. Returns steps, seconds, epochs and every 200th step's losses.

    A run may span several calls (one device call each, --checkpoint): `horizon` is the training
    seconds of all of them together, which the cosine schedule spans, and `resume` what an earlier
    call returned (its steps, training seconds and history); this call trains at most `seconds`
    more, starting a fresh epoch."""
    per_epoch = len(length_batches(lengths, batch_samples, random.Random(0)))
    total = epochs * per_epoch
    horizon = horizon or seconds
    count = resume["steps"] if resume else 0
    before = resume["total_seconds"] if resume else 0.0
    history = list(resume["history"]) if resume else []
    t0 = time.time()
    for epoch in range(count // per_epoch, epochs):
        for batch in length_batches(lengths, batch_samples, rng):
            elapsed = time.time() - t0
            if elapsed > seconds or before + elapsed > horizon:
                break
            lr = cosine_lr(count, max((before + elapsed) / horizon, count / total), peak_lr, 300)
            for g in opt.param_groups:
                g["lr"] = lr
            losses = step(batch)
            opt.zero_grad(set_to_none=True)
            losses["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if count % 200 == 0:
                values = {k: round(v.item(), 4) for k, v in losses.items()}
                log(f"{name} step {count} epoch {epoch} {values} lr {lr:.2e}")
                history.append(dict(step=count, **values, seconds=round(before + time.time() - t0, 1)))
            count += 1
        else:
            continue
        break
    elapsed = time.time() - t0
    log(f"{name}: {count} steps, {elapsed:.0f} s in this call, {before + elapsed:.0f} of {horizon:.0f} s in all")
    return dict(steps=count, seconds=round(elapsed, 1), total_seconds=round(before + elapsed, 1),
                horizon_seconds=horizon, history=history, epochs=round(count / per_epoch, 2))


def resumable_training(name, model, opt, cfg, batch_rng, gen, lengths, step, batch_samples, epochs, seconds,
                       total_seconds, peak_lr, checkpoint: Path | None, device) -> dict:
    """time_capped_training, resumed from `checkpoint`/<name>.pt when it is there and saved there at
    the end (model, optimiser, the batch order's and the augmentations' random states, torch's
    own), so a run can span several device calls on one machine."""
    path = checkpoint / f"{name}.pt" if checkpoint else None
    resume = None
    if path is not None and path.exists():
        saved = torch.load(path, map_location=device, weights_only=False)
        if saved["config"] != cfg:
            raise SystemExit(f"{path} holds a {name} of another shape: delete it to start afresh")
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        batch_rng.setstate(saved["batch_rng"])
        if gen is not None:
            gen.set_state(saved["augment_rng"].cpu())
        torch.set_rng_state(saved["torch_rng"].cpu())
        if device.type == "cuda" and saved.get("cuda_rng") is not None:
            torch.cuda.set_rng_state_all([t.cpu() for t in saved["cuda_rng"]])
        resume = saved["run"]
        log(f"{name}: resumed from {path} at step {resume['steps']} ({resume['total_seconds']:.0f} s trained)")
    run = time_capped_training(name, model, opt, lengths, step, batch_rng, batch_samples, epochs, seconds, peak_lr,
                               horizon=total_seconds, resume=resume)
    run["calls"] = resume.get("calls", 1) + 1 if resume else 1
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        state = dict(config=cfg, model=model.state_dict(), optimizer=opt.state_dict(), batch_rng=batch_rng.getstate(),
                     augment_rng=gen.get_state() if gen is not None else None, torch_rng=torch.get_rng_state(),
                     cuda_rng=torch.cuda.get_rng_state_all() if device.type == "cuda" else None, run=run)
        torch.save(state, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)  # whole or not at all: a call cut off mid-write keeps the last
        log(f"{name}: checkpoint at step {run['steps']} in {path}")
    return run


def train_recognizer(corpus, args, device, report) -> CtcRecognizer:
    torch.manual_seed(1234)
    cfg = dict(RECOGNIZER, **({k: SMOKE[k] for k in ("d_model", "conv_channels", "layers", "ff_dim")} if args.smoke else {}))
    model = CtcRecognizer(cfg).to(device)
    params = sum(p.numel() for p in model.parameters())
    log(f"recogniser: {params / 1e6:.2f} M parameters")
    jobs, audio = corpus["train"]
    targets = [labels(text) for text, _ in jobs]
    filters = mel_filters(80, 400, 16000, device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    rest = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([dict(params=decay, weight_decay=0.01), dict(params=rest, weight_decay=0.0)], lr=args.recognizer_lr, betas=(0.9, 0.98))
    gen = torch.Generator(device=device).manual_seed(7)
    sfilters = mel_filters(SYNTHESIZER["n_mels"], SYNTHESIZER["n_fft"], SYNTHESIZER["sample_rate"], device)
    vocoder = dict(n_fft=SYNTHESIZER["n_fft"], hop=SYNTHESIZER["hop"], filters=sfilters, floor=SYNTHESIZER["mel_floor"],
                   pinv=torch.linalg.pinv(sfilters.T), window=torch.hann_window(SYNTHESIZER["n_fft"], device=device),
                   iterations=args.vocoded_iterations)

    def step(batch: list[int]) -> dict:
        x, n = pad_batch([audio[i] for i in batch], device)
        x = vocoded(x, n, gen, args.vocoded_share, vocoder)
        x = augment_audio(x, n, gen)
        mel = spec_augment(warped_log_mel(x, filters, gen, args.eq_share), gen)  # features in fp32
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(mel)
        logp = logits.float().log_softmax(-1).transpose(0, 1)
        target = [torch.tensor(targets[i]) for i in batch]
        loss = F.ctc_loss(
            logp, torch.cat(target).to(device), (n // 160) // 4, torch.tensor([len(t) for t in target], device=device),
            blank=0, reduction="mean", zero_infinity=True,
        )
        return dict(loss=loss)

    run = resumable_training("recogniser", model, opt, cfg, random.Random(7), gen, [len(a) for a in audio], step,
                             args.batch_samples, args.recognizer_epochs, args.recognizer_seconds,
                             args.recognizer_total_seconds, args.recognizer_lr, args.checkpoint, device)
    report["recognizer"] = dict(config=cfg, parameters=params, **run)
    return model


# ------------------------------------------------------------------ synthesizer


def text_ids(text: str) -> list[int]:
    return [SYMBOLS.index(c) for c in text if c in SYMBOLS]


def synth_batch(items, jobs, filters, cfg, device):
    """Targets [B, steps, r·M], previous frames [B, steps, M], step counts, text ids and lengths."""
    r, M = cfg["frames_per_step"], cfg["n_mels"]
    x, _ = pad_batch([a for a in items], device)
    mels = [synth_log_mel(x[i : i + 1, : len(a)], filters, cfg["n_fft"], cfg["hop"], cfg["mel_floor"])[0] for i, a in enumerate(items)]
    steps = [-(-m.shape[0] // r) for m in mels]
    S = -(-max(steps) // 16) * 16  # padded to 16 steps and 16 tokens: few distinct shapes
    silent = math.log10(cfg["mel_floor"])
    target = torch.full((len(items), S * r, M), silent, device=device)
    for i, m in enumerate(mels):
        target[i, : m.shape[0]] = m
    target = target.view(len(items), S, r * M)
    previous = torch.zeros(len(items), S, M, device=device)
    previous[:, 1:] = target[:, :-1, (r - 1) * M :]
    ids = [text_ids(t) for t, _ in jobs]
    L = -(-max(len(t) for t in ids) // 16) * 16
    text = torch.zeros(len(items), L, dtype=torch.long, device=device)
    for i, t in enumerate(ids):
        text[i, : len(t)] = torch.tensor(t)
    return target, previous, torch.tensor(steps, device=device), text, torch.tensor([len(t) for t in ids], device=device)


def guided_attention(weights: torch.Tensor, steps: torch.Tensor, text_lengths: torch.Tensor, g: float = 0.2) -> torch.Tensor:
    B, H, S, N = weights.shape
    s = torch.arange(S, device=weights.device)[None, :, None] / steps[:, None, None]
    n = torch.arange(N, device=weights.device)[None, None, :] / text_lengths[:, None, None]
    penalty = 1 - torch.exp(-((n - s) ** 2) / (2 * g * g))
    valid = (torch.arange(S, device=weights.device)[None, :, None] < steps[:, None, None]) & (
        torch.arange(N, device=weights.device)[None, None, :] < text_lengths[:, None, None])
    return (weights.mean(1) * penalty * valid).sum() / valid.sum()


def train_synthesizer(corpus, args, device, report) -> ReferenceSynthesizer:
    torch.manual_seed(1235)
    cfg = dict(SYNTHESIZER, **({k: SMOKE[k] for k in ("hidden_size", "text_layers", "decoder_layers", "ff_size", "prenet_size")} if args.smoke else {}))
    model = ReferenceSynthesizer(cfg).to(device)
    params = sum(p.numel() for p in model.parameters())
    log(f"synthesizer: {params / 1e6:.2f} M parameters")
    jobs, audio = corpus["synth_train"]
    filters = mel_filters(cfg["n_mels"], cfg["n_fft"], cfg["sample_rate"], device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.synthesizer_lr, betas=(0.9, 0.98), weight_decay=0.01)

    def step(batch: list[int]) -> dict:
        target, previous, steps, text, text_lengths = synth_batch(
            [audio[i] for i in batch], [jobs[i] for i in batch], filters, cfg, device)
        if args.sampled_share > 0:
            # Scheduled sampling in parallel form: a first pass predicts every step from the
            # true frames, then a share of the steps read the model's own previous frame
            # instead, as inference (no teacher) will.
            r, M = cfg["frames_per_step"], cfg["n_mels"]
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
                guess, _, _ = model(text, text_lengths, previous, prenet_dropout=0.5)
            own = torch.zeros_like(previous)
            own[:, 1:] = guess[:, :-1, (r - 1) * M :].float()
            pick = torch.rand(previous.shape[:2], device=device)[:, :, None] < args.sampled_share
            previous = torch.where(pick, own, previous)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            frames, stop, attention = model(text, text_lengths, previous, prenet_dropout=0.5)
        S = target.shape[1]
        valid = torch.arange(S, device=device)[None, :] < steps[:, None]
        frame_loss = ((frames.float() - target).abs().mean(-1) * valid).sum() / valid.sum()
        stop_target = (torch.arange(S, device=device)[None, :] >= steps[:, None] - 1).float()
        stop_loss = (F.binary_cross_entropy_with_logits(stop.float(), stop_target, pos_weight=torch.tensor(8.0, device=device), reduction="none") * valid).sum() / valid.sum()
        attn_loss = sum(guided_attention(w.float(), steps, text_lengths) for w in attention) / len(attention)
        return dict(loss=frame_loss + stop_loss + args.guided_weight * attn_loss, frames=frame_loss, stop=stop_loss,
                    attention=attn_loss)

    run = resumable_training("synthesizer", model, opt, cfg, random.Random(8), None, [len(a) for a in audio], step,
                             args.synth_batch_samples, args.synthesizer_epochs, args.synthesizer_seconds,
                             args.synthesizer_total_seconds, args.synthesizer_lr, args.checkpoint, device)
    report["synthesizer"] = dict(config=cfg, parameters=params, **run)
    return model


@torch.no_grad()
def synthesize(model: ReferenceSynthesizer, text: str, device, max_steps: int = 400) -> torch.Tensor:
    """Autoregressive frames [T, n_mels] the way the TypeScript extendStep runs (no dropout), stopping on the stop head."""
    model.eval()
    cfg = model.cfg
    r, M = cfg["frames_per_step"], cfg["n_mels"]
    ids = torch.tensor([text_ids(text)], device=device)
    L = torch.tensor([ids.shape[1]], device=device)
    previous = torch.zeros(1, 1, M, device=device)
    threshold = math.log(cfg["stop_threshold"] / (1 - cfg["stop_threshold"]))
    for s in range(max_steps):
        frames, stop, _ = model(ids, L, previous)
        sees_all = int(model.visible(s + 1, L)[0, s]) == ids.shape[1]
        if sees_all and stop[0, s] > threshold:
            break
        previous = torch.cat([previous, frames[:, s : s + 1, (r - 1) * M :]], dim=1)
    model.train()
    return frames[0, : s + 1].reshape(-1, M)


def griffin_lim(log_mel: torch.Tensor, cfg: dict, device, iterations: int = 48) -> np.ndarray:
    """Offline check only (the shipped vocoder is the TypeScript RTISI-LA one): mel pseudo-inverse + classic Griffin-Lim."""
    filters = mel_filters(cfg["n_mels"], cfg["n_fft"], cfg["sample_rate"], device)
    power = torch.clamp(torch.linalg.pinv(filters.T) @ (10 ** log_mel.T), min=0)
    magnitude = power.sqrt()
    window = torch.hann_window(cfg["n_fft"], device=device)
    angle = torch.exp(2j * math.pi * torch.rand(magnitude.shape, device=device))
    for _ in range(iterations):
        audio = torch.istft(magnitude * angle, cfg["n_fft"], cfg["hop"], window=window, center=True)
        spec = torch.stft(audio, cfg["n_fft"], cfg["hop"], window=window, center=True, return_complex=True)
        spec = spec[:, : magnitude.shape[1]]
        if spec.shape[1] < magnitude.shape[1]:
            spec = F.pad(spec, (0, magnitude.shape[1] - spec.shape[1]))
        angle = torch.exp(1j * spec.angle())
    audio = torch.istft(magnitude * angle, cfg["n_fft"], cfg["hop"], window=window, center=True)
    return (audio / max(1e-3, audio.abs().max().item()) * 0.8).cpu().numpy()


# ------------------------------------------------------------------ export


def save_folder(state: dict, cfg: dict, dest: Path) -> None:
    from safetensors.torch import save_file

    dest.mkdir(parents=True, exist_ok=True)
    save_file({k: v.half().contiguous() for k, v in state.items()}, str(dest / "model.safetensors"), metadata={"format": "pt"})
    (dest / "config.json").write_text(json.dumps(cfg, indent=1) + "\n")


def write_wav(path: Path, audio: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(to_int16(audio).tobytes())


def reload_recognizer(dest: Path, device) -> CtcRecognizer:
    """The exported (f16, folded) weights in an fp32 twin whose input map is the identity."""
    from safetensors.torch import load_file

    cfg = json.loads((dest / "config.json").read_text())
    model = CtcRecognizer(cfg, folded=True).to(device)
    model.load_state_dict({k: v.float() for k, v in load_file(str(dest / "model.safetensors")).items()})
    return model


@torch.no_grad()
def export_recognizer(model, corpus, out: Path, device, report) -> None:
    dest = out / "models" / "specstream-speech-recognizer"
    save_folder(model.export_state(), model.cfg, dest)
    filters = mel_filters(80, 400, 16000, device)
    # Parity references in true fp32: TF32 products are ~1e-3 off, more than the tests allow.
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    twin = reload_recognizer(dest, device)
    (dest / "reference").mkdir(exist_ok=True)
    references = []
    for name in ("heldout_voice", "heldout_trained_voices"):
        jobs, audio = corpus[name]
        for i in range(2):
            wav_name = f"{name.replace('_', '-')}-{i}.wav"
            write_wav(dest / "reference" / wav_name, audio[i] / 32768.0)
            x = torch.from_numpy(audio[i].astype(np.float32) / 32768.0)[None].to(device)
            mel = whisper_log_mel(x, filters)
            logits = twin(mel)[0]
            if i == 0:
                # The fold and the f16 rounding, against the trained fp32 model.
                report["recognizer"].setdefault("export_max_abs_logit_change", []).append(
                    round((model.eval()(mel)[0] - logits).abs().max().item(), 4))
            entry = dict(wav=wav_name, voice=jobs[i][1].label(), text=jobs[i][0], transcript=transcript(jobs[i][0]),
                         hypothesis=ctc_greedy(logits, logits.shape[0]))
            if i == 0:
                # Parity data: the twin's raw log-mel of the first 2 s (float32 file) and its logits on them.
                head = mel[:, :200]
                mel_file = wav_name.replace(".wav", ".mel-f32.bin")
                (dest / "reference" / mel_file).write_bytes(head[0].cpu().numpy().astype("<f4").tobytes())
                entry.update(mel_file=mel_file, mel_frames=head.shape[1], logits=twin(head)[0].cpu().numpy().round(6).tolist())
            references.append(entry)
    (dest / "reference" / "reference.json").write_text(json.dumps(references))
    report["recognizer"]["export"] = str(dest)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sentences", type=Path, default=Path(".data/speech/sentences.json"))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--only", choices=["recognizer", "synthesizer"])
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--workers", type=int, default=os.cpu_count())
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--heldout-limit", type=int, default=10_000)
    p.add_argument("--renders", type=int, default=2, help="voices per training sentence (recogniser)")
    p.add_argument("--flite-share", type=float, default=0.30, help="training voices from flite awb/rms/slt")
    p.add_argument("--festival-share", type=float, default=0.15,
                   help="training voices from festival (the rest: espeak-ng); "
                        "--festival-share 0 --flite-share 0.35 draws the first shipped models' corpus")
    p.add_argument("--festival-voices", type=int, default=2, choices=range(1, len(render.FESTIVAL_TRAIN) + 1),
                   help="how many of render.FESTIVAL_TRAIN festival draws from: 1, ked's diphones; 2 (the shipped "
                        "recogniser's) adds slt's HTS voice")
    p.add_argument("--gnuspeech-share", type=float, default=0.0,
                   help="training voices from GnuSpeech's articulatory presets (render.GNUSPEECH_TRAIN), taken from "
                        "espeak-ng's share (the shipped recogniser: 0)")
    p.add_argument("--pico-share", type=float, default=0.0,
                   help="training voices from SVOX Pico's en-US and en-GB HMM voices (render.PICO_TRAIN), taken from "
                        "espeak-ng's share (the shipped recogniser: 0)")
    p.add_argument("--batch-samples", type=int, default=16000 * 240)
    p.add_argument("--synth-batch-samples", type=int, default=16000 * 240)
    p.add_argument("--vocoded-share", type=float, default=0.15,
                   help="recogniser utterances heard through the synthesizer's mel and Griffin-Lim")
    p.add_argument("--vocoded-iterations", type=int, default=12)
    p.add_argument("--eq-share", type=float, default=0.5,
                   help="recogniser utterances shaped by a random smooth equaliser (random_eq; the shipped recogniser: 0.5)")
    p.add_argument("--recognizer-lr", type=float, default=1.5e-3)
    p.add_argument("--synthesizer-lr", type=float, default=1e-3)
    p.add_argument("--recognizer-epochs", type=int, default=40)
    p.add_argument("--synthesizer-epochs", type=int, default=60)
    p.add_argument("--recognizer-seconds", type=float, default=200, help="training seconds in this call")
    p.add_argument("--recognizer-total-seconds", type=float, default=None,
                   help="training seconds over all calls resuming from --checkpoint (the schedule's length; default: --recognizer-seconds)")
    p.add_argument("--corpus-cache", type=Path, default=None, help="folder keeping the rendered corpus between calls")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="folder for the models' training states (recogniser.pt, synthesizer.pt): resumed from when "
                        "present, written at the end of each call")
    p.add_argument("--synthesizer-seconds", type=float, default=200, help="training seconds in this call")
    p.add_argument("--synthesizer-total-seconds", type=float, default=None,
                   help="training seconds over all calls resuming from --checkpoint (default: --synthesizer-seconds)")
    p.add_argument("--guided-weight", type=float, default=2.0)
    p.add_argument("--round-trip-sentences", type=int, default=12)
    p.add_argument("--sampled-share", type=float, default=0.5, help="synthesizer steps fed their own previous frame")
    args = p.parse_args()
    shares = args.flite_share + args.festival_share + args.gnuspeech_share + args.pico_share
    if min(args.flite_share, args.festival_share, args.gnuspeech_share, args.pico_share) < 0 or shares > 1:
        p.error(f"--flite-share, --festival-share, --gnuspeech-share and --pico-share must be ≥ 0 and sum to ≤ 1 (got {shares:g})")
    if args.smoke:
        args.limit, args.heldout_limit = args.limit or 64, 8
        args.recognizer_seconds = args.synthesizer_seconds = min(args.recognizer_seconds, 20)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = True
    args.out.mkdir(parents=True, exist_ok=True)
    report = dict(device=torch.cuda.get_device_name() if device.type == "cuda" else "cpu", torch=torch.__version__)
    t = time.time()
    corpus = cached_corpus(args)
    report["corpus"] = corpus["stats"]
    report["render_seconds"] = round(time.time() - t, 1)
    if args.only != "synthesizer":
        model = train_recognizer(corpus, args, device, report)
        filters = mel_filters(80, 400, 16000, device)
        for name in ("heldout_trained_voices", "heldout_voice"):
            report["recognizer"][name] = evaluate_recognizer(model, *corpus[name], filters, device)
            log(f"recogniser {name}: {report['recognizer'][name]}")
        export_recognizer(model, corpus, args.out, device, report)
    if args.only != "recognizer":
        synth = train_synthesizer(corpus, args, device, report)
        dest = args.out / "models" / "specstream-speech-synthesizer"
        save_folder(synth.export_state(), synth.cfg, dest)
        if args.only != "synthesizer":
            filters = mel_filters(80, 400, 16000, device)
            jobs, _ = corpus["synth_heldout"]
            errors = words = 0
            samples = []
            for text, _ in jobs[: args.round_trip_sentences if not args.smoke else 2]:
                audio = griffin_lim(synthesize(synth, text, device), synth.cfg, device)
                mel = whisper_log_mel(torch.from_numpy(audio)[None].to(device), filters)
                hyp = ctc_greedy(model.eval()(mel)[0], mel.shape[1] // 4)
                e, w = word_errors(transcript(text), hyp)
                errors, words = errors + e, words + w
                samples.append(dict(text=transcript(text), heard=hyp, seconds=round(len(audio) / 16000, 2)))
                if len(samples) == 1:
                    write_wav(args.out / "synth-sample.wav", audio)
            # What the vocoder alone costs: the true frames of the same sentences, vocoded and heard.
            base_errors = base_words = 0
            scfg = synth.cfg
            sfilters = mel_filters(scfg["n_mels"], scfg["n_fft"], scfg["sample_rate"], device)
            for (text, _), audio in list(zip(*corpus["synth_heldout"]))[: args.round_trip_sentences if not args.smoke else 2]:
                x = torch.from_numpy(audio.astype(np.float32) / 32768.0)[None].to(device)
                true = synth_log_mel(x, sfilters, scfg["n_fft"], scfg["hop"], scfg["mel_floor"])[0]
                vocoded = griffin_lim(true, scfg, device)
                mel = whisper_log_mel(torch.from_numpy(vocoded)[None].to(device), filters)
                e, w = word_errors(transcript(text), ctc_greedy(model.eval()(mel)[0], mel.shape[1] // 4))
                base_errors, base_words = base_errors + e, base_words + w
            report["synthesizer"]["true_frames_vocoded_wer"] = round(base_errors / max(1, base_words), 4)
            report["synthesizer"]["round_trip"] = dict(wer=round(errors / max(1, words), 4), words=words, examples=samples[:6],
                                                       vocoder="classic Griffin-Lim, 48 iterations (torch)")
            log(f"synthesizer round trip: {report['synthesizer']['round_trip']}")
    report["total_seconds"] = round(time.time() - t, 1)
    (args.out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    log(f"done in {report['total_seconds']} s")


if __name__ == "__main__":
    main()
