"""BC1 encoder and decoder: agreement with the independent texture2ddecoder, the block format
rules (4-colour mode, equal endpoints), and per-block quality properties (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
import texture2ddecoder
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from npc_runtime.texture import TextureFormat, decode, encode, payload_size
from npc_runtime.texture.bc1_decode import decode_bc1

# Per-test settings (not a global profile: other suites choose their own).
fast = settings(max_examples=40, deadline=None)


def independent_decode(payload: bytes, width: int, height: int) -> np.ndarray:
    """texture2ddecoder returns BGRA rows; -> (H, W, 3) RGB."""
    bgra = np.frombuffer(texture2ddecoder.decode_bc1(payload, width, height), np.uint8)
    return bgra.reshape(height, width, 4)[..., [2, 1, 0]]


def block_words(payload: bytes) -> np.ndarray:
    """(B, 4) uint16: color0, color1, index bits low, index bits high."""
    return np.frombuffer(payload, dtype="<u2").reshape(-1, 4)


def nearest_565_error(v: np.ndarray) -> np.ndarray:
    """Per-channel |v - nearest RGB565-representable value| for 8-bit (..., 3) colours."""
    errs = []
    for c, bits in enumerate((5, 6, 5)):
        q = np.arange(1 << bits)
        e = (q << (8 - bits)) | (q >> (2 * bits - 8))
        errs.append(np.abs(v[..., c, None].astype(int) - e).min(axis=-1))
    return np.stack(errs, axis=-1)


sizes = st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(1, 6))  # N, H/4, W/4


@fast
@given(data=st.data(), shape=sizes)
def test_random_frames_decode_identically_and_use_four_colour_mode(data, shape):
    n, by, bx = shape
    frames = data.draw(arrays(np.uint8, (n, 4 * by, 4 * bx, 3)))
    payloads = encode(frames, TextureFormat.BC1)
    assert len(payloads) == n
    for frame, payload in zip(frames, payloads):
        assert len(payload) == payload_size(TextureFormat.BC1, 4 * bx, 4 * by)
        ours = decode_bc1(payload, 4 * bx, 4 * by)
        np.testing.assert_array_equal(ours, independent_decode(payload, 4 * bx, 4 * by))
        words = block_words(payload)
        equal = words[:, 0] == words[:, 1]
        # 4-colour mode everywhere; where endpoints coincide (3-colour mode on decode) no texel
        # may use index 3, which would decode to black.
        assert np.all((words[:, 0] > words[:, 1]) | equal)
        assert np.all(words[equal, 2:] == 0)


@fast
@given(colour=arrays(np.uint8, 3), shape=sizes)
def test_flat_colour_is_exact_up_to_rgb565(colour, shape):
    n, by, bx = shape
    frames = np.broadcast_to(colour, (n, 4 * by, 4 * bx, 3))
    bound = nearest_565_error(colour)                              # (3,)
    for payload in encode(frames, "bc1"):
        decoded = independent_decode(payload, 4 * bx, 4 * by).astype(int)
        assert np.all(decoded == decoded[0, 0])                    # still flat
        assert np.all(np.abs(decoded[0, 0] - colour) <= bound)


@fast
@given(levels=arrays(np.uint8, (2, 3)), mask=arrays(np.bool_, 16))
def test_two_colour_block_is_no_worse_than_quantising_each_texel(levels, mask):
    block = np.where(mask.reshape(4, 4, 1), levels[0], levels[1]).astype(np.uint8)
    decoded = independent_decode(encode(block, "bc1")[0], 4, 4).astype(int)
    sse = ((decoded - block) ** 2).sum()
    assert sse <= (nearest_565_error(block) ** 2).sum()


@fast
@given(ends=arrays(np.uint8, (2, 3)), vertical=st.booleans())
def test_linear_ramp_block_is_reproduced_closely(ends, vertical):
    a, b = ends.astype(float)
    ramp = np.rint(a + (b - a) * np.arange(4)[:, None] / 3).astype(np.uint8)  # (4, 3)
    block = np.broadcast_to(ramp[:, None] if vertical else ramp[None], (4, 4, 3))
    decoded = independent_decode(encode(block, "bc1")[0], 4, 4).astype(int)
    # Half a 5-bit step (4.1) on the endpoints + integer truncation of the 1/3 interpolants,
    # with one level of slack where refinement trades peak error for total error.
    assert np.abs(decoded - block).max() <= 6


def test_decoder_matches_texture2ddecoder_on_arbitrary_payloads():
    # Random words exercise both colour modes (color0 <= color1 is 3-colour mode + black).
    payload = np.random.default_rng(0).integers(0, 256, 16 * 12 * 8, dtype=np.uint8).tobytes()
    np.testing.assert_array_equal(decode_bc1(payload, 64, 48), independent_decode(payload, 64, 48))


def test_numpy_and_torch_inputs_give_the_same_bytes():
    frames = np.random.default_rng(1).integers(0, 256, (2, 8, 12, 3), dtype=np.uint8)
    assert encode(frames, "bc1") == encode(torch.from_numpy(frames), "bc1")
    # A single (H, W, 3) frame is a batch of one; a strided view encodes like its copy.
    assert encode(frames[1], "bc1") == encode(frames, "bc1")[1:]
    assert encode(frames[:, ::-1], "bc1") == encode(frames[:, ::-1].copy(), "bc1")


def test_rgba8_round_trip_and_layout():
    frames = np.random.default_rng(2).integers(0, 256, (2, 3, 5, 3), dtype=np.uint8)
    payloads = encode(frames, TextureFormat.RGBA8)
    assert len(payloads[0]) == payload_size(TextureFormat.RGBA8, 5, 3) == 3 * 5 * 4
    rgba = np.frombuffer(payloads[0], np.uint8).reshape(3, 5, 4)
    np.testing.assert_array_equal(rgba[..., :3], frames[0])
    assert np.all(rgba[..., 3] == 255)
    np.testing.assert_array_equal(decode(payloads[1], "rgba8", 5, 3), frames[1])


@pytest.mark.parametrize("frames, message", [
    (np.zeros((8, 8, 3), np.float32), "uint8"),
    (np.zeros((8, 8, 4), np.uint8), "shape"),
    (np.zeros((8, 8), np.uint8), "shape"),
    (np.zeros((1, 1, 8, 8, 3), np.uint8), "shape"),
    (np.zeros((1, 6, 8, 3), np.uint8), "multiple of 4"),
    (np.zeros((1, 8, 10, 3), np.uint8), "multiple of 4"),
    (np.zeros((1, 0, 8, 3), np.uint8), "positive"),
    ([[[0, 0, 0]]], "numpy array or torch tensor"),
])
def test_bad_frames_raise_value_error(frames, message):
    with pytest.raises(ValueError, match=message):
        encode(frames, "bc1")


def test_bad_sizes_formats_and_payloads_raise_value_error():
    with pytest.raises(ValueError, match="multiple of 4"):
        payload_size(TextureFormat.BC1, 6, 8)
    with pytest.raises(ValueError, match="positive"):
        payload_size(TextureFormat.RGBA8, 0, 8)
    with pytest.raises(ValueError):
        encode(np.zeros((4, 4, 3), np.uint8), "dxt5")
    with pytest.raises(ValueError, match="must be 32 bytes"):
        decode(b"\0" * 31, "bc1", 8, 8)
    with pytest.raises(ValueError, match="must be 64 bytes"):
        decode(b"\0" * 63, "rgba8", 4, 4)
    assert payload_size("bc1", 128, 64) == 128 * 64 // 2
    assert encode(np.zeros((0, 4, 4, 3), np.uint8), "bc1") == []
