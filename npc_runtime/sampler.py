"""Rectified-flow samplers. The model is only a callable `velocity(x, t) -> v`.

Convention: x_t = (1 - t) * x_0 + t * noise, t from 1 (noise) to 0 (data), and the network
predicts the velocity v = noise - x_0, so dx/dt = v.
"""

from __future__ import annotations

from typing import Callable

import torch

Velocity = Callable[[torch.Tensor, float], torch.Tensor]


def flow_timesteps(steps: int, shift: float = 1.0) -> list[float]:
    """steps + 1 times from 1 to 0; shift > 1 spends more steps at high noise (SD3-style)."""
    if steps < 1:
        raise ValueError(f"need at least one sampling step, got {steps}")
    ts = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64, device="cpu")
    ts = shift * ts / (1 + (shift - 1) * ts)
    return [float(t) for t in ts]


def sample_euler(velocity: Velocity, noise: torch.Tensor, timesteps: list[float]) -> torch.Tensor:
    """Deterministic ODE integration (the Base LPM's many steps, or a distilled few)."""
    x = noise
    for t, t_next in zip(timesteps[:-1], timesteps[1:]):
        x = x + (t_next - t) * velocity(x, t)
    return x


def sample_renoise(velocity: Velocity, noise: torch.Tensor, timesteps: list[float],
                   fresh_noise: Callable[[], torch.Tensor]) -> torch.Tensor:
    """Few-step consistency sampling (CausVid / Self-Forcing style): predict x_0 at each step,
    then re-noise it to the next time with fresh noise."""
    x = noise
    for t, t_next in zip(timesteps[:-1], timesteps[1:]):
        x0 = x - t * velocity(x, t)
        x = x0 if t_next == 0 else (1 - t_next) * x0 + t_next * fresh_noise()
    return x


def with_guidance(cond: Velocity, uncond: Velocity, scale: float) -> Velocity:
    """Classifier-free guidance as a separate wrapper: v = v_u + scale * (v_c - v_u)."""
    def guided(x: torch.Tensor, t: float) -> torch.Tensor:
        v_u = uncond(x, t)
        return v_u + scale * (cond(x, t) - v_u)
    return guided
