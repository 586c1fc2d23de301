"""Bench adapters for trained checkpoints (the `bench.performers.Performer` protocol).

- `OnlineLPMPerformer`: the Online LPM through the real streaming path (`PerformanceModel`,
  paged KV cache, few-step sampler), chunk by chunk: what the must-shows are measured on.
- `BaseLPMPerformer`: the bidirectional Base LPM sampled with its full step count over
  consecutive clips (each clip sees its own audio/emotion; clips are independent, so chunk
  boundaries of clips may jump): the teacher the Online LPM is compared with.

`npc-runtime train bench` runs LPM-Bench-mini on them (docs/training.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from npc_runtime.bench.cases import BenchCase
from npc_runtime.bench.performers import GroundTruthPerformer
from npc_runtime.pipeline import ChunkRequest, PerformanceModel, slice_audio
from npc_runtime.sampler import flow_timesteps
from npc_runtime.train.data import Clip, chunk_audio, to_uint8, to_unit
from npc_runtime.train.flow import Conditioning, guided, load_lpm, sample_clip
from npc_runtime.train.vae import reconstruct


def _emotion(case: BenchCase, n_frames: int) -> np.ndarray:
    em = np.asarray(case.emotion, np.float32)
    return np.concatenate([em, np.repeat(em[-1:], max(0, n_frames - len(em)), 0)])[:n_frames]


class OnlineLPMPerformer:
    def __init__(self, checkpoint: str | Path, name: str = "online_lpm", seed: int = 0,
                 n_refs: int = 4, emotion_gain: float | None = None) -> None:
        self.model = PerformanceModel.from_checkpoint(checkpoint, emotion_gain=emotion_gain)
        self.name, self.seed, self.n_refs = name, seed, n_refs
        self.settings = {"checkpoint": str(checkpoint), "path": "streaming (paged KV cache)",
                         "steps_per_chunk": self.model.steps,
                         "commit_pass": True, "references": n_refs,
                         "mouth_track": self.model.lpm.mouth is not None,
                         "mouth_editor": self.model.lpm.mouth_edit is not None,
                         "emotion_gain": self.model.emotion_gain}

    @torch.inference_mode()
    def perform(self, case: BenchCase) -> Iterator[np.ndarray]:
        m, c = self.model, self.model.chunk_frames
        n_chunks = -(-case.num_frames // c)
        emotion = _emotion(case, n_chunks * c)
        sid = m.open_session(m.encode_identity(case.references[:self.n_refs]), self.seed)
        try:
            done = 0
            for k in range(n_chunks):
                start, end = m.audio_span(k)
                req = ChunkRequest(sid, slice_audio(case.speak_audio, start, end),
                                   slice_audio(case.listen_audio, start, end),
                                   emotion[k * c:(k + 1) * c])
                frames = m.step([req])[0][:case.num_frames - done]
                done += len(frames)
                yield frames
        finally:
            m.close_session(sid)


class BaseLPMPerformer:
    def __init__(self, checkpoint: str | Path, name: str = "base_lpm",
                 clip_chunks: int | None = None,
                 steps: int | None = None, guidance: float = 1.0, seed: int = 0,
                 n_refs: int = 4) -> None:
        self.lpm, info = load_lpm(checkpoint, causal=False)
        self.lpm.eval()
        self.cfg = self.lpm.cfg
        # The clip length it was trained on (recorded by the Base stage's export).
        clip_chunks = clip_chunks or int(info.get("clip_chunks") or 4)
        self.name, self.clip_chunks, self.guidance = name, clip_chunks, guidance
        self.steps = steps or self.cfg.stream.base_steps
        self.seed, self.n_refs = seed, n_refs
        self.settings = {"checkpoint": str(checkpoint), "path": "bidirectional clips",
                         "steps": self.steps, "clip_chunks": clip_chunks, "guidance": guidance,
                         "references": n_refs}

    @torch.inference_mode()
    def perform(self, case: BenchCase) -> Iterator[np.ndarray]:
        cfg, c = self.cfg, self.cfg.stream.chunk_frames
        f = self.clip_chunks * c
        n_clips = -(-case.num_frames // f)
        emotion = _emotion(case, n_clips * f)
        refs = to_unit(case.references[:self.n_refs])[None]
        gen = torch.Generator().manual_seed(self.seed)
        grid = flow_timesteps(self.steps, cfg.stream.timestep_shift)
        done = 0
        for j in range(n_clips):
            chunks = range(j * self.clip_chunks, (j + 1) * self.clip_chunks)
            clip = Clip(frames=torch.zeros(1, f, 3, 1, 1), references=refs,
                        speak=torch.from_numpy(np.stack([chunk_audio(case.speak_audio, cfg, k)
                                                         for k in chunks]))[None],
                        listen=torch.from_numpy(np.stack([chunk_audio(case.listen_audio, cfg, k)
                                                          for k in chunks]))[None],
                        emotion=torch.from_numpy(emotion[j * f:(j + 1) * f])[None],
                        positions=torch.arange(j * f, (j + 1) * f)[None],
                        session_seeds=[0], start_frames=[j * f])
            cond = Conditioning(self.lpm, clip)
            null = cond.null(self.lpm, clip) if self.guidance != 1.0 else None
            noise = torch.randn(1, f, cfg.vae.latent_channels, cfg.latent_size, cfg.latent_size,
                                generator=gen)
            z, _ = sample_clip(guided(self.lpm, cond, null, self.guidance), noise, grid)
            frames = to_uint8(self.lpm.vae.decode(z[0], clip.emotion[0])
                              )[:case.num_frames - done]
            done += len(frames)
            yield frames


class VAERoundTripPerformer:
    """The ground-truth renders through a checkpoint's VAE (encode -> decode): the ceiling any
    LPM decoding through that VAE can reach on the bench."""

    def __init__(self, checkpoint: str | Path, name: str = "vae_roundtrip",
                 batch: int = 50) -> None:
        self.lpm, _ = load_lpm(checkpoint, causal=False)
        self.lpm.eval()
        self.name, self.batch = name, batch
        self.settings = {"checkpoint": str(checkpoint), "path": "VAE encode + decode of truth"}

    @torch.inference_mode()
    def perform(self, case: BenchCase) -> Iterator[np.ndarray]:
        # An expression decoder gets the case's tags, as the stream gives it the requests'.
        emotion, done = _emotion(case, case.num_frames), 0
        for frames in GroundTruthPerformer().perform(case):
            yield reconstruct(self.lpm.vae, frames, self.batch,
                              emotion[done:done + len(frames)])
            done += len(frames)
