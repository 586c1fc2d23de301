"""Blinks: a blink clock (who is speaking -> when the eyes close) and a blink editor (closure ->
face).

Interfaces:
- `blink_frame_states(speak_gate, listen_gate) -> (B, T)`: each frame's state for the clock,
  IDLE, SPEAKING or LISTENING. Speaking where the NPC's speech gate is open (`speech_gate` on
  the SPEAK audio, the mouth editor's); listening where it is shut and the same gate on the
  LISTEN audio is open. The gate reaches `mouth_edit.gate_frames` either side, so a partner's
  short pauses stay their turn; holding the state longer after their voice stops loses more
  than it gains (held-out blink gain 9.5 a minute with no hold, 7.8 with 20 frames, the
  truth's 9.6: docs/training.md, session 26).
- `BlinkState` + `blink_closures(cfg, frame_states, states) -> (B, T)`: the stream's eyelid
  closure. Where no blink runs and `blink.refractory_frames` have passed since the last one
  began, a blink starts with probability rate(state) / fps, drawn from the stream's own
  generator (seeded by the session's seed: the same seed and audio give the same blinks): a
  sin^2 bump of `blink.amplitude` over `blink.duration_frames`, the world's own blink.
- `BlinkEditor(cfg)`: the latent editor (model/latent_edit.py) over the eyes' window
  (`blink.window`), conditioned on the eyelid closure a frame should show (0 open .. 1 shut):
  `frames(z (B, F, c, h, w), closure (B, F))`; frames with closure 0 pass untouched and cost
  nothing.

Why a clock with fitted rates and not a learned track like the nods' (model/nod.py): the world's
nods answer the partner's pauses, so when to nod must be heard; its blinks are a Poisson process
whose rate depends only on the state (world/behaviour.py), so a rate per state is the whole
model and maximum likelihood fits it (train/blink.py). Why outside the DiT: distilled to two
steps, the student blinks 1-2 times a minute in any state (docs/training.md, session 26): the
teacher's randomly timed blinks average away, as its nods did. Like the nod editor's, the blink
editor's frames are shown, never committed to the KV cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from npc_runtime.config import ModelConfig
from npc_runtime.model.latent_edit import ScalarEditor

IDLE, SPEAKING, LISTENING = 0, 1, 2


@dataclass
class BlinkState:
    """One stream's blink clock: its generator, the running blink's frame (-1: none) and the
    frames left before another may start."""
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    phase: int = -1
    cooldown: int = 0


def blink_state(seed: int) -> BlinkState:
    """A fresh clock for a session opened with `seed`; its own stream of draws, apart from the
    session's sampling noise."""
    return BlinkState(rng=np.random.default_rng([int(seed) & (2 ** 63 - 1), 0xB1]))


def blink_curve(cfg: ModelConfig) -> list[float]:
    """The eyelid closure at each frame of a blink: the world's sin^2 bump, peak at the middle."""
    b = cfg.blink
    return [b.amplitude * math.sin(math.pi * (p + 1) / (b.duration_frames + 1)) ** 2
            for p in range(b.duration_frames)]


def blink_frame_states(speak_gate: torch.Tensor, listen_gate: torch.Tensor) -> np.ndarray:
    """Speech gates (B, T) of the SPEAK and the LISTEN audio (> 0: a voice there) -> frame
    states (B, T) int."""
    speak, listen = (speak_gate > 0).cpu().numpy(), (listen_gate > 0).cpu().numpy()
    return np.where(speak, SPEAKING, np.where(listen, LISTENING, IDLE))


def blink_closures(cfg: ModelConfig, frame_states: np.ndarray, states: list[BlinkState]
                   ) -> torch.Tensor:
    """Frame states (B, T) -> eyelid closures (B, T), advancing each stream's clock. One draw
    per frame whatever happens, so a stream's draws do not depend on its blinks."""
    b_cfg, curve = cfg.blink, blink_curve(cfg)
    p = np.asarray(b_cfg.rates_per_min, np.float64) / 60.0 / cfg.stream.fps   # per frame
    out = torch.zeros(frame_states.shape)
    for b, state in enumerate(states):
        draws = state.rng.random(frame_states.shape[1])
        for i, s in enumerate(frame_states[b]):
            if state.phase < 0:
                if state.cooldown > 0:
                    state.cooldown -= 1
                    continue
                if draws[i] >= p[s]:
                    continue
                state.phase = 0
            out[b, i] = curve[state.phase]
            state.phase += 1
            if state.phase == b_cfg.duration_frames:
                state.phase = -1
                state.cooldown = b_cfg.refractory_frames - b_cfg.duration_frames
    return out


class BlinkEditor(ScalarEditor):
    """`frames(z, closures)`: each frame's eyes closed as far as its closure (0 open .. 1 shut;
    model/latent_edit.py)."""

    NAME, VALUE = "blink editor", "closure"

    def __init__(self, cfg: ModelConfig) -> None:
        b = cfg.blink
        super().__init__(cfg.vae.latent_channels, b.channels, b.hidden_edit, b.blocks,
                         cfg.blink_window)
