"""Shared fixtures: a micro LPM (same code paths as `tiny`, sizes small enough for fast tests)."""

import numpy as np
import pytest
import torch

from npc_runtime.config import AudioConfig, DiTConfig, ModelConfig, StreamConfig, VAEConfig
from npc_runtime.pipeline import ChunkRequest, PerformanceModel, slice_audio


def micro_config(**stream) -> ModelConfig:
    return ModelConfig(
        name="micro", frame_size=32,
        vae=VAEConfig(channels=(8, 8, 8)),
        audio=AudioConfig(dim=32, layers=1, heads=2, frame_radius=2),
        dit=DiTConfig(dim=64, depth=2, heads=2, rope_dims=16),
        stream=StreamConfig(**{"window_chunks": 2, "online_steps": 2, **stream}),
    )


@pytest.fixture
def micro_cfg() -> ModelConfig:
    return micro_config()


@pytest.fixture
def micro_model(micro_cfg) -> PerformanceModel:
    model = PerformanceModel.from_config(micro_cfg, seed=0)
    _randomize_zero_inits(model)
    return model


def _randomize_zero_inits(model: PerformanceModel) -> None:
    """adaLN-Zero starts every residual branch at zero, which would make an untrained model
    ignore audio, emotion and history entirely (and the frame-audio positions start at zero);
    tests of wiring need every path live."""
    gen = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for name, p in model.lpm.dit.named_parameters():
            if "adaLN" in name or "final_" in name or "frame_audio_pos" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    model._fingerprint = None


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def random_refs(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def random_emotion(rng: np.random.Generator, frames: int, dim: int) -> np.ndarray:
    return rng.uniform(0, 1, (frames, dim)).astype(np.float32)


def step_session(model: PerformanceModel, sid: int, speak: np.ndarray, listen: np.ndarray,
                 emotion: np.ndarray, n_chunks: int) -> torch.Tensor:
    """Step an open session through `n_chunks` chunks -> its latents (F, c, h, w)."""
    c = model.chunk_frames
    out = []
    for k in range(n_chunks):
        start, end = model.audio_span(k)
        out.append(model.step_latents([ChunkRequest(
            sid, slice_audio(speak, start, end), slice_audio(listen, start, end),
            emotion[k * c:(k + 1) * c])])[0])
    return torch.stack(out).flatten(0, 1)
