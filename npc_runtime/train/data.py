"""Training data: world sessions (generated on the fly or read from shards) -> batches.

Every batch is a pure function of (seed, step, rank): the sampler draws from a numpy generator
seeded with exactly those integers, over a rolling pool of sessions whose membership depends
only on the step. Resuming at step k therefore reproduces the batches of an uninterrupted run
without saving any sampler state (the "data cursor" in a checkpoint is just the step), and
data-parallel ranks see different batches.

Sessions are memoised in a small LRU cache; regenerating one after a restart gives the same
frames because `generate_session` is deterministic in its seed.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from npc_runtime.config import ModelConfig
from npc_runtime.model.audio import audio_span
from npc_runtime.train.config import DataConfig
from npc_runtime.world.session import Session, generate_session

log = logging.getLogger(__name__)


def world_fingerprint() -> str:
    """Hash of the world generator's source (and emotion vocabulary) as imported by this process.

    Batches are a pure function of (seed, step) only while the world code is unchanged: a
    checkpoint records this, and a resume under a different world is reported (it still runs,
    but no longer replays the same data)."""
    import npc_runtime.world as world
    h = hashlib.sha256()
    root = Path(world.__file__).parent
    for path in sorted(root.glob("*.py")) + [root.parent / "emotions.yaml"]:
        if path.is_file():
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


_WORLD_AT_IMPORT = world_fingerprint()


def to_unit(frames: np.ndarray) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float (..., 3, H, W) in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).float() / 127.5 - 1.0
    return x.movedim(-1, -3).contiguous()


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (..., 3, H, W) in [-1, 1] -> uint8 (..., H, W, 3), as the pipeline decodes."""
    x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.movedim(-3, -1).cpu().numpy()


@dataclass
class Clip:
    """A batch of training clips, `n_chunks` chunks of C frames each."""
    frames: torch.Tensor       # (B, F, 3, H, W) in [-1, 1]
    references: torch.Tensor   # (B, R, 3, H, W) in [-1, 1]
    speak: torch.Tensor        # (B, n_chunks, Sw) per-chunk SPEAK audio windows
    listen: torch.Tensor       # (B, n_chunks, Sw)
    emotion: torch.Tensor      # (B, F, E)
    positions: torch.Tensor    # (B, F) int64 frame positions (RoPE)
    session_seeds: list[int]
    start_frames: list[int]
    perf: torch.Tensor | None = None   # (B, F, NUM_PERF) ground-truth performance (training)

    def to(self, device: torch.device) -> "Clip":
        return Clip(*(v.to(device) if isinstance(v, torch.Tensor) else v
                      for v in (self.frames, self.references, self.speak, self.listen,
                                self.emotion, self.positions)),
                    self.session_seeds, self.start_frames,
                    None if self.perf is None else self.perf.to(device))

    def cat(self, other: "Clip") -> "Clip":
        """One batch of both (a clip twice: once against the teacher, once against the truth)."""
        t = lambda a, b: torch.cat([a, b])  # noqa: E731
        return Clip(t(self.frames, other.frames), t(self.references, other.references),
                    t(self.speak, other.speak), t(self.listen, other.listen),
                    t(self.emotion, other.emotion), t(self.positions, other.positions),
                    self.session_seeds + other.session_seeds,
                    self.start_frames + other.start_frames,
                    None if self.perf is None or other.perf is None
                    else t(self.perf, other.perf))


class SessionSource:
    """Sessions by integer index, from the world (on the fly) or from shards, memoised."""

    def __init__(self, cfg: DataConfig, frame_size: int, split: str = "train",
                 cache_size: int = 24) -> None:
        self.cfg, self.size, self.split = cfg, frame_size, split
        self._cache: OrderedDict[int, Session] = OrderedDict()
        self._cache_size = cache_size
        self._reader = None
        if cfg.source == "shards" and split == "train":
            from npc_runtime.world.dataset import DatasetReader
            self._reader = DatasetReader(cfg.shards)

    def seed_of(self, index: int) -> int:
        if self.split == "eval":
            return self.cfg.eval_seed + index
        return self.cfg.first_seed + index

    def __getitem__(self, index: int) -> Session:
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        if self._reader is not None:
            session = self._reader[index % len(self._reader)]
            if session.frames.shape[1] != self.size:
                raise ValueError(f"shards hold {session.frames.shape[1]} px frames; the model "
                                 f"wants {self.size} px")
        else:
            session = generate_session(self.seed_of(index), self.cfg.session_s, self.split,
                                       size=self.size)
        self._cache[index] = session
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return session


class Sampler:
    """Deterministic batches from a rolling pool of training sessions."""

    def __init__(self, cfg: DataConfig, model_cfg: ModelConfig, seed: int,
                 max_position: int = 4096) -> None:
        self.cfg, self.model_cfg, self.seed = cfg, model_cfg, seed
        self.max_position = max_position
        self.sessions = SessionSource(cfg, model_cfg.frame_size, "train",
                                      cache_size=cfg.pool_sessions + 4)

    def pool(self, step: int) -> range:
        """Session indices available at `step`: a window sliding one session per refresh."""
        newest = self.cfg.pool_sessions + step // max(1, self.cfg.refresh_every)
        return range(newest - self.cfg.pool_sessions, newest)

    def rng(self, step: int, rank: int, salt: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.seed, step, rank, salt])

    def frames(self, step: int, rank: int, batch: int) -> torch.Tensor:
        """(B, 3, H, W) single frames in [-1, 1]."""
        rng, pool = self.rng(step, rank), self.pool(step)
        out = []
        for _ in range(batch):
            s = self.sessions[pool[int(rng.integers(len(pool)))]]
            out.append(s.frames[int(rng.integers(s.num_frames))])
        return to_unit(np.stack(out))

    def clips(self, step: int, rank: int, batch: int, n_chunks: int, max_refs: int,
              salt: int = 0) -> Clip:
        return self.clips_and_sessions(step, rank, batch, n_chunks, max_refs, salt)[0]

    def clips_and_sessions(self, step: int, rank: int, batch: int, n_chunks: int,
                           max_refs: int, salt: int = 0) -> tuple[Clip, list[Session]]:
        """The batch of `clips` and the sessions it was cut from (for per-session caches)."""
        rng, pool = self.rng(step, rank, salt), self.pool(step)
        n_refs = int(rng.integers(1, max_refs + 1))
        sessions = [self.sessions[pool[int(rng.integers(len(pool)))]] for _ in range(batch)]
        return clip_batch(self.model_cfg, sessions, rng, n_chunks, n_refs,
                          max_position=self.max_position), sessions


def clip_batch(cfg: ModelConfig, sessions: list[Session], rng: np.random.Generator,
               n_chunks: int, n_refs: int, max_position: int = 4096,
               starts: list[int] | None = None) -> Clip:
    """Cut one chunk-aligned clip per session, with its audio windows and references."""
    c, spf = cfg.stream.chunk_frames, cfg.samples_per_frame
    f = n_chunks * c
    frames, refs, speak, listen, emotion, positions, seeds, firsts, perf = ([] for _ in range(9))
    for i, s in enumerate(sessions):
        if s.num_frames < f:
            raise ValueError(f"session {s.seed} has {s.num_frames} frames, a clip needs {f}")
        first = starts[i] if starts is not None else \
            c * int(rng.integers((s.num_frames - f) // c + 1))
        frames.append(s.frames[first:first + f])
        views = rng.permutation(len(s.references))[:n_refs]
        refs.append(s.references[np.sort(views)])
        chunk0 = first // c
        chunks = range(chunk0, chunk0 + n_chunks)
        speak.append(np.stack([chunk_audio(s.speak_audio, cfg, k) for k in chunks]))
        listen.append(np.stack([chunk_audio(s.listen_audio, cfg, k) for k in chunks]))
        emotion.append(s.emotion[first:first + f])
        perf.append(s.perf[first:first + f])
        p0 = int(rng.integers(max(1, max_position)))
        positions.append(np.arange(p0, p0 + f))
        seeds.append(s.seed)
        firsts.append(first)
    return Clip(frames=to_unit(np.stack(frames)), references=to_unit(np.stack(refs)),
                speak=torch.from_numpy(np.stack(speak)), listen=torch.from_numpy(np.stack(listen)),
                emotion=torch.from_numpy(np.stack(emotion)).float(),
                positions=torch.from_numpy(np.stack(positions)).long(),
                session_seeds=seeds, start_frames=firsts,
                perf=torch.from_numpy(np.stack(perf)).float())


def chunk_audio(track: np.ndarray, cfg: ModelConfig, chunk: int) -> np.ndarray:
    """The audio window chunk `chunk` hears, zero outside the track (as the stream fills it)."""
    start, end = audio_span(cfg, chunk)
    out = np.zeros(end - start, np.float32)
    lo, hi = max(start, 0), min(end, len(track))
    if hi > lo:
        out[lo - start:hi - start] = track[lo:hi]
    return out


def eval_frames(cfg: DataConfig, frame_size: int) -> np.ndarray:
    """Held-out frames (split='eval' identities, voices and lines), evenly spaced: (N, H, W, 3)."""
    src = SessionSource(cfg, frame_size, "eval", cache_size=cfg.eval_sessions)
    per = -(-cfg.eval_frames // cfg.eval_sessions)
    out = []
    for i in range(cfg.eval_sessions):
        s = src[i]
        out.append(s.frames[np.linspace(0, s.num_frames - 1, per).round().astype(int)])
    return np.concatenate(out)[:cfg.eval_frames]
