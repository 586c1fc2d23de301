"""Small building blocks of the LPM DiT: conditioning embedders and temporal RoPE.

(AdaLN norm + modulation lives in `model.dispatch.adaln_modulate`: fused kernel on CUDA.)

Conditioning is per *frame*: every frame carries its own flow time t and emotion weights, so one
layout serves the Base LPM (one t for the whole clip), diffusion-forcing training (t per chunk)
and the stream (t for the current chunk, 0 for the cached ones).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Timestep features as in DiT: t (...,) -> (..., dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = t[..., None].float() * freqs
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class TimestepEmbedder(nn.Module):
    """Flow time t in [0, 1] -> (..., dim). Scaled by 1000 so sinusoid frequencies resolve it."""

    def __init__(self, dim: int, freq_dim: int = 256) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoidal(t * 1000.0, self.freq_dim))


class EmotionEmbedder(nn.Module):
    """Emotion weights over the vocabulary (..., E) -> (..., dim), added beside the timestep."""

    def __init__(self, emotion_dim: int, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(emotion_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, weights: torch.Tensor) -> torch.Tensor:
        return self.mlp(weights)


class TemporalRoPE(nn.Module):
    """Rotary embedding over frame time, exactly periodic so streams never leave its range.

    Each rotated pair i turns by 2*pi*m_i/period per frame with integer m_i (a geometric ladder
    like standard RoPE), so the rotation at position p equals the one at p mod period. Angles
    are computed from integers ((p * m_i) mod period), hence bit-identical for a frame whether it
    is reached after 10 or 10 million frames. Scores depend only on the frame distance, which in
    the Online LPM never exceeds the window.
    """

    def __init__(self, rope_dims: int, period: int) -> None:
        super().__init__()
        self.half = rope_dims // 2
        self.period = period
        theta = 10_000.0 ** (-torch.arange(self.half, dtype=torch.float64) / max(self.half, 1))
        mult = torch.clamp(torch.round(period * theta / (2 * math.pi)), min=1).long()
        self.register_buffer("mult", mult, persistent=False)

    def angles(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """positions (...,) int64 -> cos, sin (..., half) float32."""
        phase = (positions.long()[..., None] % self.period) * self.mult % self.period
        ang = phase.double() * (2 * math.pi / self.period)
        return ang.cos().float(), ang.sin().float()

    def rotate(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """x (..., D) with cos/sin broadcastable to (..., half): rotates x[..., :2*half]."""
        h = self.half
        if h == 0:
            return x
        x1, x2, rest = x[..., :h], x[..., h:2 * h], x[..., 2 * h:]
        return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos, rest], dim=-1)
