"""The shipped evaluator probes read parameters back from renders they never saw."""

from importlib import resources

import numpy as np
import pytest
import torch

from npc_runtime.bench.probes import TARGETS, Probe, probe_data, r2_scores
from npc_runtime.world.identity import EVAL_IDENTITY_SEEDS, IDENTITY_FEATURES
from npc_runtime.world.performance import NUM_PERF

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def heldout():
    # Fresh renders of evaluation identities (the probe trained on training identities only),
    # drawn with a seed the training command never used.
    frames, y = probe_data(400, EVAL_IDENTITY_SEEDS, 4, 128, seed=987_654)
    perf, ident = Probe.load().read(frames)
    return r2_scores(np.concatenate([perf, ident], 1), y)


def test_probe_ships_small_in_the_package():
    path = resources.files("npc_runtime.bench").joinpath("probes.safetensors")
    size = path.stat().st_size
    assert 100_000 < size < 4_000_000


def test_mouth_open_r2_at_least_0_9(heldout):
    assert heldout["jaw_open"] >= 0.9


def test_pose_and_expression_are_readable(heldout):
    for name in ("head_pitch", "head_yaw", "head_roll", "sway", "smile"):
        assert heldout[name] > 0.9, (name, heldout[name])
    for name in ("blink", "brow_raise", "brow_furrow", "sneer", "gaze_x"):
        assert heldout[name] > 0.6, (name, heldout[name])
    # The weakest: one- or two-pixel effects at 80 px (see docs/bench.md, "Probes").
    for name in ("eye_wide", "lip_width", "lip_round", "gaze_y"):
        assert heldout[name] > 0.3, (name, heldout[name])


def test_identity_colours_and_accessories_are_readable(heldout):
    for name in ("skin_r", "cloth_g", "bgt_b", "hat", "glasses", "beard", "hair_long"):
        assert heldout[name] > 0.8, (name, heldout[name])


def test_every_target_is_reported(heldout):
    assert list(heldout) == list(TARGETS)
    assert len(TARGETS) == NUM_PERF + len(IDENTITY_FEATURES)


def test_probe_handles_other_resolutions():
    frames, y = probe_data(48, EVAL_IDENTITY_SEEDS, 4, 256, seed=4242)
    perf, _ = Probe.load().read(frames)
    assert np.corrcoef(perf[:, 0], y[:, 0])[0, 1] > 0.9  # jaw_open read at 256 px too
