"""Auxiliary training signals for the Base LPM: what makes a small model learn *faces*, fast.

The flow-matching loss is a mean over every latent position, and the parts of a frame that
carry the performance (mouth, eyes, brows: a few percent of the pixels) are a few percent of it;
a small model trained briefly on it paints a good average face with a blurred mouth and no
expression. Two standard remedies, both training-only (nothing here is in the shipped model):

- **Motion-weighted flow loss**: latent positions that change within the clip (the mouth while
  speaking, eyelids, a nodding head) weigh more, as talking-head trainers weight the mouth
  region. The weight is computed from the clean latents themselves, no renderer masks.
- **Performance head**: a small MLP reads the DiT's last hidden tokens (pooled per frame) and
  regresses the frame's ground-truth performance parameters (jaw, lips, blink, brows, smile,
  head pitch) from the *noisy* input. At high noise the only source of that information is the
  conditioning (audio, emotion), so the head's gradient teaches the audio and emotion pathways
  directly instead of through a faint pixel loss (in the spirit of REPA's representation
  alignment and the landmark/3DMM targets of talking-face models). These are the world's
  ground-truth parameters, not the bench's evaluator probes.
"""

from __future__ import annotations

import torch
from torch import nn

from npc_runtime.world.performance import P

# Targets of the performance head: everything the conditioning can explain (gaze, yaw, roll and
# sway are idle motion that no input predicts).
AUX_PARAMS: tuple[str, ...] = (
    "jaw_open", "lip_width", "lip_round", "blink", "eye_wide", "brow_raise", "brow_furrow",
    "smile", "sneer", "head_pitch")
AUX_INDEX = [P[name] for name in AUX_PARAMS]


class PerfHead(nn.Module):
    """DiT tokens (B, F, T, d) -> performance parameters (B, F, len(AUX_PARAMS))."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(),
                                 nn.Linear(dim, len(AUX_PARAMS)))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        # Mean and max pooling: the mouth is a few tokens, a plain mean would dilute it.
        pooled = tokens.mean(2) + tokens.amax(2)
        return self.net(pooled)


def aux_targets(perf: torch.Tensor) -> torch.Tensor:
    """(B, F, NUM_PERF) ground-truth performance -> (B, F, len(AUX_PARAMS))."""
    return perf[..., AUX_INDEX]


def motion_weights(x0: torch.Tensor, strength: float, cap: float = 8.0) -> torch.Tensor:
    """Per-position loss weights (B, F, 1, h, w) from clean latents x0 (B, F, c, h, w).

    1 + strength * (deviation from the clip's mean frame, relative to the clip's mean
    deviation), capped, then normalised to mean 1 per clip so the loss scale (and the learning
    rate that suits it) does not change with the amount of motion."""
    if strength < 0:
        raise ValueError(f"motion weight strength must be >= 0, got {strength}")
    dev = (x0 - x0.mean(1, keepdim=True)).abs().mean(2, keepdim=True)      # (B, F, 1, h, w)
    rel = dev / dev.mean((1, 2, 3, 4), keepdim=True).clamp_min(1e-6)
    w = 1.0 + strength * rel.clamp(max=cap)
    return w / w.mean((1, 2, 3, 4), keepdim=True)


# What the Online stage's latent reader reads: the parameters that the conditioning *determines*
# (the mouth from the SPEAK audio, the expression from the tagged emotion). Blinks and head
# pitch (nods) are stochastic events: a regression onto their truth would average them away, as
# the truth term did (docs/training.md, "Session 10").
READ_PARAMS: tuple[str, ...] = (
    "jaw_open", "lip_width", "lip_round", "eye_wide", "brow_raise", "brow_furrow", "smile",
    "sneer")
READ_INDEX = [P[name] for name in READ_PARAMS]


class LatentReader(nn.Module):
    """Scaled VAE latents (N, c, h, w) -> performance parameters (N, len(READ_PARAMS)), in the
    parameters' own units (targets are z-scored with `mean`/`std`, stored beside the weights).

    The Online stage's expert (Wav2Lip's SyncNet, EMO's expression losses, in latent space): a
    small CNN trained on the latents of training-identity renders (train/reader.py), then frozen
    inside the student's loss, where it reads the mouth and expression of the student's denoised
    estimates. It is not the bench's evaluator (a pixel CNN on decoded frames, bench/probes.py),
    and it never sees an evaluation identity."""

    def __init__(self, channels: int, width: int = 48) -> None:
        super().__init__()
        self.channels, self.width = channels, width
        layers, cin = [], channels
        for c in (width, 2 * width, 2 * width):   # each stage halves the resolution
            layers += [nn.Conv2d(cin, c, 3, stride=2, padding=1), nn.GELU(),
                       nn.Conv2d(c, c, 3, padding=1), nn.GELU()]
            cin = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(2 * cin, 2 * width), nn.GELU(),
                                  nn.Linear(2 * width, len(READ_PARAMS)))
        self.register_buffer("mean", torch.zeros(len(READ_PARAMS)))
        self.register_buffer("std", torch.ones(len(READ_PARAMS)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.features(z)
        # Mean and max over positions: the mouth is a few latent positions.
        return self.head(torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1)) * self.std + self.mean

    def error(self, z: torch.Tensor, target: torch.Tensor,
              weights: torch.Tensor | None = None) -> torch.Tensor:
        """Mean squared z-scored error against (N, len(READ_PARAMS)) targets: every parameter
        counts alike whatever its range, or by `weights` (len(READ_PARAMS),)."""
        err = ((self(z) - target) / self.std) ** 2
        return (err * weights).mean() if weights is not None else err.mean()


def read_targets(perf: torch.Tensor) -> torch.Tensor:
    """(..., NUM_PERF) ground-truth performance -> (..., len(READ_PARAMS))."""
    return perf[..., READ_INDEX]
