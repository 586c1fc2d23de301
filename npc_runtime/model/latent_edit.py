"""A latent editor: a small U-Net that changes one part of a latent frame to match a condition.

Interface: `LatentEditor(latent_channels, cond_dim, channels, hidden, blocks, window,
extra_channels=0)`; `edit(z, cond, extra=None) -> z'`, z (N, c, h, w) scaled VAE latents of
whole frames, cond (N, cond_dim), extra (N, extra_channels, h, w) a second latent whose window
the editor sees beside z's (the expression editor's reference) where extra_channels > 0;
z' = z + a residual that is zero at initialisation (an untrained editor changes nothing) and
zero outside `window` (rows, cols slices of the latent): the editor sees and changes only that
crop. `gated(z, cond, gate)` applies it to chunks (B, F, ...) as much as a per-frame gate says,
running only the frames whose gate is above zero.

Editors built on it: the mouth editor (model/mouth_edit.py, conditioned on the mouth track's
mouth and the emotion, the lower-middle quarter of the frame), the expression editor
(model/expression_edit.py), and two `ScalarEditor`s, conditioned on one number a frame: the nod
editor (model/nod.py, a head-pitch offset, the head's window) and the blink editor
(model/blink.py, an eyelid closure, the eyes' window).

Shape: the window (16x16 for the mouth) -> half resolution and back, FiLM-conditioned at every
block, so the condition steers every feature map and the receptive field at half resolution
(~26 latent pixels) covers the window: where the mouth or the face is in it depends on pose.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _FiLMBlock(nn.Module):
    """Residual conv block whose features are scaled and shifted by the condition embedding."""

    def __init__(self, ch: int, cond: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(8, ch)
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.norm2 = nn.GroupNorm(8, ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)
        self.film = nn.Linear(cond, 2 * ch)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(c)[:, :, None, None].chunk(2, dim=1)
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.norm2(h) * (1 + scale) + shift
        return x + self.conv2(F.silu(h))


class LatentEditor(nn.Module):
    def __init__(self, latent_channels: int, cond_dim: int, channels: int, hidden: int,
                 blocks: int, window: tuple[slice, slice], extra_channels: int = 0) -> None:
        super().__init__()
        self.cond_dim, self.extra_channels = cond_dim, extra_channels
        self.cond = nn.Sequential(nn.Linear(cond_dim, hidden), nn.SiLU(),
                                  nn.Linear(hidden, hidden))
        self.stem = nn.Conv2d(latent_channels + extra_channels, channels, 3, padding=1)
        self.down = nn.Conv2d(channels, hidden, 3, stride=2, padding=1)
        self.blocks = nn.ModuleList(_FiLMBlock(hidden, hidden) for _ in range(blocks))
        self.up = nn.Conv2d(hidden, channels, 3, padding=1)
        self.merge = _FiLMBlock(channels, hidden)
        self.out = nn.Conv2d(channels, latent_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)     # untrained: the identity map
        nn.init.zeros_(self.out.bias)
        self.window = window

    def edit(self, z: torch.Tensor, cond: torch.Tensor, extra: torch.Tensor | None = None
             ) -> torch.Tensor:
        """z (N, c, h, w), cond (N, cond_dim), extra (N, extra_channels, h, w) or None -> z with
        the window edited."""
        if z.ndim != 4 or cond.shape != (z.shape[0], self.cond_dim):
            raise ValueError(f"latent editor: z (N, c, h, w) and cond (N, {self.cond_dim}), "
                             f"got {tuple(z.shape)} and {tuple(cond.shape)}")
        want = (z.shape[0], self.extra_channels, *z.shape[2:])
        if (extra is None) != (self.extra_channels == 0) or (
                extra is not None and tuple(extra.shape) != want):
            raise ValueError(f"latent editor: extra latent {want if self.extra_channels else None}"
                             f" needed, got {None if extra is None else tuple(extra.shape)}")
        rows, cols = self.window
        c = self.cond(cond.to(z.dtype))
        x = z[:, :, rows, cols]
        if extra is not None:
            x = torch.cat([x, extra[:, :, rows, cols].to(z.dtype)], dim=1)
        skip = self.stem(x)
        h = self.down(F.silu(skip))
        for block in self.blocks:
            h = block(h, c)
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        h = self.merge(skip + self.up(h), c)
        # Pad the residual back to the frame rather than add into a slice of z in place: z may
        # need its gradient (and the caller's tensor must not change).
        pad = (cols.start, z.shape[3] - cols.stop, rows.start, z.shape[2] - rows.stop)
        return z + F.pad(self.out(F.silu(h)), pad)

    def gated(self, z: torch.Tensor, cond: torch.Tensor, gate: torch.Tensor | None = None,
              extra: torch.Tensor | None = None) -> torch.Tensor:
        """Chunks: z (B, F, c, h, w), cond (B, F, cond_dim), gate (B, F) in [0, 1] or None (edit
        every frame), extra (B, F, extra_channels, h, w) where the editor takes one -> z + gate *
        (edit(z) - z). Frames with gate 0 come back as they came and cost nothing."""
        flat, cond = z.flatten(0, 1), cond.flatten(0, 1)
        extra = None if extra is None else extra.flatten(0, 1)
        if gate is None:
            return self.edit(flat, cond, extra).reshape(z.shape)
        if gate.shape != z.shape[:2]:
            raise ValueError(f"latent editor: gate (B, F) = {tuple(z.shape[:2])} needed, got "
                             f"{tuple(gate.shape)}")
        g = gate.flatten().to(z.dtype)
        on = torch.nonzero(g > 0).squeeze(1)
        if len(on) == 0:
            return z
        edited = self.edit(flat[on], cond[on], None if extra is None else extra[on])
        w = g[on].view(-1, 1, 1, 1)
        return flat.index_copy(0, on, flat[on] + w * (edited - flat[on])).reshape(z.shape)


class ScalarEditor(LatentEditor):
    """A latent editor conditioned on one number a frame (`VALUE`, named in its errors), where
    0 asks for no edit: `forward(z (N, c, h, w), value (N,))`, `frames(z (B, F, c, h, w),
    values (B, F))`, which runs only the frames whose value is not 0."""

    NAME, VALUE = "scalar editor", "value"

    def __init__(self, latent_channels: int, channels: int, hidden: int, blocks: int,
                 window: tuple[slice, slice]) -> None:
        super().__init__(latent_channels, 1, channels, hidden, blocks, window)

    def forward(self, z: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        if value.shape != z.shape[:1]:
            raise ValueError(f"{self.NAME}: one {self.VALUE} per frame (N,) = "
                             f"{tuple(z.shape[:1])}, got {tuple(value.shape)}")
        return self.edit(z, value[:, None])

    def frames(self, z: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        if values.shape != z.shape[:2]:
            raise ValueError(f"{self.NAME}: {self.VALUE}s (B, F) = {tuple(z.shape[:2])} "
                             f"needed, got {tuple(values.shape)}")
        return self.gated(z, values[..., None].to(z.dtype), (values != 0).to(z.dtype))
