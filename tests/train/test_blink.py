"""`npc-runtime train blink`: the blink clock's rates fitted to the world's dialogue and a blink
editor trained on counterfactual renders, added to a checkpoint that otherwise streams as
before."""

import dataclasses

import numpy as np
import pytest
import torch

from npc_runtime.checkpoint import read_meta, save_checkpoint
from npc_runtime.config import MouthEditConfig
from npc_runtime.model.blink import IDLE, LISTENING, SPEAKING
from npc_runtime.model.lpm import LPM
from npc_runtime.pipeline import PerformanceModel
from npc_runtime.train.blink import (BlinkTrainConfig, RateData, add_blink, blink_config,
                                     clock_heldout, editor_data, fit_rates, rate_data,
                                     train_blink, train_editor)
from npc_runtime.train.flow import load_lpm
from npc_runtime.world.behaviour import BehaviourConfig, _blinks

from .conftest import smoke_config

TINY = BlinkTrainConfig(rate_sessions=4, rate_test_sessions=2, rate_session_s=12.0,
                        editor_sessions=3, editor_test_sessions=2, frames_per_session=4,
                        editor_steps=40, editor_batch=8)


def _donor() -> LPM:
    """A smoke-sized LPM with a mouth editor (blinks read its speech gate)."""
    torch.manual_seed(0)
    cfg = smoke_config("online").model_config()
    cfg = cfg.replace(audio=dataclasses.replace(cfg.audio, mouth_track=True),
                      mouth_edit=MouthEditConfig(enabled=True))
    return LPM(cfg, causal=True)


def _shipped_without_blinks() -> LPM:
    shipped = load_lpm("npc_runtime/weights/tiny", causal=True)[0]
    if shipped.blink_edit is None:
        return shipped
    cfg = shipped.cfg.replace(blink=dataclasses.replace(shipped.cfg.blink, enabled=False))
    donor = LPM(cfg, causal=True)
    donor.load_state_dict({k: v for k, v in shipped.state_dict().items()
                           if not k.startswith("blink_edit.")})
    return donor


def test_the_fit_recovers_the_worlds_rates_from_its_own_blink_process():
    """The world's blink process (world/behaviour.py: a start per frame at its state's rate, none
    within 0.4 s of the last) over known states: maximum likelihood gives its rates back."""
    cfg = blink_config(_donor().cfg)
    world, fps = BehaviourConfig(), cfg.stream.fps
    rng = np.random.default_rng(0)
    states = np.repeat(rng.integers(0, 3, 4000), 125)         # 5 s stretches, 100 000 s
    times = _blinks(rng, len(states), fps, states, world)
    onsets = np.floor(times * fps).astype(int)
    rates, counts = fit_rates(cfg, RateData([states], [onsets], [], []))
    for s, name in ((IDLE, "idle"), (SPEAKING, "speak"), (LISTENING, "listen")):
        assert rates[s] == pytest.approx(world.blink_per_min[name], rel=0.05), (name, rates)
    assert sum(c["onsets"] for c in counts.values()) == len(onsets)


def test_the_rates_fitted_on_dialogue_give_the_listening_gain_on_held_out_sessions():
    """The states as the stream reads them from the audio: the world blinks more while its
    partner speaks, and the clock run with the fitted rates repeats that on evaluation-split
    sessions (the full recipe, 300 and 100 sessions: a gain of 9.5 a minute, the truth 9.6)."""
    cfg = blink_config(_donor().cfg)
    train = rate_data(cfg, "train", range(1_000_000, 1_000_060), 30.0)
    n = int(30.0 * cfg.stream.fps)
    assert all(s.shape == (n,) for s in train.states)
    assert all(len(o) and o.max() < n for o in train.onsets)
    rates, _ = fit_rates(cfg, train)
    assert rates[LISTENING] > rates[IDLE] + 4.0
    test = rate_data(cfg, "eval", range(23_000_000, 23_000_040), 30.0)
    h = clock_heldout(blink_config(cfg, rates), test, seed=0)
    truth_gain = h["truth_per_min_listening"] - h["truth_per_min_silence"]
    assert truth_gain > 4.0
    assert h["stream_per_min_listening"] - h["stream_per_min_silence"] > 0.5 * truth_gain


def test_the_editor_data_differs_only_by_the_eyelid():
    lpm = add_blink(_donor())
    z, closure, region = editor_data(lpm, "train", range(1_050_000, 1_050_003), TINY)
    n, k = 3 * TINY.frames_per_session, TINY.variants
    assert z.shape[:2] == (n, k) and closure.shape == (n, k)
    assert torch.all(closure[:, 1] == 1.0)
    assert float(closure.min()) >= 0 and float(closure.max()) <= 1
    assert region.shape == (n, *z.shape[-2:])
    # Variant 0 is the frame as the world drew it: eyes open on most frames.
    assert float((closure[:, 0] == 0).float().mean()) > 0.5
    assert float((z[:, 1] - z[:, 0]).abs().amax()) > 0


def test_training_moves_only_the_blink_editor_and_fits_the_rates():
    donor = _donor()
    lpm, report = train_blink(donor, TINY, progress=False)
    assert lpm.cfg.blink.enabled and donor.blink_edit is None
    assert lpm.cfg.blink.rates_per_min == tuple(report["rates_per_min"])
    assert max(lpm.cfg.blink.rates_per_min) > 0
    theirs = donor.state_dict()
    for k, v in lpm.state_dict().items():
        if not k.startswith("blink_edit."):
            assert torch.equal(v, theirs[k]), k
    assert float(lpm.blink_edit.out.weight.detach().abs().max()) > 0
    assert set(report["clock_heldout"]) == {"stream_per_min_listening", "stream_per_min_silence",
                                            "truth_per_min_listening", "truth_per_min_silence"}
    assert set(report["editor_heldout"]) == {"blink_r_edited", "blink_r_unedited",
                                             "read_change_slope", "read_shut_mean",
                                             "read_source_mean"}


def test_the_editor_learns_to_close_the_eyes_in_the_shipped_latent_space():
    """With the shipped VAE, a short training makes the probe read shut eyes from the decoded
    edited frames of never-seen identities."""
    lpm = add_blink(_shipped_without_blinks())
    cfg = dataclasses.replace(TINY, editor_sessions=20, frames_per_session=8, editor_steps=200,
                              editor_batch=32, editor_lr=2e-3)
    h = train_editor(lpm, cfg, progress=False)["heldout"]
    assert h["blink_r_edited"] > h["blink_r_unedited"] + 0.3
    assert h["read_shut_mean"] > h["read_source_mean"] + 0.3
    assert h["read_change_slope"] > 0.3


def test_bad_inputs_are_refused():
    lpm, _ = train_blink(_donor(), TINY, progress=False)
    with pytest.raises(ValueError, match="already has a blink editor"):
        train_blink(lpm, TINY, progress=False)
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="mouth editor"):
        add_blink(LPM(smoke_config("online").model_config(), causal=True))
    with pytest.raises(ValueError, match="variants >= 2"):
        dataclasses.replace(TINY, variants=1)
    with pytest.raises(ValueError, match="lr > 0"):
        dataclasses.replace(TINY, editor_lr=0.0)


def test_the_command_writes_a_checkpoint_the_stream_loads(tmp_path):
    from npc_runtime.cli import main

    donor = _donor()
    save_checkpoint(tmp_path / "donor", donor, donor.cfg, trained=False,
                    info={"stage": "online", "causal": True})
    out = tmp_path / "blink"
    assert main(["train", "blink", "--init", str(tmp_path / "donor"), "--out", str(out),
                 "--rate-sessions", "3", "--rate-test-sessions", "2", "--editor-steps", "40",
                 "--editor-sessions", "2",
                 "--no-progress"]) == 0
    cfg, _, info = read_meta(out)
    assert cfg.blink.enabled and max(cfg.blink.rates_per_min) > 0
    assert "blink clock" in info["blink"] and "counterfactual renders" in info["blink"]
    assert info["recipe"].endswith("-> blink")
    model = PerformanceModel.from_checkpoint(out)
    assert model.lpm.blink_edit is not None
    assert model.describe()["info"]["blink_heldout"] == info["blink_heldout"]
