"""Convolutional VAE: RGB frames <-> latents at 1/d resolution, d = 2**len(channels) (4 for tiny).

Frames enter as float in [-1, 1], shape (N, 3, H, W); latents are (N, c, H/d, W/d), already
multiplied by `latent_scale` (a buffer fitted on training data so latents have ~unit variance;
1.0 until trained). The decoder is what runs per streamed frame, so it is kept light: residual
blocks at low resolution and a pixel-shuffle for the last 2x so nothing convolves at full size.

With `cfg.emotion_dim > 0` the decoder is an expression decoder: it also reads each frame's
emotion weights (N, E) through FiLM layers after its first convolution and after every residual
block. They see only the non-neutral weights, have no bias and start at zero, so a neutral frame,
`emotion=None` and an untrained expression decoder all decode exactly as the plain decoder.
Why: the tiny latent (32x32x4) keeps little of the brows and mouth corners an emotion is read
from (docs/training.md, sessions 11 and 21); the tag the stream already carries lets the decoder
draw them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from npc_runtime.config import VAEConfig


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, ch), ch)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = _norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class Encoder(nn.Module):
    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        ch = cfg.channels
        self.conv_in = nn.Conv2d(cfg.image_channels, ch[0], 3, padding=1)
        layers: list[nn.Module] = []
        cin = ch[0]
        for cout in ch:
            for _ in range(cfg.blocks_per_level):
                layers.append(ResBlock(cin, cout))
                cin = cout
            layers.append(nn.Conv2d(cout, cout, 3, stride=2, padding=1))  # 2x down
        self.body = nn.Sequential(*layers)
        self.norm_out = _norm(cin)
        self.conv_out = nn.Conv2d(cin, 2 * cfg.latent_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(self.conv_in(x))
        mean, logvar = self.conv_out(F.silu(self.norm_out(h))).chunk(2, dim=1)
        return mean, logvar.clamp(-20.0, 10.0)


class EmotionFiLM(nn.Module):
    """h * (1 + scale(e)) + shift(e), per channel, from the non-neutral emotion weights e.

    No bias and zero-initialised: e = 0 (neutral) is the identity, before and after training."""

    def __init__(self, emotions: int, channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(emotions, 2 * channels, bias=False)
        nn.init.zeros_(self.proj.weight)

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        scale, shift = self.proj(e)[:, :, None, None].chunk(2, dim=1)
        return h * (1 + scale) + shift


class Decoder(nn.Module):
    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        ch = tuple(reversed(cfg.channels))
        self.conv_in = nn.Conv2d(cfg.latent_channels, ch[0], 3, padding=1)
        layers: list[nn.Module] = []
        film_channels = [ch[0]]
        cin = ch[0]
        for i, cout in enumerate(ch):
            for _ in range(cfg.blocks_per_level):
                layers.append(ResBlock(cin, cout))
                film_channels.append(cout)
                cin = cout
            if i < len(ch) - 1:
                layers += [nn.Upsample(scale_factor=2, mode="nearest"),
                           nn.Conv2d(cout, cout, 3, padding=1)]
        self.body = nn.Sequential(*layers)
        self.norm_out = _norm(cin)
        # Last 2x via pixel shuffle: the full-resolution image is never convolved.
        self.conv_out = nn.Conv2d(cin, cfg.image_channels * 4, 3, padding=1)
        # The expression decoder's FiLM: after conv_in, then after each residual block.
        self.film = nn.ModuleList(EmotionFiLM(cfg.emotion_dim - 1, c) for c in film_channels) \
            if cfg.emotion_dim > 0 else None
        self.emotion_dim = cfg.emotion_dim

    def forward(self, z: torch.Tensor, emotion: torch.Tensor | None = None) -> torch.Tensor:
        """z (N, c, h, w) unscaled latents; emotion (N, emotion_dim) weights or None (neutral)."""
        if emotion is None or self.film is None:
            # A plain decoder ignores the tag; None on an expression decoder is neutral, which
            # its zero-bias FiLM leaves untouched.
            h = self.body(self.conv_in(z))
        else:
            if emotion.shape != (z.shape[0], self.emotion_dim):
                raise ValueError(f"emotion must be ({z.shape[0]}, {self.emotion_dim}) weights, "
                                 f"got {tuple(emotion.shape)}")
            e = emotion[:, 1:].to(z.dtype)              # neutral is what the others leave
            films = iter(self.film)
            h = next(films)(self.conv_in(z), e)
            for layer in self.body:
                h = layer(h)
                if isinstance(layer, ResBlock):
                    h = next(films)(h, e)
        return F.pixel_shuffle(self.conv_out(F.silu(self.norm_out(h))), 2)


class VAE(nn.Module):
    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.register_buffer("latent_scale", torch.ones(()))

    def encode(self, x: torch.Tensor, sample: bool = False) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] -> scaled latents (N, c, H/d, W/d); the mean unless sample."""
        mean, logvar = self.encoder(x)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp() if sample else mean
        return z * self.latent_scale

    def decode(self, z: torch.Tensor, emotion: torch.Tensor | None = None) -> torch.Tensor:
        """Scaled latents -> (N, 3, H, W) images in [-1, 1] (not clamped). `emotion`: the
        frames' (N, E) emotion weights, read by an expression decoder (None: neutral)."""
        # channels_last lets oneDNN run the convolutions ~25% faster on CPU; call
        # `to(memory_format=torch.channels_last)` on the module once for the full gain.
        z = (z / self.latent_scale).contiguous(memory_format=torch.channels_last)
        return self.decoder(z, emotion)
