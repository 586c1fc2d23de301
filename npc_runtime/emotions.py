"""Emotion vocabulary: tags x intensity -> the weight vector the model conditions on.

A designer speaks in tags ("happy" at 0.7) or named blends ("smug" = happy 0.6 + angry 0.2); the
model sees one weight per vocabulary tag. Non-neutral weights are the given intensities; the
neutral weight takes whatever is left (1 - sum, floored at 0) so that "no emotion" and "neutral"
are the same input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Mapping

import numpy as np
import yaml

NEUTRAL = "neutral"


class UnknownEmotionError(ValueError):
    """An emotion tag or preset that is not in the vocabulary; the message names the known ones."""


@dataclass(frozen=True)
class EmotionVocabulary:
    tags: tuple[str, ...]
    presets: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    version: int = 1

    def __post_init__(self) -> None:
        if not self.tags or self.tags[0] != NEUTRAL:
            raise ValueError(f"the vocabulary must start with {NEUTRAL!r}, got {self.tags!r}")
        if len(set(self.tags)) != len(self.tags):
            raise ValueError(f"duplicate emotion tags in {self.tags!r}")
        for name, blend in self.presets.items():
            self._check_blend(blend, what=f"preset {name!r}")

    @property
    def size(self) -> int:
        return len(self.tags)

    def index(self, tag: str) -> int:
        try:
            return self.tags.index(tag)
        except ValueError:
            raise UnknownEmotionError(
                f"unknown emotion tag {tag!r}; known tags: {', '.join(self.tags)}"
            ) from None

    def _check_blend(self, blend: Mapping[str, float], what: str = "blend") -> None:
        for tag, weight in blend.items():
            self.index(tag)
            if not (0.0 <= float(weight) <= 1.0) or not np.isfinite(float(weight)):
                raise ValueError(f"{what}: intensity of {tag!r} must be in [0, 1], got {weight!r}")

    def resolve(self, name: str, extra_presets: Mapping[str, Mapping[str, float]] | None = None
                ) -> dict[str, float]:
        """A tag or preset name -> its blend at full intensity (NPC presets shadow built-ins)."""
        presets = {**self.presets, **(extra_presets or {})}
        if name in presets:
            return dict(presets[name])
        if name in self.tags:
            return {name: 1.0}
        known = ", ".join(self.tags)
        named = ", ".join(sorted(presets)) or "none"
        raise UnknownEmotionError(
            f"unknown emotion {name!r}; known tags: {known}; known presets: {named}"
        )

    def vector(self, blend: Mapping[str, float], intensity: float = 1.0) -> np.ndarray:
        """Blend {tag: weight} scaled by intensity -> float32 weights over the vocabulary."""
        if not (0.0 <= intensity <= 1.0):
            raise ValueError(f"emotion intensity must be in [0, 1], got {intensity!r}")
        self._check_blend(blend)
        out = np.zeros(self.size, dtype=np.float32)
        for tag, weight in blend.items():
            if tag != NEUTRAL:
                out[self.index(tag)] += float(weight) * intensity
        total = float(out.sum())
        if total > 1.0:  # a blend may exceed 1 in sum; keep proportions, cap the total
            out /= total
        out[0] = max(0.0, 1.0 - float(out.sum()))
        return out

    def tag_vector(self, tag: str, intensity: float = 1.0,
                   extra_presets: Mapping[str, Mapping[str, float]] | None = None) -> np.ndarray:
        return self.vector(self.resolve(tag, extra_presets), intensity)

    def neutral(self) -> np.ndarray:
        return self.vector({})

    def check_vector(self, weights: np.ndarray) -> np.ndarray:
        """Validate a raw weight vector sent by a client."""
        w = np.asarray(weights, dtype=np.float32)
        if w.shape != (self.size,):
            raise ValueError(f"emotion weights must have {self.size} entries "
                             f"({', '.join(self.tags)}), got shape {w.shape}")
        if not np.all(np.isfinite(w)) or w.min() < 0.0 or w.max() > 1.0:
            raise ValueError("emotion weights must be finite and in [0, 1]")
        return w


def load_vocabulary(path: str | Path | None = None) -> EmotionVocabulary:
    """Load a vocabulary YAML (default: the one shipped with the package)."""
    if path is None:
        text = resources.files("npc_runtime").joinpath("emotions.yaml").read_text()
    else:
        text = Path(path).read_text()
    raw = yaml.safe_load(text)
    return EmotionVocabulary(
        tags=tuple(raw["tags"]),
        presets={k: dict(v) for k, v in (raw.get("presets") or {}).items()},
        version=int(raw.get("version", 1)),
    )


DEFAULT_VOCABULARY = load_vocabulary()
