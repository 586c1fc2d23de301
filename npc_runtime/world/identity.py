"""Character identities of the synthetic world: what a face looks like, sampled from a seed.

An identity is everything about a character that does not change while it performs: face shape,
skin, hair, eyes, brows, nose, mouth size, accessories, clothing and background. It is drawn from
one integer seed so that a dataset row, a bench case or a test can name a character by number.

Seed ranges (never overlapping, checked by tests):
- TRAIN_IDENTITY_SEEDS: [0, 1_000_000) — every identity a model may be trained on.
- EVAL_IDENTITY_SEEDS: [1_000_000, 1_001_000) — the evaluation suite's identities.
- PROBE_*: probes are trained on TRAIN seeds and scored on EVAL seeds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

TRAIN_IDENTITY_SEEDS = range(0, 1_000_000)
EVAL_IDENTITY_SEEDS = range(1_000_000, 1_001_000)

HAIR_STYLES = ("bald", "short", "long", "bangs", "tuft")

# Skin tones from light to dark; a sample interpolates between neighbours (sRGB 0..1).
_SKIN_TONES = np.array([
    [0.96, 0.82, 0.72], [0.90, 0.72, 0.58], [0.78, 0.58, 0.42],
    [0.62, 0.43, 0.30], [0.45, 0.30, 0.20], [0.32, 0.21, 0.15],
], dtype=np.float32)
_HAIR_COLOURS = np.array([
    [0.08, 0.06, 0.05], [0.30, 0.18, 0.10], [0.55, 0.35, 0.18], [0.85, 0.70, 0.40],
    [0.65, 0.20, 0.08], [0.75, 0.75, 0.78], [0.20, 0.30, 0.70], [0.60, 0.20, 0.55],
], dtype=np.float32)
_EYE_COLOURS = np.array([
    [0.25, 0.15, 0.08], [0.10, 0.35, 0.65], [0.20, 0.50, 0.25], [0.45, 0.40, 0.30],
    [0.35, 0.35, 0.40],
], dtype=np.float32)


@dataclass(frozen=True)
class Identity:
    """A character's fixed appearance. Colours are sRGB in [0, 1]; sizes are relative (≈1)."""

    seed: int
    face_width: float
    face_height: float
    jaw_taper: float
    skin: tuple[float, float, float]
    hair_style: int
    hair_colour: tuple[float, float, float]
    eye_colour: tuple[float, float, float]
    eye_size: float
    eye_spacing: float
    brow_thickness: float
    nose_size: float
    mouth_size: float
    lip_colour: tuple[float, float, float]
    glasses: bool
    beard: bool
    hat: bool
    hat_colour: tuple[float, float, float]
    clothing_colour: tuple[float, float, float]
    bg_top: tuple[float, float, float]
    bg_bottom: tuple[float, float, float]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Identity":
        kw = {}
        for f in fields(cls):
            v = d[f.name]
            is_seq = isinstance(v, (list, tuple, np.ndarray))
            kw[f.name] = tuple(float(x) for x in v) if is_seq else v
        kw["hair_style"], kw["seed"] = int(kw["hair_style"]), int(kw["seed"])
        for b in ("glasses", "beard", "hat"):
            kw[b] = bool(kw[b])
        return cls(**kw)


def _rgb(a: np.ndarray) -> tuple[float, float, float]:
    return tuple(float(x) for x in np.clip(a, 0.0, 1.0))  # type: ignore[return-value]


def sample_identity(seed: int) -> Identity:
    """Draw an identity from its seed (deterministic across machines: numpy PCG64)."""
    rng = np.random.default_rng([seed, 0x1D])
    tone = rng.uniform(0, len(_SKIN_TONES) - 1)
    lo = int(np.floor(tone))
    skin = _SKIN_TONES[lo] + (tone - lo) * (_SKIN_TONES[min(lo + 1, len(_SKIN_TONES) - 1)]
                                            - _SKIN_TONES[lo])
    skin = skin * rng.uniform(0.95, 1.05, 3)  # a little hue variation
    hair = _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] * rng.uniform(0.85, 1.15, 3)
    eye = _EYE_COLOURS[rng.integers(len(_EYE_COLOURS))] * rng.uniform(0.85, 1.15, 3)
    lip = skin * np.array([0.85, 0.55, 0.55]) + rng.uniform(-0.04, 0.04, 3)
    # Backgrounds are muted so the face always stands out; top and bottom differ for a gradient.
    bg = rng.uniform(0.15, 0.85, 3)
    return Identity(
        seed=int(seed),
        face_width=float(rng.uniform(0.85, 1.12)),
        face_height=float(rng.uniform(0.9, 1.08)),
        jaw_taper=float(rng.uniform(0.0, 1.0)),
        skin=_rgb(skin),
        hair_style=int(rng.integers(len(HAIR_STYLES))),
        hair_colour=_rgb(hair),
        eye_colour=_rgb(eye),
        eye_size=float(rng.uniform(0.85, 1.2)),
        eye_spacing=float(rng.uniform(0.85, 1.15)),
        brow_thickness=float(rng.uniform(0.7, 1.5)),
        nose_size=float(rng.uniform(0.8, 1.3)),
        mouth_size=float(rng.uniform(0.85, 1.2)),
        lip_colour=_rgb(lip),
        glasses=bool(rng.random() < 0.25),
        beard=bool(rng.random() < 0.25),
        hat=bool(rng.random() < 0.2),
        hat_colour=_rgb(rng.uniform(0.05, 0.9, 3)),
        clothing_colour=_rgb(rng.uniform(0.05, 0.95, 3)),
        bg_top=_rgb(bg),
        bg_bottom=_rgb(bg * rng.uniform(0.6, 1.0, 3)),
    )


# The identity vector: what the evaluator probes read back from a frame. The hat colour of a
# character without a hat is zeroed so that it is not an unreadable target.
IDENTITY_FEATURES: tuple[str, ...] = (
    "face_width", "face_height", "jaw_taper",
    "skin_r", "skin_g", "skin_b", "hair_r", "hair_g", "hair_b",
    *(f"hair_{s}" for s in HAIR_STYLES),
    "eye_r", "eye_g", "eye_b", "eye_size", "eye_spacing", "brow_thickness", "nose_size",
    "mouth_size", "glasses", "beard", "hat", "hat_r", "hat_g", "hat_b",
    "cloth_r", "cloth_g", "cloth_b", "bgt_r", "bgt_g", "bgt_b", "bgb_r", "bgb_g", "bgb_b",
)


def identity_vector(ident: Identity) -> np.ndarray:
    """The identity as a float32 vector in IDENTITY_FEATURES order."""
    style = [1.0 if i == ident.hair_style else 0.0 for i in range(len(HAIR_STYLES))]
    hair = ident.hair_colour  # always visible: brows share the hair colour
    hat = ident.hat_colour if ident.hat else (0.0, 0.0, 0.0)
    v = [ident.face_width, ident.face_height, ident.jaw_taper, *ident.skin, *hair, *style,
         *ident.eye_colour, ident.eye_size, ident.eye_spacing, ident.brow_thickness,
         ident.nose_size, ident.mouth_size, float(ident.glasses), float(ident.beard),
         float(ident.hat), *hat, *ident.clothing_colour, *ident.bg_top, *ident.bg_bottom]
    out = np.asarray(v, dtype=np.float32)
    assert out.shape == (len(IDENTITY_FEATURES),)
    return out
