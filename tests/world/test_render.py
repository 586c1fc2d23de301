"""Renderer: shapes, resolutions, anti-aliasing, and that each parameter visibly moves the face."""

import numpy as np
import pytest
import torch

from npc_runtime.world.identity import sample_identity
from npc_runtime.world.performance import NUM_PERF, P, neutral_performance
from npc_runtime.world.render import render_frames

torch.set_num_threads(1)
IDENT = sample_identity(11)


def _with(**kw):
    perf = neutral_performance(1)
    for k, v in kw.items():
        perf[0, P[k]] = v
    return perf


@pytest.mark.parametrize("size", [128, 256, 512])
def test_renders_any_resolution(size):
    frames = render_frames(IDENT, neutral_performance(2), size)
    assert frames.shape == (2, size, size, 3) and frames.dtype == np.uint8
    assert frames.std() > 20  # a face on a background, not a flat fill


def test_resolutions_agree_when_downsampled():
    small = render_frames(IDENT, neutral_performance(1), 128)[0].astype(float)
    big = render_frames(IDENT, neutral_performance(1), 256)[0].astype(float)
    down = big.reshape(128, 2, 128, 2, 3).mean((1, 3))
    assert np.abs(down - small).mean() < 3.0


def test_edges_are_anti_aliased():
    frame = render_frames(IDENT, neutral_performance(1), 128)[0].astype(int)
    row = frame[64]  # crosses the background/face boundary
    steps = np.abs(np.diff(row, axis=0)).max(1)
    # An aliased edge jumps in one step; an anti-aliased one has intermediate pixels.
    assert steps.max() < 0.8 * np.abs(row.max(0) - row.min(0)).max()


def test_deterministic():
    a = render_frames(IDENT, _with(jaw_open=0.5, head_yaw=0.3), 128)
    b = render_frames(IDENT, _with(jaw_open=0.5, head_yaw=0.3), 128)
    assert np.array_equal(a, b)


def _dark(frame, y0, y1):
    return int((frame[y0:y1].astype(int).sum(-1) < 200).sum())


def test_jaw_open_opens_the_mouth_monotonically():
    frames = render_frames(IDENT, np.concatenate([_with(jaw_open=j) for j in (0, .3, .6, 1)]))
    dark = [_dark(f, 70, 115) for f in frames]  # mouth interior is dark
    assert dark == sorted(dark) and dark[-1] > dark[0] + 30


def test_blink_closes_the_eyes():
    frames = render_frames(IDENT, np.concatenate([_with(), _with(blink=1.0)]))
    white = [int((f[30:70].astype(int).min(-1) > 200).sum()) for f in frames]
    assert white[0] > 20 and white[1] < white[0] * 0.2


@pytest.mark.parametrize("param", ["gaze_x", "brow_raise", "smile", "head_yaw", "head_pitch",
                                   "head_roll", "sway", "lip_round", "sneer", "brow_furrow",
                                   "eye_wide"])
def test_every_parameter_changes_the_picture(param):
    kw = {"jaw_open": 0.4} if param in ("lip_round", "sneer") else {}
    frames = render_frames(IDENT, np.concatenate([_with(**kw), _with(**kw, **{param: 0.9})]))
    assert np.abs(frames[0].astype(int) - frames[1].astype(int)).sum(-1).astype(bool).sum() > 20


def test_per_frame_identities():
    ids = [sample_identity(s) for s in range(3)]
    frames = render_frames(ids, np.zeros((3, NUM_PERF), np.float32))
    assert not np.array_equal(frames[0], frames[1])
    with pytest.raises(ValueError):
        render_frames(ids, np.zeros((2, NUM_PERF), np.float32))


@pytest.mark.slow
def test_compiled_renderer_matches_eager():
    perf = np.random.default_rng(0).uniform(-0.5, 0.5, (70, NUM_PERF)).astype(np.float32)
    a = render_frames(IDENT, perf, 128)
    b = render_frames(IDENT, perf, 128, compile=True)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
