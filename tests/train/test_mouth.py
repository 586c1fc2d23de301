"""`npc-runtime train mouth` and a mouth-track student in the Online stage."""

import dataclasses

import pytest
import torch

from npc_runtime.checkpoint import read_meta
from npc_runtime.model.audio import MOUTH_PARAMS
from npc_runtime.model.lpm import LPM
from npc_runtime.train import stage_class
from npc_runtime.train.distributed import Dist
from npc_runtime.train.flow import load_lpm
from npc_runtime.train.loop import _make_run, train
from npc_runtime.train.mouth import MouthTrainConfig, add_mouth_track, train_mouth
from npc_runtime.train.online import OnlineStage

from .conftest import smoke_config

TINY = MouthTrainConfig(train_sessions=3, test_sessions=2, session_s=3.0, steps=12, batch=8)


def _donor() -> LPM:
    torch.manual_seed(0)
    return LPM(smoke_config("online").model_config(), causal=True)


def test_training_moves_only_the_track_and_keeps_the_donors_performance():
    donor = _donor()
    lpm, report = train_mouth(donor, TINY, progress=False)
    assert lpm.cfg.audio.mouth_track and set(report["r_heldout"]) == set(MOUTH_PARAMS)
    theirs = donor.state_dict()
    for k, v in lpm.state_dict().items():
        if k.startswith("mouth."):
            continue
        if k.startswith("dit.mouth_embed."):
            if k.endswith(("2.weight", "2.bias")):       # the embedding's output: zero
                assert float(v.abs().max()) == 0.0, k
            continue
        assert torch.equal(v, theirs[k]), k
    # The track started from the donor's audio encoder and was trained away from it.
    assert not torch.equal(lpm.mouth.conv.weight, donor.audio.conv.weight)


def test_the_track_learns_the_mouth_from_speech():
    """A longer (still seconds) run reads the jaw on held-out lines and voices."""
    cfg = dataclasses.replace(TINY, train_sessions=12, session_s=8.0, steps=150, batch=32,
                              lr=2e-3)
    _, report = train_mouth(_donor(), cfg, progress=False)
    assert report["r_heldout"]["jaw_open"] > 0.3
    assert report["r_heldout"]["jaw_open"] > report["r_heldout_init"]["jaw_open"] + 0.2


def test_bad_inputs_are_refused():
    lpm, _ = train_mouth(_donor(), TINY, progress=False)
    with pytest.raises(ValueError, match="already has a mouth track"):
        add_mouth_track(lpm)
    with pytest.raises(ValueError, match=">= 1"):
        train_mouth(_donor(), dataclasses.replace(TINY, steps=0), progress=False)


def test_the_command_writes_a_checkpoint_the_online_stage_continues(tmp_path, chain):
    from npc_runtime.cli import main

    online_run = chain["online"][1]
    out = tmp_path / "mouth"
    assert main(["train", "mouth", "--init", str(online_run), "--out", str(out), "--steps", "3",
                 "--sessions", "2", "--test-sessions", "1", "--no-progress"]) == 0
    cfg, _, info = read_meta(out)
    assert cfg.audio.mouth_track and info["stage"] == "online"
    assert set(info["mouth_track_r_heldout"]) == set(MOUTH_PARAMS)
    student, _ = load_lpm(out, causal=True)

    # The Online stage: teacher without the track, student continuing the mouth checkpoint.
    run_cfg = smoke_config("online", steps=2)
    run_cfg = run_cfg.replace(
        model_overrides={**run_cfg.model_overrides,
                         "audio": {**run_cfg.model_overrides["audio"], "mouth_track": True}},
        online=dataclasses.replace(run_cfg.online, ode_steps=2,
                                   base_checkpoint=str(chain["base"][1]),
                                   init_checkpoint=str(out)))
    train(run_cfg, tmp_path / "run", stage_class("online"), progress=False)
    trained, info = load_lpm(tmp_path / "run", causal=True)
    assert "mouth_track" in info
    for (k, a), (_, b) in zip(student.mouth.state_dict().items(),
                              trained.mouth.state_dict().items()):
        assert torch.equal(a, b), k                                   # frozen
    assert float(trained.dit.mouth_embed[-1].weight.detach().abs().max()) > 0  # the DiT learns to use it

    # ... and a mouth-track student cannot start from a teacher that has none.
    fresh = run_cfg.replace(online=dataclasses.replace(run_cfg.online, init_checkpoint=""))
    with pytest.raises(ValueError, match="mouth track"):
        OnlineStage(_make_run(fresh, tmp_path / "fresh", Dist.from_env("cpu")))


def test_a_base_follows_a_copied_track_and_hands_it_to_its_student(tmp_path, chain):
    from npc_runtime.cli import main

    donor = tmp_path / "with_track"           # an Online checkpoint with a trained track
    assert main(["train", "mouth", "--init", str(chain["online"][1]), "--out", str(donor),
                 "--steps", "3", "--sessions", "2", "--test-sessions", "1",
                 "--no-progress"]) == 0
    base_init = tmp_path / "base_init"
    assert main(["train", "mouth", "--init", str(chain["base"][1]), "--track-from", str(donor),
                 "--out", str(base_init)]) == 0
    track, _ = load_lpm(donor, causal=True)
    copied, info = load_lpm(base_init, causal=False)
    assert "copied from" in info["mouth_track"] and not copied.causal
    for (k, a), (_, b) in zip(track.mouth.state_dict().items(), copied.mouth.state_dict().items()):
        assert torch.equal(a, b), k

    overrides = lambda cfg: {**cfg.model_overrides,  # noqa: E731
                             "audio": {**cfg.model_overrides["audio"], "mouth_track": True}}
    base_cfg = smoke_config("base", steps=2)
    base_cfg = base_cfg.replace(model_overrides=overrides(base_cfg), base=dataclasses.replace(
        base_cfg.base, vae_checkpoint=str(chain["vae"][1]), init_checkpoint=str(base_init)))
    train(base_cfg, tmp_path / "base", stage_class("base"), progress=False)
    base, base_info = load_lpm(tmp_path / "base", causal=False)
    assert "mouth track" in base_info["dit"]
    for (k, a), (_, b) in zip(copied.mouth.state_dict().items(), base.mouth.state_dict().items()):
        assert torch.equal(a, b), k                                   # frozen in the Base too
    assert float(base.dit.mouth_embed[-1].weight.detach().abs().max()) > 0

    # A student with another track reads its teacher's.
    other = tmp_path / "other_track"
    assert main(["train", "mouth", "--init", str(chain["online"][1]), "--out", str(other),
                 "--steps", "2", "--sessions", "2", "--test-sessions", "1",
                 "--no-progress"]) == 0
    online = smoke_config("online", steps=1)
    online = online.replace(model_overrides=overrides(online), online=dataclasses.replace(
        online.online, ode_steps=1, base_checkpoint=str(tmp_path / "base"),
        init_checkpoint=str(other)))
    stage = OnlineStage(_make_run(online, tmp_path / "online", Dist.from_env("cpu")))
    for (k, a), (_, b) in zip(base.mouth.state_dict().items(),
                              stage.student.mouth.state_dict().items()):
        assert torch.equal(a, b), k

    # Refusals: a Base with a track but no checkpoint to take it from, or one without a track.
    with pytest.raises(ValueError, match="mouth track"):
        from npc_runtime.train.base import BaseStage
        bad = base_cfg.replace(base=dataclasses.replace(base_cfg.base, init_checkpoint=""))
        BaseStage(_make_run(bad, tmp_path / "bad", Dist.from_env("cpu")))
    with pytest.raises(ValueError, match="no mouth track"):
        bad = base_cfg.replace(base=dataclasses.replace(base_cfg.base,
                                                        init_checkpoint=str(chain["base"][1])))
        BaseStage(_make_run(bad, tmp_path / "bad2", Dist.from_env("cpu")))
    with pytest.raises(ValueError, match="has no mouth track"):
        main(["train", "mouth", "--init", str(chain["base"][1]), "--track-from",
              str(chain["online"][1]), "--out", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()
