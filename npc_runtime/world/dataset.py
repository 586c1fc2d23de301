"""Dataset shards of rendered sessions: writer, reader and the `world make` driver.

A shard is one `.npz` file (a zip of .npy arrays, uncompressed by default so reading is a copy,
not a decode) holding several sessions under keys `NNNN/<field>`, plus `NNNN/meta` (JSON: seed,
split, identity, script, voices) and a top-level `format` version. Readers load one session at a
time, lazily, so a shard bigger than memory-per-session is fine.

Layout of a dataset directory: `shard-00000.npz`, `shard-00001.npz`, ... and `index.json` (the
arguments that made it, so it can be regenerated bit-for-bit: sessions are deterministic in their
seeds).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm import tqdm

from npc_runtime.world.identity import Identity
from npc_runtime.world.session import Session, generate_session

FORMAT_VERSION = 1
_ARRAYS = ("frames", "speak_audio", "listen_audio", "emotion", "perf", "speaking", "listening",
           "references")
log = logging.getLogger(__name__)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(type(o))


class ShardWriter:
    """Collects sessions and writes them as one shard file on `close()`."""

    def __init__(self, path: str | Path, compress: bool = False):
        self.path = Path(path)
        self.compress = compress
        self._arrays: dict[str, np.ndarray] = {"format": np.array(FORMAT_VERSION)}
        self._count = 0

    def add(self, session: Session) -> None:
        if session.frames is None or session.references is None:
            raise ValueError("only rendered sessions can be written (render=True)")
        key = f"{self._count:04d}"
        for name in _ARRAYS:
            self._arrays[f"{key}/{name}"] = getattr(session, name)
        meta = {"seed": session.seed, "split": session.split, "fps": session.fps,
                "identity": session.identity.to_dict(), **session.meta}
        self._arrays[f"{key}/meta"] = np.array(json.dumps(meta, default=_json_default))
        self._count += 1

    def close(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp.npz")
        (np.savez_compressed if self.compress else np.savez)(tmp, **self._arrays)
        tmp.replace(self.path)  # atomic: a half-written shard never looks complete
        return self.path

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, *_) -> None:
        if exc_type is None:
            self.close()


class ShardReader:
    """Random access to the sessions of one shard: `len(r)`, `r[i]` -> Session, iteration."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._npz = np.load(self.path, allow_pickle=False)
        if int(self._npz["format"]) != FORMAT_VERSION:
            raise ValueError(f"{self.path}: shard format {int(self._npz['format'])}, "
                             f"this reader knows {FORMAT_VERSION}")
        self._keys = sorted({k.split("/")[0] for k in self._npz.files if "/" in k})

    def __len__(self) -> int:
        return len(self._keys)

    def meta(self, i: int) -> dict:
        return json.loads(str(self._npz[f"{self._keys[i]}/meta"]))

    def __getitem__(self, i: int) -> Session:
        key = self._keys[i]
        meta = self.meta(i)
        arrays = {name: self._npz[f"{key}/{name}"] for name in _ARRAYS}
        identity = Identity.from_dict(meta.pop("identity"))
        return Session(seed=int(meta.pop("seed")), split=meta.pop("split"), identity=identity,
                       fps=int(meta.pop("fps")), meta=meta, **arrays)

    def __iter__(self) -> Iterator[Session]:
        for i in range(len(self)):
            yield self[i]

    def close(self) -> None:
        self._npz.close()


class DatasetReader:
    """All sessions of a dataset directory, in shard order."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.shards = [ShardReader(p) for p in sorted(self.root.glob("shard-*.npz"))]
        if not self.shards:
            raise FileNotFoundError(f"no shard-*.npz in {self.root}")
        self._offsets = np.cumsum([0] + [len(s) for s in self.shards])

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def __getitem__(self, i: int) -> Session:
        if not 0 <= i < len(self):
            raise IndexError(i)
        s = int(np.searchsorted(self._offsets, i, side="right") - 1)
        return self.shards[s][i - int(self._offsets[s])]

    def __iter__(self) -> Iterator[Session]:
        for shard in self.shards:
            yield from shard


@dataclass(frozen=True)
class DatasetSpec:
    """What `npc-runtime world make` builds (saved as index.json beside the shards)."""

    sessions: int = 8
    duration_s: float = 30.0
    sessions_per_shard: int = 4
    first_seed: int = 0
    split: str = "train"
    size: int = 128
    compress: bool = False
    compile: bool = False  # torch.compile the renderer (faster for big datasets)


def make_dataset(root: str | Path, spec: DatasetSpec, progress: bool = True) -> dict:
    """Generate and write a dataset; returns timing figures (frames/s, dataset hours/min)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    t0, frames, shard_paths = time.perf_counter(), 0, []
    bar = tqdm(total=spec.sessions, desc="sessions", unit="session", disable=not progress)
    for first in range(0, spec.sessions, spec.sessions_per_shard):
        path = root / f"shard-{first // spec.sessions_per_shard:05d}.npz"
        with ShardWriter(path, compress=spec.compress) as writer:
            for k in range(first, min(first + spec.sessions_per_shard, spec.sessions)):
                session = generate_session(spec.first_seed + k, spec.duration_s, spec.split,
                                           size=spec.size, compile=spec.compile)
                writer.add(session)
                frames += session.num_frames
                bar.update(1)
        shard_paths.append(path.name)
    bar.close()
    elapsed = time.perf_counter() - t0
    stats = {"sessions": spec.sessions, "frames": frames, "seconds": elapsed,
             "frames_per_s": frames / elapsed,
             "dataset_hours_per_min": frames / 25.0 / 3600.0 / (elapsed / 60.0)}
    (root / "index.json").write_text(json.dumps({"spec": asdict(spec), "shards": shard_paths,
                                                 "stats": stats}, indent=2))
    log.info("wrote %d sessions (%d frames) to %s in %.1f s: %.0f frames/s, %.3f h/min",
             spec.sessions, frames, root, elapsed, stats["frames_per_s"],
             stats["dataset_hours_per_min"])
    return stats
