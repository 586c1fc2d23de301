"""`npc-runtime train steady`: a pitch reader on renders with known head pitch, added to a
checkpoint with listening nods, which otherwise streams as before."""

import dataclasses

import pytest
import torch

from npc_runtime.checkpoint import read_meta
from npc_runtime.model.lpm import LPM
from npc_runtime.pipeline import PerformanceModel
from npc_runtime.train.flow import load_lpm
from npc_runtime.train.nod import add_nod
from npc_runtime.train.steady import (SteadyTrainConfig, add_steady, steady_data,
                                      train_steady)

from .conftest import smoke_config

TINY = SteadyTrainConfig(sessions=3, test_sessions=2, session_s=4.0, frames_per_session=6,
                         steps=30, batch=8)


def _donor() -> LPM:
    torch.manual_seed(0)
    return add_nod(LPM(smoke_config("online").model_config(), causal=True))


def test_the_data_moves_half_the_heads_within_the_offsets():
    lpm = add_steady(_donor())
    z, pitch = steady_data(lpm, "train", range(930_000, 930_004), TINY)
    assert z.shape[0] == pitch.shape[0] == 4 * TINY.frames_per_session
    assert z.shape[1:] == (lpm.cfg.vae.latent_channels, lpm.cfg.latent_size,
                           lpm.cfg.latent_size)
    assert float(pitch.min()) >= -1.0 and float(pitch.max()) <= 1.0   # the renderer's range
    again, _ = steady_data(lpm, "train", range(930_000, 930_004), TINY)
    assert torch.equal(z, again)                                       # seeded


def test_training_moves_only_the_reader():
    donor = _donor()
    lpm, report = train_steady(donor, TINY, progress=False)
    assert lpm.cfg.steady.enabled and donor.pitch_reader is None
    theirs = donor.state_dict()
    for k, v in lpm.state_dict().items():
        if not k.startswith("pitch_reader."):
            assert torch.equal(v, theirs[k]), k
    assert float(lpm.pitch_reader.std) != 1.0                          # fitted statistics
    assert set(report["heldout"]) == {"r2_clean", "rmse_clean", "r2_noisy", "rmse_noisy",
                                      "edit_read_slope", "edit_read_r"}


def test_the_reader_learns_head_pitch_in_the_shipped_latent_space():
    """With the shipped VAE, a short training reads the head pitch of never-seen identities'
    renders (measured here: R² 0.88; the shipped recipe's, 3 000 steps on 320 sessions, is in
    docs/training.md, session 20)."""
    shipped = load_lpm("npc_runtime/weights/tiny", causal=True)[0]
    if shipped.pitch_reader is not None:
        cfg = shipped.cfg.replace(steady=dataclasses.replace(shipped.cfg.steady, enabled=False))
        donor = LPM(cfg, causal=True)
        donor.load_state_dict({k: v for k, v in shipped.state_dict().items()
                               if not k.startswith("pitch_reader.")})
    else:
        donor = shipped
    cfg = dataclasses.replace(TINY, sessions=40, test_sessions=4, session_s=6.0,
                              frames_per_session=16, steps=800, batch=32)
    _, report = train_steady(donor, cfg, progress=False)
    h = report["heldout"]
    assert h["r2_clean"] > 0.5 and h["r2_noisy"] > 0.4
    assert h["rmse_clean"] < 0.2


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="add listening nods first"):
        add_steady(LPM(smoke_config("online").model_config(), causal=True))
    lpm, _ = train_steady(_donor(), TINY, progress=False)
    with pytest.raises(ValueError, match="already has a pitch reader"):
        add_steady(lpm)
    with pytest.raises(ValueError, match="offset_low <= offset_high"):
        dataclasses.replace(TINY, offset_low=0.5, offset_high=0.1)
    with pytest.raises(ValueError, match="counts >= 1"):
        dataclasses.replace(TINY, steps=0)


def test_the_command_writes_a_checkpoint_the_stream_loads(tmp_path, chain):
    from npc_runtime.cli import main

    online_run = chain["online"][1]
    with_nods = tmp_path / "nod"
    assert main(["train", "nod", "--init", str(online_run), "--out", str(with_nods),
                 "--track-steps", "5", "--track-sessions", "2", "--editor-steps", "5",
                 "--editor-sessions", "2", "--no-progress"]) == 0
    out = tmp_path / "steady"
    assert main(["train", "steady", "--init", str(with_nods), "--out", str(out),
                 "--steps", "10", "--sessions", "2", "--no-progress"]) == 0
    cfg, _, info = read_meta(out)
    assert cfg.steady.enabled and cfg.nod.enabled
    assert "pitch reader" in info["steady"] and info["recipe"].endswith("-> nod -> steady")
    model = PerformanceModel.from_checkpoint(out)
    assert model.lpm.pitch_reader is not None
    assert model.describe()["info"]["steady_heldout"] == info["steady_heldout"]
