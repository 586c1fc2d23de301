"""Performers: anything that turns a bench case into frames, behind one small Protocol.

`Performer.perform(case)` returns the case's frames, (T, H, W, 3) uint8, either as one array or
as an iterable of consecutive chunks (T_k, H, W, 3) — streaming generators should yield chunks so
long streams never sit in memory whole. A model is benchmarked by wrapping it in an adapter that
implements this Protocol.

Shipped here: the ceiling (ground-truth renderer), the two floors (the reference image held
still; uniform noise) and a folder reader for frames produced elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from npc_runtime.bench.cases import BenchCase
from npc_runtime.world.render import render_frames

Frames = np.ndarray | Iterable[np.ndarray]
CHUNK = 100  # frames per yielded chunk for the shipped performers


@runtime_checkable
class Performer(Protocol):
    """A generator under test. `name` labels it in reports."""

    name: str

    def perform(self, case: BenchCase) -> Frames: ...


class GroundTruthPerformer:
    """The ceiling: the world's own renderer driven by the case's ground-truth performance."""

    name = "ground_truth"

    def __init__(self, compile: bool = False):
        self.compile = compile

    def perform(self, case: BenchCase) -> Iterator[np.ndarray]:
        if case.gt_perf is None or case.identity is None:
            raise ValueError(f"case {case.name!r} has no ground truth (not a world case)")
        for i in range(0, case.num_frames, CHUNK):
            yield render_frames(case.identity, case.gt_perf[i:i + CHUNK], case.size,
                                compile=self.compile)


class ReferencePerformer:
    """Floor: the first reference image, unchanged, on every frame (perfect identity, no life)."""

    name = "reference_still"

    def perform(self, case: BenchCase) -> Iterator[np.ndarray]:
        ref = case.references[0]
        for i in range(0, case.num_frames, CHUNK):
            yield np.broadcast_to(ref, (min(CHUNK, case.num_frames - i), *ref.shape))


class NoisePerformer:
    """Floor: uniform RGB noise (no identity, no sync, maximal flicker)."""

    name = "noise"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def perform(self, case: BenchCase) -> Iterator[np.ndarray]:
        rng = np.random.default_rng(self.seed)
        h, w = case.references.shape[1:3]
        for i in range(0, case.num_frames, CHUNK):
            yield rng.integers(0, 256, (min(CHUNK, case.num_frames - i), h, w, 3), np.uint8)


class FolderPerformer:
    """Frames made elsewhere: `ROOT/<case name>/*.png` (sorted), or `ROOT/<case name>.npy`.

    Pair it with `export_case` (which writes each case's audio, references and emotion track)
    to benchmark a system that cannot be called from Python.
    """

    def __init__(self, root: str | Path, name: str | None = None):
        self.root = Path(root)
        self.name = name or f"folder:{self.root.name}"

    def perform(self, case: BenchCase) -> Iterator[np.ndarray]:
        npy = self.root / f"{case.name}.npy"
        if npy.exists():
            frames = np.load(npy, mmap_mode="r")
            for i in range(0, len(frames), CHUNK):
                yield np.asarray(frames[i:i + CHUNK])
            return
        files = sorted((self.root / case.name).glob("*.png"))
        if not files:
            raise FileNotFoundError(f"no frames for case {case.name!r} in {self.root}")
        for i in range(0, len(files), CHUNK):
            yield np.stack([np.asarray(Image.open(f).convert("RGB")) for f in
                            files[i:i + CHUNK]])


def export_case(case: BenchCase, root: str | Path) -> Path:
    """Write a case's inputs (speak.wav, listen.wav, ref_k.png, emotion.npy) for outside tools."""
    import soundfile as sf

    out = Path(root) / case.name
    out.mkdir(parents=True, exist_ok=True)
    sf.write(out / "speak.wav", case.speak_audio, 16_000)
    sf.write(out / "listen.wav", case.listen_audio, 16_000)
    for k, ref in enumerate(case.references):
        Image.fromarray(ref).save(out / f"ref_{k}.png")
    np.save(out / "emotion.npy", case.emotion)
    return out


PERFORMERS = {"ground_truth": GroundTruthPerformer, "reference_still": ReferencePerformer,
              "noise": NoisePerformer}
