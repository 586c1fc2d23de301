"""BC1 quality must-show: on the scikit-image sample photos our encoder beats the independent
etcpak encoder by at least 0.5 dB mean PSNR, both decoded by the independent texture2ddecoder."""

from __future__ import annotations

import logging

import etcpak
import numpy as np
import pytest
import texture2ddecoder
from skimage import data

from npc_runtime.texture import encode

log = logging.getLogger(__name__)

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
REQUIRED_MARGIN_DB = 0.5


def photo(name: str) -> np.ndarray:
    """(H, W, 3) uint8 sample photo cropped to multiples of 4."""
    image = getattr(data, name)()
    h, w = image.shape[0] // 4 * 4, image.shape[1] // 4 * 4
    return np.ascontiguousarray(image[:h, :w, :3])


def decoded(payload: bytes, width: int, height: int) -> np.ndarray:
    bgra = np.frombuffer(texture2ddecoder.decode_bc1(payload, width, height), np.uint8)
    return bgra.reshape(height, width, 4)[..., [2, 1, 0]]


def psnr(reference: np.ndarray, test: np.ndarray) -> float:
    mse = np.mean((reference.astype(np.float64) - test.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / mse))


def etcpak_bc1(image: np.ndarray) -> bytes:
    # etcpak reads 4 bytes per pixel with R in the first byte (checked: an all-red RGBA image
    # encodes to color 0xF800), so RGB gets an opaque alpha channel appended.
    h, w, _ = image.shape
    rgba = np.concatenate([image, np.full((h, w, 1), 255, np.uint8)], axis=-1)
    return etcpak.compress_bc1(rgba.tobytes(), w, h)


def test_etcpak_input_layout_is_rgba():
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 255
    np.testing.assert_array_equal(decoded(etcpak_bc1(red), 4, 4)[0, 0], [255, 0, 0])


@pytest.mark.parametrize("name", PHOTOS)
def test_photo_round_trip_is_faithful(name):
    image = photo(name)
    h, w, _ = image.shape
    assert psnr(image, decoded(encode(image, "bc1")[0], w, h)) > 34.0


def test_mean_psnr_beats_etcpak_by_half_a_db():
    ours, theirs = [], []
    for name in PHOTOS:
        image = photo(name)
        h, w, _ = image.shape
        ours.append(psnr(image, decoded(encode(image, "bc1")[0], w, h)))
        theirs.append(psnr(image, decoded(etcpak_bc1(image), w, h)))
        log.info("%s: ours %.2f dB, etcpak %.2f dB", name, ours[-1], theirs[-1])
    margin = float(np.mean(ours) - np.mean(theirs))
    assert margin >= REQUIRED_MARGIN_DB, f"ours {ours} vs etcpak {theirs}: margin {margin:.2f} dB"
