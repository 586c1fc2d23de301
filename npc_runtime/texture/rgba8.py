"""Raw RGBA8 packing: RGB frames -> opaque RGBA bytes, 4 bytes per pixel, rows top to bottom.

The uncompressed alternative to BC1 (Unity ``TextureFormat.RGBA32``, Unreal ``PF_R8G8B8A8``):
8x the bandwidth, no quality loss, no size restriction beyond being non-empty.
"""

from __future__ import annotations

import numpy as np
import torch

BYTES_PER_PIXEL = 4
OPAQUE = 255


def encode_rgba8(frames: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 validated frames -> (N, H * W * 4) uint8 payloads, alpha = 255."""
    n, h, w, _ = frames.shape
    alpha = torch.full((n, h, w, 1), OPAQUE, dtype=torch.uint8, device=frames.device)
    return torch.cat([frames, alpha], dim=-1).reshape(n, -1)      # (N, H*W*4)


def decode_rgba8(data: bytes, width: int, height: int) -> np.ndarray:
    """RGBA8 payload -> (height, width, 3) uint8 RGB (alpha dropped). ValueError on a length
    that does not match the sizes."""
    if width <= 0 or height <= 0:
        raise ValueError(f"RGBA8 needs positive sizes, got {width}x{height}")
    expected = width * height * BYTES_PER_PIXEL
    if len(data) != expected:
        raise ValueError(f"RGBA8 payload for {width}x{height} must be {expected} bytes, "
                         f"got {len(data)}")
    return np.frombuffer(data, dtype=np.uint8).reshape(height, width, 4)[..., :3].copy()
