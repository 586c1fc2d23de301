"""BC1 (DXT1) decoder in numpy: payload bytes -> RGB image, both colour modes.

Used for round trips inside the project (the reference client turns received frames back
into video; tests compare it with the independent ``texture2ddecoder``). Interpolation follows
the D3D reference decoder with integer truncation: c2 = (2*c0 + c1) // 3 when color0 > color1,
otherwise c2 = (c0 + c1) // 2 and c3 = black (alpha is dropped: the sidecar sends opaque RGB).
"""

from __future__ import annotations

import numpy as np

BLOCK_BYTES = 8


def _expand565(c: np.ndarray) -> np.ndarray:
    """(B,) uint16 RGB565 -> (B, 3) int32 8-bit RGB by bit replication."""
    c = c.astype(np.int32)
    r, g, b = c >> 11, (c >> 5) & 0x3F, c & 0x1F
    return np.stack([(r << 3) | (r >> 2), (g << 2) | (g >> 4), (b << 3) | (b >> 2)], axis=1)


def decode_bc1(data: bytes, width: int, height: int) -> np.ndarray:
    """BC1 payload of a width x height image -> (height, width, 3) uint8 RGB.

    Raises ValueError when the sizes are not positive multiples of 4 or the payload length
    does not match them.
    """
    if width <= 0 or height <= 0 or width % 4 or height % 4:
        raise ValueError(f"BC1 needs positive sizes that are multiples of 4, got {width}x{height}")
    bx, by = width // 4, height // 4
    expected = bx * by * BLOCK_BYTES
    if len(data) != expected:
        raise ValueError(f"BC1 payload for {width}x{height} must be {expected} bytes, "
                         f"got {len(data)}")
    words = np.frombuffer(data, dtype="<u2").reshape(-1, 4)        # (B, 4) c0, c1, idx lo/hi
    c0, c1 = words[:, 0], words[:, 1]                              # (B,)
    e0, e1 = _expand565(c0), _expand565(c1)                        # (B, 3)
    four = (c0 > c1)[:, None]                                      # (B, 1) 4-colour mode
    palette = np.stack([
        e0, e1,
        np.where(four, (2 * e0 + e1) // 3, (e0 + e1) // 2),
        np.where(four, (e0 + 2 * e1) // 3, 0),
    ], axis=1)                                                     # (B, 4, 3)
    bits = words[:, 2].astype(np.uint32) | (words[:, 3].astype(np.uint32) << 16)  # (B,)
    idx = (bits[:, None] >> (2 * np.arange(16, dtype=np.uint32))) & 3  # (B, 16) texel order
    texels = np.take_along_axis(palette, idx[:, :, None].astype(np.intp), axis=1)  # (B, 16, 3)
    image = texels.reshape(by, bx, 4, 4, 3).transpose(0, 2, 1, 3, 4)  # (by, py, bx, px, 3)
    return image.reshape(height, width, 3).astype(np.uint8)
