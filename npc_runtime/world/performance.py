"""Per-frame performance parameters: the face's moving parts, and how emotions set them.

A frame's performance is one float32 vector in PERF_PARAMS order. Every parameter is normalised
(bounds in PERF_BOUNDS); the renderer maps them to geometry. The same vector is the ground truth
that the evaluator probes learn to read back, so its names are the bench's vocabulary too.

Emotions act through EXPRESSION_BASIS: a weight vector over the emotion vocabulary times this
matrix gives the expression offsets (brows, eyes, mouth corners, sneer, head pitch). Neutral is
the zero row, so intensity scales an emotion linearly toward a neutral face.
"""

from __future__ import annotations

import numpy as np

from npc_runtime.emotions import DEFAULT_VOCABULARY, EmotionVocabulary

PERF_PARAMS: tuple[str, ...] = (
    "jaw_open",     # 0 closed .. 1 wide open
    "lip_width",    # -1 narrow .. 1 spread (viseme)
    "lip_round",    # 0 .. 1 rounded/protruded (viseme)
    "blink",        # 0 open .. 1 closed
    "eye_wide",     # -1 squint .. 1 wide (emotion)
    "gaze_x",       # -1 left .. 1 right
    "gaze_y",       # -1 up .. 1 down
    "brow_raise",   # -1 lowered .. 1 raised
    "brow_furrow",  # 0 .. 1 inner ends pulled down and together
    "smile",        # -1 frown .. 1 smile (mouth corners)
    "sneer",        # 0 .. 1 upper lip raised on one side (disgust)
    "head_pitch",   # -1 up .. 1 down (nods are positive pulses)
    "head_yaw",     # -1 left .. 1 right
    "head_roll",    # -1 .. 1
    "sway",         # -1 .. 1 body sway left/right
)
P = {name: i for i, name in enumerate(PERF_PARAMS)}
NUM_PERF = len(PERF_PARAMS)

PERF_BOUNDS = np.array([
    (0, 1), (-1, 1), (0, 1), (0, 1), (-1, 1), (-1, 1), (-1, 1), (-1, 1), (0, 1), (-1, 1),
    (0, 1), (-1, 1), (-1, 1), (-1, 1), (-1, 1)], dtype=np.float32)

# Expression parameters that emotions drive (the emotion probe's targets).
EXPRESSION_PARAMS: tuple[str, ...] = (
    "eye_wide", "brow_raise", "brow_furrow", "smile", "sneer", "head_pitch")

# Rows follow the vocabulary order (neutral, happy, sad, angry, surprised, fearful, disgusted);
# columns follow EXPRESSION_PARAMS. Chosen from FACS prototypes (AU6+12 happy, AU1+4+15 sad,
# AU4+5+23 angry, AU1+2+5 surprised, AU1+2+4+5+20 fearful, AU9+10 disgusted) so that every
# emotion has its own direction in expression space.
_EXPRESSION_TABLE: dict[str, tuple[float, ...]] = {
    "neutral":   (0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    "happy":     (-0.35, 0.25, 0.0, 0.9, 0.0, -0.1),
    "sad":       (-0.25, 0.35, 0.7, -0.75, 0.0, 0.3),
    "angry":     (0.3, -0.8, 0.9, -0.45, 0.2, 0.15),
    "surprised": (0.9, 0.9, 0.0, 0.0, 0.0, -0.2),
    "fearful":   (0.75, 0.6, 0.6, -0.35, 0.0, 0.1),
    "disgusted": (-0.45, -0.3, 0.5, -0.35, 0.9, 0.0),
}


def expression_basis(vocab: EmotionVocabulary = DEFAULT_VOCABULARY) -> np.ndarray:
    """(vocab.size, NUM_PERF) matrix: emotion weights @ basis = performance offsets."""
    basis = np.zeros((vocab.size, NUM_PERF), dtype=np.float32)
    for row, tag in enumerate(vocab.tags):
        values = _EXPRESSION_TABLE.get(tag)
        if values is None:
            raise ValueError(f"no expression prototype for emotion {tag!r}")
        for name, v in zip(EXPRESSION_PARAMS, values):
            basis[row, P[name]] = v
    return basis


EXPRESSION_BASIS = expression_basis()
EXPRESSION_INDEX = np.array([P[n] for n in EXPRESSION_PARAMS])


def emotion_expression(weights: np.ndarray) -> np.ndarray:
    """(T, vocab) emotion weights -> (T, len(EXPRESSION_PARAMS)) expected expression offsets."""
    return (np.asarray(weights, np.float32) @ EXPRESSION_BASIS)[..., EXPRESSION_INDEX]


def clip_performance(perf: np.ndarray) -> np.ndarray:
    return np.clip(perf, PERF_BOUNDS[:, 0], PERF_BOUNDS[:, 1]).astype(np.float32)


def neutral_performance(n: int = 1) -> np.ndarray:
    return np.zeros((n, NUM_PERF), dtype=np.float32)


def random_performance(rng: np.random.Generator, n: int) -> np.ndarray:
    """Independent uniform draws over the bounds (probe training: no correlations to exploit).

    Blinks are bimodal (mostly open, sometimes closing) like real footage, and a quarter of the
    frames keep the mouth shut so the closed-mouth end is dense.
    """
    lo, hi = PERF_BOUNDS[:, 0], PERF_BOUNDS[:, 1]
    perf = rng.uniform(lo, hi, size=(n, NUM_PERF)).astype(np.float32)
    perf[:, P["blink"]] = np.where(rng.random(n) < 0.6, 0.0, rng.uniform(0, 1, n))
    perf[:, P["jaw_open"]] *= rng.random(n) > 0.25
    perf[:, P["sneer"]] *= rng.random(n) > 0.5
    return perf
