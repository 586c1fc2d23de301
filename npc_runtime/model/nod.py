"""Listening nods: a nod track (partner's voice -> when to nod) and a nod editor (nod -> face).

Interfaces:
- `listen_features(cfg, windows) -> (B, n, slots, 4)`: per video frame of each chunk window, the
  log RMS of its four 10 ms quarters. The nod track hears loudness, not words: the world's
  listener nods at the partner's pauses and line ends (world/behaviour.py).
- `NodTrack(cfg)`: a GRU over those features, one frame at a time, `nod.lookahead_frames` ahead
  of the frame it speaks for: `chunk(windows (B, Sw), h) -> (onset logits (B, C), h')` in the
  stream, `sequence(features (B, T, 4)) -> logits (B, T - L)` in training; both give frame t's
  logit from the features of frames 0..t + L, bit for bit the same (tests/model/test_nod.py). The
  logit is that a nod starts within two frames of t.
- `NodState` + `nod_offsets(cfg, probs, states) -> (B, C)`: the stream's nods. Where no nod is
  running and the refractory time has passed, a probability above `nod.threshold` starts one: a
  sin^2 bump of `nod.amplitude` over `nod.duration_frames` in head pitch, the world's own nod
  shape at its mean size. Deterministic: the same audio gives the same nods.
- `NodEditor(cfg)`: the latent editor (model/latent_edit.py) over the head's window
  (`nod.window`), conditioned on a head-pitch offset: `frames(z (B, F, c, h, w), offset (B, F))`
  tilts each frame by its offset; frames with offset 0 pass untouched and cost nothing.

Why outside the DiT: the Base LPM nods while listening (28.6 a minute, but as often in silence);
distilled to two steps the student averages those partner-timed pulses away (3.7 a minute
against the truth's 17.6, and more in silence: docs/training.md, sessions 17-19). The mouth had
the same fate and the same remedy (model/mouth_edit.py): a small audio-driven track decides,
a latent editor draws. Like the mouth editor's, the nod editor's frames are shown but not
committed to the KV cache (mouth_edit.commit_edited), so the DiT streams exactly as without it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from npc_runtime.config import ModelConfig
from npc_runtime.model.audio import audio_window_samples
from npc_runtime.model.latent_edit import ScalarEditor

QUARTERS = 4    # loudness features per video frame


def frame_loudness(pcm: torch.Tensor) -> torch.Tensor:
    """(..., frames, samples_per_frame) PCM -> (..., frames, 4) log10 RMS of each quarter,
    offset so that silence (1e-4 full scale and below) reads 0."""
    q = pcm.float().unflatten(-1, (QUARTERS, -1))
    return torch.log10(q.square().mean(-1).sqrt() + 1e-4) + 4.0


def listen_features(cfg: ModelConfig, windows: torch.Tensor) -> torch.Tensor:
    """LISTEN chunk windows (B, n, Sw) -> every window slot's loudness (B, n, slots, 4); slot j
    is video frame (chunk * C - history + j)."""
    a, c, spf = cfg.audio, cfg.stream.chunk_frames, cfg.samples_per_frame
    b, n, s = windows.shape
    if s != audio_window_samples(cfg):
        raise ValueError(f"nod track: windows of {audio_window_samples(cfg)} samples needed, "
                         f"got {s}")
    slots = a.history_frames + c + a.lookahead_frames
    # The window opens with the first mel frame's lead-in; then a frame per slot.
    return frame_loudness(windows[..., s - slots * spf:].reshape(b, n, slots, spf))


def track_features(cfg: ModelConfig, audio: torch.Tensor, n_frames: int) -> torch.Tensor:
    """A whole LISTEN track (B, S) from sample 0 -> the loudness of frames 0..n_frames-1
    (B, n_frames, 4), zeros past its end as in the stream."""
    spf = cfg.samples_per_frame
    pcm = torch.nn.functional.pad(audio, (0, max(0, n_frames * spf - audio.shape[1])))
    return frame_loudness(pcm[:, :n_frames * spf].reshape(len(audio), n_frames, spf))


class NodTrack(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        h = cfg.nod.hidden
        self.gru = nn.GRU(QUARTERS, h, batch_first=True)
        self.head = nn.Linear(h, 1)

    def sequence(self, features: torch.Tensor, h: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Loudness of frames 0..T-1 (B, T, 4) -> onset logits of frames 0..T-L-1 (B, T - L)
        and the GRU state after the last frame heard."""
        out, h = self.gru(features[:, self.cfg.nod.lookahead_frames:], h)
        return self.head(out)[..., 0], h

    def chunk(self, windows: torch.Tensor, h: torch.Tensor | None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """One chunk of each stream: LISTEN windows (B, Sw), GRU state (1, B, hidden) or None
        (a new stream) -> onset logits of the chunk's frames (B, C), the new state. Frame i of
        chunk k is heard up to frame kC + i + L: window slots history + L .. + C - 1."""
        a, c, look = self.cfg.audio, self.cfg.stream.chunk_frames, self.cfg.nod.lookahead_frames
        feats = listen_features(self.cfg, windows[:, None])[:, 0]              # (B, slots, 4)
        start = a.history_frames + look
        out, h = self.gru(feats[:, start:start + c], h)
        return self.head(out)[..., 0], h


@dataclass
class NodState:
    """One stream's nod: the track's GRU state, the running nod's frame (-1: none) and the
    frames left before another may start."""
    h: torch.Tensor | None = None          # (hidden,)
    phase: int = -1
    cooldown: int = 0


def nod_curve(cfg: ModelConfig) -> list[float]:
    """The nod's head-pitch offset at each of its frames: the world's sin^2 bump."""
    n = cfg.nod
    return [n.amplitude * math.sin(math.pi * (p + 1) / (n.duration_frames + 1)) ** 2
            for p in range(n.duration_frames)]


def nod_offsets(cfg: ModelConfig, probs: torch.Tensor, states: list[NodState]) -> torch.Tensor:
    """Onset probabilities (B, C) -> head-pitch offsets (B, C), advancing each stream's state."""
    n, curve = cfg.nod, nod_curve(cfg)
    out = torch.zeros(probs.shape)
    for b, state in enumerate(states):
        for i, p in enumerate(probs[b].tolist()):
            if state.phase < 0:
                if state.cooldown > 0:
                    state.cooldown -= 1
                    continue
                if p <= n.threshold:
                    continue
                state.phase = 0
            out[b, i] = curve[state.phase]
            state.phase += 1
            if state.phase == n.duration_frames:
                state.phase, state.cooldown = -1, n.refractory_frames
    return out


class NodEditor(ScalarEditor):
    """`frames(z, offsets)`: each frame tilted by its head-pitch offset (model/latent_edit.py)."""

    NAME, VALUE = "nod editor", "offset"

    def __init__(self, cfg: ModelConfig) -> None:
        n = cfg.nod
        super().__init__(cfg.vae.latent_channels, n.channels, n.hidden_edit, n.blocks,
                         cfg.nod_window)
