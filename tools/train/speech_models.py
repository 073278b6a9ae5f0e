"""PyTorch twins of the speech models in packages/models: the streaming CTC
recogniser (streaming-encoder/) and the reference synthesizer
(synthesizer/reference.ts), written to compute exactly what the TypeScript
forward computes, so that trained weights run there unchanged. The tensor
names below are the checkpoint format the TypeScript loaders read
(packages/models/src/speech/); every Linear is stored [out, in] as torch keeps
it, convolutions [out, in, kernel].

Front end (both): Whisper's log-mel (periodic Hann 400, hop 160, slaney mel
0–8 kHz, log10 with floor 1e-10), *not* normalised by the utterance maximum
(a stream cannot know it). The recogniser maps raw log-mel x to (x + 4) / 4
before its first convolution; export folds that into conv1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# ------------------------------------------------------------------ shared pieces


def rotary_tables(positions: torch.Tensor, head_dim: int, theta: float):
    inv = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=positions.device) / head_dim)
    angles = positions.float()[:, None] * inv[None, :]
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, H, T, D]; cos/sin [T, D] (HF rotate-half layout)."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class SelfAttention(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x, cos, sin, mask):
        B, T, D = x.shape
        split = lambda t: t.view(B, T, self.heads, D // self.heads).transpose(1, 2)
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        if cos is not None:
            q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.o(y.transpose(1, 2).reshape(B, T, D))


class Mlp(nn.Module):
    def __init__(self, d: int, ff: int):
        super().__init__()
        self.up, self.down = nn.Linear(d, ff), nn.Linear(ff, d)

    def forward(self, x):
        return self.down(F.gelu(self.up(x)))  # exact (erf) gelu, as the TypeScript side


class EncoderLayer(nn.Module):
    def __init__(self, d: int, heads: int, ff: int, eps: float):
        super().__init__()
        self.attn_norm, self.mlp_norm = nn.LayerNorm(d, eps=eps), nn.LayerNorm(d, eps=eps)
        self.attn, self.mlp = SelfAttention(d, heads), Mlp(d, ff)

    def forward(self, x, cos, sin, mask):
        x = x + self.attn(self.attn_norm(x), cos, sin, mask)
        return x + self.mlp(self.mlp_norm(x))


# ------------------------------------------------------------------ recogniser

MEL_SHIFT, MEL_SCALE = 4.0, 4.0


class CtcRecognizer(nn.Module):
    """Causal conv subsampling ×4, pre-LN transformer with left context, CTC head (blank 0)."""

    def __init__(self, cfg: dict, folded: bool = False):
        super().__init__()
        self.cfg = cfg
        # folded: weights from export_state, which take raw log-mel (the map is inside conv1).
        self.folded = folded
        d, c = cfg["d_model"], cfg["conv_channels"]
        self.conv1 = nn.Conv1d(cfg["n_mels"], c, 3, stride=2)
        self.conv2 = nn.Conv1d(c, d, 3, stride=2)
        self.layers = nn.ModuleList(EncoderLayer(d, cfg["heads"], cfg["ff_dim"], cfg["norm_eps"]) for _ in range(cfg["layers"]))
        self.final_norm = nn.LayerNorm(d, eps=cfg["norm_eps"])
        self.ctc_head = nn.Linear(d, cfg["vocab_size"])

    def forward(self, mel: torch.Tensor, left_context: int | None = None) -> torch.Tensor:
        """mel: raw log-mel [B, T, n_mels] → logits [B, T // 4, vocab]. Output j sees input frames ≤ 4j + 3."""
        left = self.cfg["left_context"] if left_context is None else left_context
        shift, scale = (0.0, 1.0) if self.folded else (MEL_SHIFT, MEL_SCALE)
        x = ((mel + shift) / scale).transpose(1, 2)
        # Frame −1 is raw log-mel 0 (the TypeScript encoder's zero padding), (0 + 4) / 4 after the map.
        x = F.gelu(self.conv1(F.pad(x, (1, 0), value=shift / scale)))
        x = F.gelu(self.conv2(F.pad(x, (1, 0))))
        x = x.transpose(1, 2)
        T = x.shape[1]
        heads = self.cfg["heads"]
        cos, sin = rotary_tables(torch.arange(T, device=x.device), self.cfg["d_model"] // heads, self.cfg["rotary_theta"])
        i = torch.arange(T, device=x.device)
        mask = (i[None, :] <= i[:, None]) & (i[None, :] >= i[:, None] - left)
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return self.ctc_head(self.final_norm(x))

    def export_state(self) -> dict[str, torch.Tensor]:
        """Weights for the TypeScript encoder: the (x + 4) / 4 map folded into conv1."""
        state = {k: v.detach().float().clone() for k, v in self.state_dict().items()}
        w = state["conv1.weight"]
        state["conv1.bias"] = state["conv1.bias"] + w.sum(dim=(1, 2)) * (MEL_SHIFT / MEL_SCALE)
        state["conv1.weight"] = w / MEL_SCALE
        return state


# ------------------------------------------------------------------ synthesizer


class CrossAttention(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x, memory, mask):
        """Returns the output and the attention weights [B, heads, T, S] (guided-attention loss reads them)."""
        B, T, D = x.shape
        S = memory.shape[1]
        hd = D // self.heads
        q = self.q(x).view(B, T, self.heads, hd).transpose(1, 2)
        k = self.k(memory).view(B, S, self.heads, hd).transpose(1, 2)
        v = self.v(memory).view(B, S, self.heads, hd).transpose(1, 2)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        weights = scores.masked_fill(~mask[:, None], float("-inf")).softmax(-1)
        return self.o((weights @ v).transpose(1, 2).reshape(B, T, D)), weights


class DecoderLayer(nn.Module):
    def __init__(self, d: int, heads: int, ff: int, eps: float):
        super().__init__()
        self.self_norm, self.cross_norm, self.mlp_norm = (nn.LayerNorm(d, eps=eps) for _ in range(3))
        self.attn, self.cross, self.mlp = SelfAttention(d, heads), CrossAttention(d, heads), Mlp(d, ff)

    def forward(self, x, cos, sin, self_mask, memory, cross_mask):
        x = x + self.attn(self.self_norm(x), cos, sin, self_mask)
        y, weights = self.cross(self.cross_norm(x), memory, cross_mask)
        x = x + y
        return x + self.mlp(self.mlp_norm(x)), weights


class ReferenceSynthesizer(nn.Module):
    """Causal text encoder; AR decoder over groups of `frames_per_step` log10-mel frames (wait-k text policy)."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.cfg = cfg
        d, h, ff, eps = cfg["hidden_size"], cfg["heads"], cfg["ff_size"], cfg["norm_eps"]
        self.embed_tokens = nn.Embedding(cfg["vocab_size"], d)
        self.text_layers = nn.ModuleList(EncoderLayer(d, h, ff, eps) for _ in range(cfg["text_layers"]))
        self.text_norm = nn.LayerNorm(d, eps=eps)
        self.prenet = nn.ModuleList([nn.Linear(cfg["n_mels"], cfg["prenet_size"]), nn.Linear(cfg["prenet_size"], d)])
        self.decoder_layers = nn.ModuleList(DecoderLayer(d, h, ff, eps) for _ in range(cfg["decoder_layers"]))
        self.final_norm = nn.LayerNorm(d, eps=eps)
        self.frame_head = nn.Linear(d, cfg["frames_per_step"] * cfg["n_mels"])
        self.stop_head = nn.Linear(d, 1)

    def visible(self, steps: int, text_lengths: torch.Tensor) -> torch.Tensor:
        """[B, steps]: text tokens decoder step s sees (min(length, lookahead + ⌊s·rate⌋))."""
        s = torch.arange(steps, device=text_lengths.device)
        seen = self.cfg["text_lookahead"] + torch.floor(s * self.cfg["text_tokens_per_step"]).long()
        return torch.minimum(seen[None, :], text_lengths[:, None])

    def forward(self, text: torch.Tensor, text_lengths: torch.Tensor, previous: torch.Tensor, prenet_dropout: float = 0.0):
        """text [B, S] ids; previous [B, steps, n_mels]: the frame each step's prenet reads
        (zeros for step 0, else the last frame of the step before). Returns frames
        [B, steps, r·n_mels], stop logits [B, steps] and cross-attention weights per layer."""
        B, S = text.shape
        steps = previous.shape[1]
        hd = self.cfg["hidden_size"] // self.cfg["heads"]
        theta = self.cfg["rotary_theta"]
        x = self.embed_tokens(text)
        cos, sin = rotary_tables(torch.arange(S, device=text.device), hd, theta)
        i = torch.arange(S, device=text.device)
        causal = i[None, :] <= i[:, None]
        for layer in self.text_layers:
            x = layer(x, cos, sin, causal)
        memory = self.text_norm(x)
        h = previous
        for linear in self.prenet:
            h = F.relu(linear(h))
            if prenet_dropout:
                h = F.dropout(h, prenet_dropout, training=True)
        cos, sin = rotary_tables(torch.arange(steps, device=text.device), hd, theta)
        j = torch.arange(steps, device=text.device)
        self_mask = j[None, :] <= j[:, None]
        cross_mask = torch.arange(S, device=text.device)[None, None, :] < self.visible(steps, text_lengths)[:, :, None]
        attention = []
        for layer in self.decoder_layers:
            h, weights = layer(h, cos, sin, self_mask, memory, cross_mask)
            attention.append(weights)
        y = self.final_norm(h)
        return self.frame_head(y), self.stop_head(y).squeeze(-1), attention

    def export_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().float().clone() for k, v in self.state_dict().items()}


# ------------------------------------------------------------------ front ends


def mel_filters(n_mels: int, n_fft: int, sample_rate: int, device) -> torch.Tensor:
    """[n_freq, n_mels]: transformers' slaney filter bank, as the TypeScript melFilterBank builds it."""
    from transformers.audio_utils import mel_filter_bank

    bank = mel_filter_bank(
        num_frequency_bins=n_fft // 2 + 1, num_mel_filters=n_mels, min_frequency=0.0,
        max_frequency=8000.0, sampling_rate=sample_rate, norm="slaney", mel_scale="slaney",
    )
    return torch.tensor(bank, dtype=torch.float32, device=device)


def whisper_log_mel(audio: torch.Tensor, filters: torch.Tensor, n_fft: int = 400, hop: int = 160) -> torch.Tensor:
    """audio [B, N] → raw log10 mel [B, N // hop, n_mels] (centre, reflect padding; the last frame dropped)."""
    window = torch.hann_window(n_fft, device=audio.device)
    spec = torch.stft(audio, n_fft, hop, window=window, center=True, pad_mode="reflect", return_complex=True)
    power = spec[..., :-1].abs() ** 2
    mel = filters.T @ power
    return torch.log10(torch.clamp(mel, min=1e-10)).transpose(1, 2)


def synth_log_mel(audio: torch.Tensor, filters: torch.Tensor, n_fft: int, hop: int, floor: float) -> torch.Tensor:
    """The Griffin-Lim vocoder's `analyze`: frame m centred on sample m·hop, zeros outside, ⌈N/hop⌉ frames."""
    N = audio.shape[-1]
    frames = -(-N // hop)
    window = torch.hann_window(n_fft, device=audio.device)
    padded = F.pad(audio, (n_fft // 2, n_fft // 2 + frames * hop - N))
    spec = torch.stft(padded, n_fft, hop, window=window, center=False, return_complex=True)[..., :frames]
    mel = filters.T @ (spec.abs() ** 2)
    return torch.log10(torch.clamp(mel, min=floor)).transpose(1, 2)


@torch.no_grad()
def randomize_parameters(model: nn.Module, scaled) -> nn.Module:
    """Random weights for the test fixtures (seed the generator first): every norm's weight
    1 + N(0, 0.1²) and bias N(0, 0.1²), so a norm not applied shows; other biases N(0, 0.1²);
    other weights scaled(name, p, z) of a standard normal z. Parameters in named_parameters order."""
    for name, p in model.named_parameters():
        if "norm" in name:
            p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn_like(p))
        elif name.endswith("weight"):
            p.copy_(scaled(name, p, torch.randn_like(p)))
        else:
            p.copy_(0.1 * torch.randn_like(p))
    return model
