"""A steady head: read the head pitch the DiT drew, cut its fast excursions while not speaking.

Interfaces:
- `PitchReader(cfg)`: a small CNN over the head's window of a latent (`nod.window`):
  `(N, c, h, w) scaled VAE latents -> (N,)` head pitch in the world's units. Trained on
  renders of training identities with known pitch, encoded by the model's VAE (train/steady.py).
- `SteadyState` + `steady_offsets(cfg, pitch, quiet, states) -> (B, C)`: per stream, a slow
  baseline (an EMA of the read pitch, `steady.time_constant_frames`); on a frame where the NPC
  is quiet, the head-pitch offset that brings the read pitch back to within `steady.band` of
  the baseline, 0 when it already is. The nod editor (model/nod.py) applies the offsets, added
  to the nods', so a steadied frame costs one editor pass and an untouched one nothing.

Why: distilled to two steps, the DiT's head bobs where nothing calls for it: pitch bumps of
0.14-0.24 in silence, where the world's silent head drifts slowly (0.12 over ~3 s) and has no
bump above 0.1 (docs/training.md, session 19: the nod check's false nods). A steadier DiT would
need training it cannot get on this CPU; a reader and the editor the nods already ship with
remove the bobs. While the NPC speaks the head stays the DiT's: the world dips it on stressed
syllables, and the baseline keeps following it there so that it is current when speech ends.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from npc_runtime.config import ModelConfig


class PitchReader(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        w, c = cfg.steady.width, cfg.vae.latent_channels
        self.window = cfg.nod_window
        self.features = nn.Sequential(
            nn.Conv2d(c, w, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(w, w, 3, padding=1), nn.GELU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.GELU(),
            # Pooled to a 4x4 grid, not to one vector: pitch is where the face sits.
            nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(2 * w * 16, 2 * w), nn.GELU(), nn.Linear(2 * w, 1))
        # Target statistics (set by training): the head's output is z-scored pitch.
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("std", torch.ones(()))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Scaled latents (N, c, h, w) -> head pitch (N,)."""
        if z.ndim != 4:
            raise ValueError(f"pitch reader: latents (N, c, h, w), got {tuple(z.shape)}")
        rows, cols = self.window
        return self.head(self.features(z[:, :, rows, cols]))[:, 0] * self.std + self.mean


@dataclass
class SteadyState:
    """One stream's pitch baseline (None until its first frame), and for the emotion hold the
    last frame's emotion weights and the frames since they last changed."""
    baseline: float | None = None
    emotion: tuple[float, ...] | None = None
    since_change: int = 1 << 30


def steady_offsets(cfg: ModelConfig, pitch: torch.Tensor, quiet: torch.Tensor,
                   states: list[SteadyState], emotion: torch.Tensor | None = None
                   ) -> torch.Tensor:
    """Read pitch (B, C), quiet frames (B, C) bool -> head-pitch offsets (B, C) that keep each
    quiet frame within `steady.band` of its stream's baseline, advancing the baselines (every
    frame, quiet or not, by the raw reading: a bob moves it by a fraction of itself).

    With `steady.emotion_hold_frames` > 0 and the frames' emotion weights (B, C, E), a frame
    within that many of a change in the weights is left alone and the baseline set to its
    reading: the emotion's head tilt passes, and the baseline is current when the hold ends."""
    band, alpha = cfg.steady.band, 1.0 / cfg.steady.time_constant_frames
    hold = cfg.steady.emotion_hold_frames if emotion is not None else 0
    out = torch.zeros(pitch.shape)
    for b, state in enumerate(states):
        for i, (p, q) in enumerate(zip(pitch[b].tolist(), quiet[b].tolist())):
            if hold:
                weights = tuple(emotion[b, i].tolist())
                state.since_change = 0 if (state.emotion is not None
                                           and weights != state.emotion) \
                    else state.since_change + 1
                state.emotion = weights
                if state.since_change < hold:
                    state.baseline = p
                    continue
            if state.baseline is None:
                state.baseline = p
            dev = p - state.baseline
            if q and abs(dev) > band:
                out[b, i] = (band if dev > 0 else -band) - dev
            state.baseline += alpha * dev
    return out
