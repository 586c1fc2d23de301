"""A deliberately small Online LPM architecture for the load tests.

32x32 frames and a one-block DiT: the real pipeline (audio encoder, cached attention, sampler,
VAE decode, BC1) at a cost that leaves room for many streams on two shared CPU cores, so the
tests measure the scheduler and the server, not how busy the machine is today.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from npc_runtime.config import (AudioConfig, DiTConfig, ModelConfig, StreamConfig, VAEConfig,
                                config_to_dict)
from npc_runtime.pipeline import PerformanceModel


def micro_config() -> ModelConfig:
    return ModelConfig(name="micro", frame_size=32, vae=VAEConfig(channels=(8, 8, 8)),
                       audio=AudioConfig(dim=32, layers=1, heads=2),
                       dit=DiTConfig(dim=64, depth=1, heads=2, rope_dims=16),
                       stream=StreamConfig(online_steps=2))


def write_micro_yaml(path: Path) -> Path:
    path.write_text(yaml.safe_dump(config_to_dict(micro_config())))
    return path


class CostlyModel(PerformanceModel):
    """The micro model plus a known cost per step: `fixed_s + per_chunk_step_s * steps * B`
    seconds of sleep. Sleeping costs no CPU, so the step time the server measures is dominated
    by a figure the test chose, whatever else the shared machine is doing."""

    fixed_s = 0.0
    per_chunk_step_s = 0.0

    def step(self, requests):
        time.sleep(self.fixed_s + self.per_chunk_step_s * self.steps * len(requests))
        return super().step(requests)


def costly_model(fixed_s: float, per_chunk_step_s: float, max_sessions: int = 8) -> CostlyModel:
    m = CostlyModel.from_config(micro_config(), seed=0, max_sessions=max_sessions)
    m.fixed_s, m.per_chunk_step_s = fixed_s, per_chunk_step_s
    return m
