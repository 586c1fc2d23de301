"""Image grids for eyeballing training progress (rows of uint8 frames -> one PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image


def save_grid(rows: Sequence[np.ndarray], path: str | Path, pad: int = 2) -> Path:
    """rows: each (N, H, W, 3) uint8 (same H, W); N may differ (short rows are padded)."""
    h, w = rows[0].shape[1:3]
    n = max(len(r) for r in rows)
    canvas = np.full((len(rows) * (h + pad) + pad, n * (w + pad) + pad, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            canvas[y:y + h, x:x + w] = img
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).save(path)
    return path
