"""The procedural character renderer: identity + per-frame performance -> RGB frames.

Every part of the face is a signed distance field (ellipses, capsules, boxes) evaluated on the
pixel grid for a whole batch of frames at once in torch, and composited back to front with
coverage = clamp(0.5 - sdf_in_pixels, 0, 1): one-pixel analytic anti-aliasing at any resolution.
Head pose is 2.5-D: roll rotates the head about the neck, yaw and pitch shift each feature in
proportion to its depth (nose most, ears opposite), so pose is readable from a single frame.

Speed comes from batching and from evaluating the small features (eyes, brows, mouth) only in the
window of the canvas they can ever reach, whatever the pose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from npc_runtime.world.identity import Identity
from npc_runtime.world.performance import NUM_PERF, P

# Pose ranges: normalised performance parameter 1.0 -> this much motion (canvas units / rad).
ROLL_RAD = 0.2
YAW_SHIFT = 0.13
PITCH_SHIFT = 0.09
SWAY_SHIFT = 0.06
HEAD_CENTRE_Y = -0.08
NECK_PIVOT_Y = 0.75
# Canvas windows (x0, x1, y0, y1) that contain a feature at every pose in range.
EYE_WINDOW = (-0.8, 0.8, -0.85, 0.3)
MOUTH_WINDOW = (-0.78, 0.78, -0.45, 0.9)


@dataclass(frozen=True)
class RenderConfig:
    size: int = 128
    batch: int = 64  # frames per vectorised pass (bounds memory: ~batch * size^2 * 60 B)
    # Fuse the per-pixel ops into one loop with torch.compile (inductor; needs a C++ compiler):
    # ~4-5x faster, after a one-off warm-up of about a minute per (size, batch) on this CPU.
    compile: bool = False


def _ell(x: torch.Tensor, y: torch.Tensor, rx, ry) -> torch.Tensor:
    """Approximate signed distance to an axis-aligned ellipse (exact on the axes).

    The bounding box bounds it: for very flat ellipses (a closed mouth or eye) the approximation
    alone is ~0 along the whole major axis line and would draw a line across the face.
    """
    k0 = torch.sqrt((x / rx) ** 2 + (y / ry) ** 2)
    k1 = torch.sqrt((x / (rx * rx)) ** 2 + (y / (ry * ry)) ** 2)
    return torch.maximum(k0 * (k0 - 1.0) / (k1 + 1e-6), _box(x, y, rx, ry))


def _box(x, y, hw, hh) -> torch.Tensor:
    return torch.maximum(x.abs() - hw, y.abs() - hh)


def _capsule(x, y, ax, ay, bx, by, r) -> torch.Tensor:
    px, py, dx, dy = x - ax, y - ay, bx - ax, by - ay
    h = ((px * dx + py * dy) / (dx * dx + dy * dy + 1e-9)).clamp(0.0, 1.0)
    return torch.sqrt((px - h * dx) ** 2 + (py - h * dy) ** 2) - r


class _IdentityTensors:
    """Identity fields as broadcastable tensors: scalars (B,1,1), colours (B,1,1,3)."""

    def __init__(self, identities: Sequence[Identity]):
        def col(name):
            return torch.tensor([getattr(i, name) for i in identities],
                                dtype=torch.float32).view(-1, 1, 1, 3)

        def num(name):
            return torch.tensor([float(getattr(i, name)) for i in identities],
                                dtype=torch.float32).view(-1, 1, 1)

        for name in ("skin", "hair_colour", "eye_colour", "lip_colour", "hat_colour",
                     "clothing_colour", "bg_top", "bg_bottom"):
            setattr(self, name, col(name))
        for name in ("face_width", "face_height", "jaw_taper", "eye_size", "eye_spacing",
                     "brow_thickness", "nose_size", "mouth_size", "glasses", "beard", "hat"):
            setattr(self, name, num(name))
        style = torch.tensor([i.hair_style for i in identities]).view(-1, 1, 1)
        self.has_hair = (style != 0).float()
        self.long_hair = (style == 2).float()
        self.tuft = (style == 4).float()
        # Hairline height as a fraction of the head's half-height, per style. Always above the
        # highest brow position: brows share the hair colour and would vanish on a fringe.
        self.hairline = torch.tensor([-0.6, -0.62, -0.58, -0.52, -0.7],
                                     dtype=torch.float32)[style]


class Renderer:
    """Renders batches of frames at a fixed square size."""

    def __init__(self, config: RenderConfig = RenderConfig()):
        self.config = config
        s = config.size
        c = (torch.arange(s, dtype=torch.float32) + 0.5) / s * 2.0 - 1.0
        self.Y, self.X = torch.meshgrid(c, c, indexing="ij")  # (S, S) canvas coords
        self.px = s / 2.0  # pixels per canvas unit
        # Pixel slices of the feature windows, fixed per size (outside any compiled code).
        self._eye_window = self._slices(EYE_WINDOW)
        self._mouth_window = self._slices(MOUTH_WINDOW)
        self._step = (torch.compile(self._render_batch, dynamic=False) if config.compile
                      else self._render_batch)

    def _slices(self, window):
        s = self.config.size
        x0, x1, y0, y1 = window
        to_px = lambda v: int(np.clip(round((v + 1.0) / 2.0 * s), 0, s))  # noqa: E731
        return slice(to_px(y0), to_px(y1)), slice(to_px(x0), to_px(x1))

    def cov(self, sdf: torch.Tensor) -> torch.Tensor:
        return (0.5 - sdf * self.px).clamp_(0.0, 1.0)

    @staticmethod
    def _blend(canvas: torch.Tensor, alpha: torch.Tensor, colour: torch.Tensor) -> None:
        canvas.add_(alpha.unsqueeze(-1) * (colour - canvas))

    def render(self, identity: Identity | Sequence[Identity], perf: np.ndarray) -> np.ndarray:
        """(N, NUM_PERF) performance (+ one identity, or one per frame) -> (N, S, S, 3) uint8."""
        perf = np.asarray(perf, dtype=np.float32).reshape(-1, NUM_PERF)
        idents = [identity] if isinstance(identity, Identity) else list(identity)
        if len(idents) not in (1, len(perf)):
            raise ValueError(f"{len(idents)} identities for {len(perf)} frames")
        s, b = self.config.size, self.config.batch
        out = np.empty((len(perf), s, s, 3), dtype=np.uint8)
        shared = _IdentityTensors(idents) if len(idents) == 1 else None
        for i in range(0, len(perf), b):
            chunk = perf[i:i + b]
            n = len(chunk)
            ident = shared or _IdentityTensors(idents[i:i + b])
            if self.config.compile and n < b:  # pad: a compiled graph has one fixed shape
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], b - n, 0)])
                if shared is None:
                    ident = _IdentityTensors(idents[i:i + b] + [idents[-1]] * (b - n))
            with torch.no_grad():
                frames = self._step(ident, torch.from_numpy(chunk))[:n]
            out[i:i + n] = frames.mul(255.0).round_().clamp_(0, 255).to(torch.uint8).numpy()
        return out

    def _render_batch(self, idt: _IdentityTensors, perf: torch.Tensor) -> torch.Tensor:
        n = perf.shape[0]
        p = {name: perf[:, i].view(n, 1, 1) for name, i in P.items()}
        X, Y = self.X, self.Y
        # Background: vertical gradient with a soft vignette.
        t = ((Y + 1.0) / 2.0).unsqueeze(-1)
        vignette = (1.0 - 0.18 * (X ** 2 + Y ** 2)).unsqueeze(-1)
        canvas = ((idt.bg_top * (1 - t) + idt.bg_bottom * t) * vignette).expand(n, -1, -1, -1)
        canvas = canvas.contiguous()
        # Head-local coordinates at depth 0: undo sway and roll about the neck pivot.
        roll = p["head_roll"] * ROLL_RAD
        cos, sin = torch.cos(roll), torch.sin(roll)
        xs = X - p["sway"] * SWAY_SHIFT
        yp = Y - NECK_PIVOT_Y
        xl = cos * xs + sin * yp
        yl = -sin * xs + cos * yp + (NECK_PIVOT_Y - HEAD_CENTRE_Y)
        shift = (p["head_yaw"] * YAW_SHIFT, p["head_pitch"] * PITCH_SHIFT)

        def at(depth: float, window=None):
            """Feature coordinates at `depth` (and the canvas view) inside `window` slices."""
            if window is None:
                return xl - shift[0] * depth, yl - shift[1] * depth, canvas
            sy, sx = window
            return (xl[:, sy, sx] - shift[0] * depth, yl[:, sy, sx] - shift[1] * depth,
                    canvas[:, sy, sx])

        self._body(idt, p, canvas, xs)
        self._head(idt, p, at)
        self._eyes(idt, p, at)
        self._mouth(idt, p, at)
        self._accessories(idt, p, at)
        return canvas.clamp_(0.0, 1.0)

    def _body(self, idt, p, canvas, xs) -> None:
        # The torso sways twice as far as the head is carried: the eye reads sway from it.
        x = xs - p["sway"] * SWAY_SHIFT
        body = _ell(x, self.Y - 1.3, 0.95, 0.62)
        shade = (1.0 - 0.25 * (x.abs() / 0.95).clamp(0, 1) ** 2).unsqueeze(-1)
        self._blend(canvas, self.cov(body), idt.clothing_colour * shade)

    def _head(self, idt, p, at) -> None:
        fw, fh = idt.face_width, idt.face_height
        rx, ry = 0.5 * fw, 0.64 * fh
        x, y, cv = at(-0.4)  # hair behind the head and ears sit behind the face plane
        hair_back = _ell(x, y - 0.14, rx * 1.25, ry * 1.12)
        self._blend(cv, self.cov(hair_back) * idt.long_hair, idt.hair_colour * 0.85)
        ear = _ell(x.abs() - rx * 0.97, y - 0.02, 0.075, 0.12)
        self._blend(cv, self.cov(ear), idt.skin * 0.88)
        x, y, cv = at(0.0)
        neck = _box(x, y - 0.75, 0.17 * fw, 0.45)
        self._blend(cv, self.cov(neck), idt.skin * 0.78)
        x, y, cv = at(0.35)
        # The jaw drops with the mouth and tapers toward the chin.
        yj = torch.where(y > 0, y / (1.0 + 0.1 * p["jaw_open"]), y)
        taper = 1.0 - 0.3 * idt.jaw_taper * (yj / ry).clamp(0.0, 1.0) ** 2
        xj = x / taper
        head = _ell(xj, yj, rx, ry)
        r2 = ((xj / rx) ** 2 + (yj / ry) ** 2).clamp(0.0, 1.0)
        self._blend(cv, self.cov(head), idt.skin * (1.06 - 0.22 * r2).unsqueeze(-1))
        beard = torch.maximum(head, 0.12 - yj)
        self._blend(cv, self.cov(beard) * idt.beard, idt.hair_colour)
        x, y, cv = at(0.3)
        wave = 0.015 * torch.cos(x * 14.0)
        cap = torch.maximum(_ell(x, y + 0.01, rx * 1.08, ry * 1.08), y - idt.hairline * ry - wave)
        self._blend(cv, self.cov(cap) * idt.has_hair, idt.hair_colour)
        tuft = _ell(x, y + ry * 1.02, 0.2, 0.2)
        self._blend(cv, self.cov(tuft) * idt.tuft, idt.hair_colour * 1.1)

    def _eyes(self, idt, p, at) -> None:
        es, esz = idt.eye_spacing * 0.2, idt.eye_size
        x, y, cv = at(1.0, self._eye_window)
        side = torch.sign(x)
        xe, ye = x.abs() - es, y + 0.1  # both eyes at once, mirrored about the nose line
        opening = ((1.0 + 0.6 * p["eye_wide"]) * (1.0 - p["blink"])).clamp(min=0.0)
        rx, ry = 0.095 * esz, (0.055 * esz * opening).clamp(min=1e-3)
        white = _ell(xe, ye, rx, ry)
        a_white = self.cov(white)
        self._blend(cv, a_white, torch.tensor([0.95, 0.95, 0.93]))
        gx, gy = p["gaze_x"] * 0.045 * esz, p["gaze_y"] * 0.025 * esz
        iris = torch.sqrt((xe - side * gx) ** 2 + (ye - gy) ** 2)
        self._blend(cv, self.cov(iris - 0.042 * esz) * a_white, idt.eye_colour)
        self._blend(cv, self.cov(iris - 0.018 * esz) * a_white, torch.tensor([0.03, 0.03, 0.03]))
        lash = _ell(xe, ye, rx, ry.clamp(min=0.006)).abs() - 0.006
        self._blend(cv, self.cov(lash) * 0.9, idt.skin * 0.3)
        # Brows: capsules whose inner ends drop and pull in when furrowed.
        raise_, furrow = p["brow_raise"] * 0.055, p["brow_furrow"]
        ax, ay = es - 0.085 + 0.03 * furrow, -0.215 - raise_ + 0.07 * furrow
        bx, by = es + 0.105, -0.225 - raise_ - 0.01 * furrow
        brow = _capsule(x.abs(), y, ax, ay, bx, by, 0.018 * idt.brow_thickness)
        self._blend(cv, self.cov(brow), idt.hair_colour * 0.8)
        # Furrowing creases the skin between the brows (AU4's vertical lines).
        crease = _capsule(x.abs(), y, 0.03, -0.2, 0.035, -0.14, 0.006)
        self._blend(cv, self.cov(crease) * 0.6 * furrow, idt.skin * 0.55)
        x, y, cv = at(1.15, self._eye_window)
        ring = (torch.sqrt((x.abs() - es) ** 2 + (y + 0.1) ** 2) - 0.125 * esz).abs() - 0.011
        bridge = _box(x, y + 0.1, (es - 0.12 * esz).clamp(min=0.0), 0.01)
        frame = torch.minimum(ring, bridge)
        self._blend(cv, self.cov(frame) * idt.glasses, torch.tensor([0.1, 0.1, 0.12]))

    def _mouth(self, idt, p, at) -> None:
        x, y, cv = at(1.4, self._mouth_window)
        ns = idt.nose_size
        nose = _ell(x, y - 0.06, 0.045 * ns, 0.075 * ns)
        self._blend(cv, self.cov(nose) * 0.55, idt.skin * 0.75)
        nostril = _ell(x.abs() - 0.03 * ns, y - 0.125, 0.018 * ns, 0.01)
        self._blend(cv, self.cov(nostril) * 0.8, idt.skin * 0.45)
        x, y, cv = at(1.0, self._mouth_window)
        jaw, width, rnd = p["jaw_open"], p["lip_width"], p["lip_round"]
        w = 0.15 * idt.mouth_size * (1.0 + 0.3 * width - 0.35 * rnd + 0.12 * p["smile"])
        h = 0.13 * jaw * (1.0 + 0.35 * rnd)
        u = (x / w).clamp(-1.2, 1.2)
        dy = y - 0.3 * idt.face_height + 0.055 * p["smile"] * u * u  # corners up when smiling
        # The sneer lifts the upper lip on the character's left side only.
        up = h + 0.05 * p["sneer"] * torch.sigmoid(x / (0.3 * w))
        hy = torch.where(dy < 0, up, h).clamp(min=1e-3)
        # Rounded lips protrude: they look fuller, which tells rounding apart from narrowing.
        lips = _ell(x, dy, w + 0.02, hy + 0.027 * (1.0 + 0.8 * rnd))
        self._blend(cv, self.cov(lips), idt.lip_colour)
        seam = torch.maximum(dy.abs() - 0.004, x.abs() - w)
        self._blend(cv, self.cov(seam), idt.lip_colour * 0.4)
        inner = _ell(x, dy, w, hy)
        a_inner = self.cov(inner)
        self._blend(cv, a_inner, torch.tensor([0.22, 0.05, 0.07]))
        teeth = dy + hy - 0.025
        self._blend(cv, a_inner * self.cov(teeth), torch.tensor([0.93, 0.92, 0.86]))

    def _accessories(self, idt, p, at) -> None:
        x, y, cv = at(0.3)
        ry = 0.64 * idt.face_height
        crown = _box(x, y + ry * 0.95 + 0.1, 0.42 * idt.face_width, 0.2)
        brim = _ell(x, y + ry * 0.72, 0.62 * idt.face_width, 0.07)
        self._blend(cv, self.cov(torch.minimum(crown, brim)) * idt.hat, idt.hat_colour)


_RENDERERS: dict[tuple[int, bool], Renderer] = {}


def get_renderer(size: int = 128, compile: bool = False) -> Renderer:
    """A shared renderer per (size, compile); batches shrink with size to bound memory."""
    key = (size, compile)
    if key not in _RENDERERS:
        batch = max(8, 64 * 128 * 128 // (size * size))
        _RENDERERS[key] = Renderer(RenderConfig(size=size, batch=batch, compile=compile))
    return _RENDERERS[key]


def render_frames(identity: Identity | Sequence[Identity], perf: np.ndarray,
                  size: int = 128, compile: bool = False) -> np.ndarray:
    """Render (N, NUM_PERF) performance parameters to (N, size, size, 3) uint8 frames."""
    return get_renderer(size, compile).render(identity, perf)
