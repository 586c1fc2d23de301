"""Phoneme timing -> mouth shapes (visemes) with coarticulation.

Each espeak-ng phoneme maps to a viseme target (jaw open, lip width, lip rounding) and a
dominance. Targets are blended with the Cohen-Massaro dominance model: every phoneme pulls the
mouth toward its target with a weight that decays exponentially away from the phoneme's centre,
so lips anticipate and carry over neighbouring sounds (coarticulation) while strongly dominant
phonemes (bilabial closures, pauses) still reach their targets. The blend peaks at vowel centres,
which is what the bench's lip-sync ground truth and the "jaw-open peaks within 40 ms of vowel
events" check rely on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from npc_runtime.world.speech import PhonemeEvent

# espeak phoneme mnemonics add stress/length/variant marks; strip them to find the base sound.
_MARKS = ":;-~2#!'`,"
_VOWEL_START = set("aAeEiIoOuUyV@3&0QWY")
VISEME_PARAMS = ("jaw_open", "lip_width", "lip_round")


@dataclass(frozen=True)
class VisemeTarget:
    jaw: float
    width: float
    round: float
    dominance: float  # relative pull on the mouth (Cohen-Massaro alpha)


_VOWELS = {  # by first letter of the base mnemonic
    "a": VisemeTarget(0.95, 0.25, 0.0, 1.0), "A": VisemeTarget(0.9, 0.1, 0.1, 1.0),
    "&": VisemeTarget(0.85, 0.35, 0.0, 1.0), "V": VisemeTarget(0.75, 0.1, 0.0, 1.0),
    "Q": VisemeTarget(0.8, -0.2, 0.5, 1.0), "0": VisemeTarget(0.8, -0.2, 0.5, 1.0),
    "e": VisemeTarget(0.55, 0.5, 0.0, 1.0), "E": VisemeTarget(0.6, 0.45, 0.0, 1.0),
    "@": VisemeTarget(0.45, 0.1, 0.0, 0.8), "3": VisemeTarget(0.5, 0.0, 0.2, 0.9),
    "o": VisemeTarget(0.6, -0.5, 0.8, 1.0), "O": VisemeTarget(0.7, -0.4, 0.7, 1.0),
    "W": VisemeTarget(0.55, -0.3, 0.6, 1.0), "Y": VisemeTarget(0.45, -0.3, 0.6, 1.0),
    "i": VisemeTarget(0.3, 0.8, 0.0, 1.0), "I": VisemeTarget(0.35, 0.6, 0.0, 1.0),
    "u": VisemeTarget(0.3, -0.7, 1.0, 1.0), "U": VisemeTarget(0.35, -0.5, 0.8, 1.0),
    "y": VisemeTarget(0.3, -0.6, 0.9, 1.0),
}
_CONSONANTS = {
    **dict.fromkeys("pbm", VisemeTarget(0.0, 0.0, 0.0, 3.0)),  # lips must close
    **dict.fromkeys("fv", VisemeTarget(0.08, 0.1, 0.0, 2.0)),  # lower lip to teeth
    "w": VisemeTarget(0.15, -0.6, 0.9, 2.0),
    **dict.fromkeys(("S", "Z", "tS", "dZ"), VisemeTarget(0.15, -0.3, 0.6, 1.5)),
    **dict.fromkeys("szTDtdnlr", VisemeTarget(0.15, 0.2, 0.0, 0.8)),
    **dict.fromkeys("kgNhxjCJ", VisemeTarget(0.2, 0.0, 0.0, 0.3)),  # tongue-back: jaw follows
}
_PAUSE = VisemeTarget(0.0, 0.0, 0.0, 2.0)
_DEFAULT_CONSONANT = VisemeTarget(0.2, 0.0, 0.0, 0.6)


def is_pause(phoneme: str) -> bool:
    return phoneme.startswith("_") or phoneme.strip() == ""


def is_vowel(phoneme: str) -> bool:
    base = phoneme.strip(_MARKS)
    return bool(base) and base[0] in _VOWEL_START and not is_pause(phoneme)


def viseme_target(phoneme: str) -> VisemeTarget:
    if is_pause(phoneme):
        return _PAUSE
    base = phoneme.strip(_MARKS)
    if not base:
        return _PAUSE
    if base[0] in _VOWEL_START:
        return _VOWELS[base[0]]
    return _CONSONANTS.get(base, _CONSONANTS.get(base[0], _DEFAULT_CONSONANT))


@dataclass(frozen=True)
class CoarticulationConfig:
    # Dominance time constant = phoneme duration * this, clamped (s): long vowels pull longer.
    tau_scale: float = 0.45
    tau_min: float = 0.015
    tau_max: float = 0.07
    edge_dominance: float = 2.0  # closed mouth before the first and after the last phoneme
    edge_tau: float = 0.05
    closure_tau_min: float = 0.03  # a lip closure (p, b, m) is seen for at least ~60 ms


def viseme_curve(phonemes: Sequence[PhonemeEvent], times: np.ndarray,
                 config: CoarticulationConfig = CoarticulationConfig()) -> np.ndarray:
    """Evaluate (jaw_open, lip_width, lip_round) at `times` (s, utterance-relative) -> (N, 3)."""
    times = np.asarray(times, dtype=np.float64)
    if not phonemes:
        return np.zeros((len(times), 3), dtype=np.float32)
    targets = np.array([[*(t := viseme_target(p.phoneme)).__dict__.values()]
                        for p in phonemes], dtype=np.float64)  # (K, 4): jaw, width, round, dom
    starts = np.array([p.start_s for p in phonemes])
    ends = np.array([p.end_s for p in phonemes])
    centres, durs = (starts + ends) / 2.0, np.maximum(ends - starts, 1e-3)
    tau = np.clip(durs * config.tau_scale, config.tau_min, config.tau_max)
    pause = np.array([is_pause(p.phoneme) for p in phonemes])
    closure = np.array([viseme_target(p.phoneme).jaw == 0.0 for p in phonemes]) & ~pause
    tau = np.where(closure, np.maximum(tau, config.closure_tau_min), tau)
    # Closed-mouth anchors before the first and after the last phoneme.
    centres = np.concatenate([[starts[0] - config.edge_tau], centres, [ends[-1] + config.edge_tau]])
    tau = np.concatenate([[config.edge_tau], tau, [config.edge_tau]])
    edge = np.array([[0.0, 0.0, 0.0, config.edge_dominance]])
    targets = np.concatenate([edge, targets, edge])
    # Distance from a phoneme: from its centre, except pauses, which hold the mouth shut over
    # their whole span (a long pause is not a short one that fades at its middle).
    half = np.concatenate([[0.0], np.where(pause, durs / 2, 0.0), [0.0]])
    dist = np.maximum(np.abs(times[:, None] - centres[None, :]) - half[None, :], 0.0)
    dom = targets[:, 3][None, :] * np.exp(-dist / tau)
    out = (dom @ targets[:, :3]) / np.maximum(dom.sum(axis=1, keepdims=True), 1e-12)
    # Far from any phoneme the blend is a ratio of vanishing weights: fade to a shut mouth.
    fade = np.clip(1.0 - np.maximum(starts[0] - times, times - ends[-1]) / config.edge_tau, 0, 1)
    return (out * fade[:, None]).astype(np.float32)  # (N, 3)


def frame_visemes(phonemes: Sequence[PhonemeEvent], n_frames: int, fps: float = 25.0,
                  offset_s: float = 0.0, subsamples: int = 4) -> np.ndarray:
    """Per-frame visemes for an utterance starting at `offset_s` on the frame timeline.

    Frame i covers [i/fps, (i+1)/fps); its value is the mean over `subsamples` instants inside
    that interval (a camera's shutter), which keeps sub-frame timing in the frame values.
    """
    t = (np.arange(n_frames)[:, None] + (np.arange(subsamples) + 0.5) / subsamples) / fps
    v = viseme_curve(phonemes, (t - offset_s).ravel())
    return v.reshape(n_frames, subsamples, 3).mean(axis=1)


def vowel_centres(phonemes: Sequence[PhonemeEvent]) -> np.ndarray:
    return np.array([(p.start_s + p.end_s) / 2 for p in phonemes if is_vowel(p.phoneme)])
