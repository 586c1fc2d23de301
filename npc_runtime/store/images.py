"""Reference images: validation of client bytes, and the model's normalised identity input.

Clients send PNG or JPEG of any size. Validation decodes the whole image (so truncated or corrupt
files are refused at registration, not at stream start) and enforces byte and pixel limits before
decoding (a small file can claim a huge canvas). Normalisation is what the model sees: EXIF
orientation applied, alpha composited over mid grey, the centred square crop of the shorter side,
resized with Lanczos to the model's frame size. The stored file stays byte-identical to what the
client sent; normalisation is recomputed when needed.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from npc_runtime.store.blobs import sha256_hex

_MAGIC = {b"\x89PNG\r\n\x1a\n": ("PNG", "image/png"), b"\xff\xd8\xff": ("JPEG", "image/jpeg")}
# Alpha is composited over this grey: neutral for the model and for BC1 (no alpha channel).
_MATTE = (128, 128, 128)
NORMALIZATION_VERSION = 1  # bump when normalize_reference changes; identity caches key on it


class ImageError(ValueError):
    """A reference image that cannot be used; the message says why."""


@dataclass(frozen=True)
class ImageInfo:
    sha256: str
    media_type: str
    width: int
    height: int
    size_bytes: int


def _sniff(data: bytes) -> tuple[str, str]:
    for magic, kind in _MAGIC.items():
        if data.startswith(magic):
            return kind
    raise ImageError("not a PNG or JPEG file (unrecognised header)")


def inspect_image(data: bytes, *, max_bytes: int, max_pixels: int, min_side: int) -> ImageInfo:
    """Validate one reference image fully; raise ImageError naming the problem."""
    if not data:
        raise ImageError("empty image")
    if len(data) > max_bytes:
        raise ImageError(f"image is {len(data)} bytes; the limit is {max_bytes}")
    pil_format, media_type = _sniff(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[pil_format]) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise ImageError(f"image is {width}x{height} pixels; the limit is "
                                     f"{max_pixels} pixels")
                if min(width, height) < min_side:
                    raise ImageError(f"image is {width}x{height}; each side must be at least "
                                     f"{min_side} pixels")
                img.load()  # decodes everything: truncated or corrupt data fails here
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"image too large to decode safely: {e}") from None
    except Exception as e:  # Pillow raises many types (OSError, SyntaxError, ValueError, ...)
        raise ImageError(f"corrupt {pil_format} image: {e}") from None
    return ImageInfo(sha256_hex(data), media_type, width, height, len(data))


def normalize_reference(data: bytes, size: int) -> np.ndarray:
    """Image bytes -> (size, size, 3) uint8 RGB: the model's identity reference."""
    with Image.open(io.BytesIO(data)) as img:
        img = ImageOps.exif_transpose(img)
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            img = Image.new("RGB", rgba.size, _MATTE)
            img.paste(rgba, mask=rgba.getchannel("A"))
        else:
            img = img.convert("RGB")
        side = min(img.size)
        left, top = (img.width - side) // 2, (img.height - side) // 2
        img = img.crop((left, top, left + side, top + side))
        img = img.resize((size, size), Image.Resampling.LANCZOS)
        return np.asarray(img, dtype=np.uint8).copy()
