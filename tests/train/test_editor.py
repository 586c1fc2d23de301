"""`npc-runtime train editor`: a mouth editor trained on counterfactual renders."""

import dataclasses

import pytest
import torch

from npc_runtime.checkpoint import read_meta
from npc_runtime.model.lpm import LPM
from npc_runtime.pipeline import PerformanceModel
from npc_runtime.train.editor import EditorTrainConfig, editor_data, train_editor
from npc_runtime.train.flow import load_lpm
from npc_runtime.train.mouth import MOUTH_INDEX, add_mouth_track

from .conftest import smoke_config

TINY = EditorTrainConfig(train_sessions=3, test_sessions=3, frames_per_session=4, steps=40,
                         batch=8)


def _donor() -> LPM:
    torch.manual_seed(0)
    return add_mouth_track(LPM(smoke_config("online").model_config(), causal=True))


def _shipped_without_editor() -> LPM:
    """The shipped checkpoint with its mouth track (a fresh one if it has none) and without
    any mouth editor it ships with (nor the blinks, which read its speech gate): a donor for a
    new editor in the shipped latent space."""
    shipped = load_lpm("npc_runtime/weights/tiny", causal=True)[0]
    if shipped.mouth is None:
        return add_mouth_track(shipped)
    cfg = shipped.cfg.replace(
        mouth_edit=dataclasses.replace(shipped.cfg.mouth_edit, enabled=False),
        blink=dataclasses.replace(shipped.cfg.blink, enabled=False))
    donor = LPM(cfg, causal=True)
    donor.load_state_dict({k: v for k, v in shipped.state_dict().items()
                           if not k.startswith(("mouth_edit.", "blink_edit."))})
    return donor


def test_the_data_differs_only_by_the_mouth():
    """Variants of a frame share everything but jaw, lip width and rounding; variant 0 keeps
    the frame's own mouth and variant 1 a silent one; each frame comes with its session's
    emotion weights."""
    lpm = _donor()
    z, m, e, region = editor_data(lpm, "train", range(800_000, 800_003), TINY)
    n, k = TINY.train_sessions * TINY.frames_per_session, TINY.variants
    assert z.shape[:2] == (n, k) and m.shape == (n, k, len(MOUTH_INDEX))
    assert e.shape == (n, lpm.cfg.emotion_dim)
    torch.testing.assert_close(e.sum(1), torch.ones(n))      # weights: neutral takes the rest
    assert region.shape == (n, *z.shape[-2:]) and 0 <= float(region.min())
    assert float(region.amax((1, 2)).min()) == pytest.approx(1.0)
    assert float(m[:, 1, 0].max()) < float(m[:, 2:, 0].max())   # silence vs speech jaws


def test_training_moves_only_the_editor():
    donor = _donor()
    lpm, report = train_editor(donor, TINY, progress=False)
    assert lpm.cfg.mouth_edit.enabled and lpm.cfg.mouth_edit.emotion
    assert donor.mouth_edit is None
    theirs = donor.state_dict()
    for k, v in lpm.state_dict().items():
        if not k.startswith("mouth_edit."):
            assert torch.equal(v, theirs[k]), k
    assert float(lpm.mouth_edit.out.weight.abs().max()) > 0          # it left the identity
    assert set(report["heldout"]) == {"jaw_r_edited", "jaw_r_unedited", "mouth_rmse_edited",
                                      "mouth_rmse_unedited"}


def test_the_editor_learns_to_put_the_mouth_in_the_shipped_latent_space():
    """With the shipped VAE, 200 steps of training already cut the held-out mouth-region error
    and make the probe read the requested jaw from the decoded frames (never-seen identities)."""
    donor = _shipped_without_editor()
    # Measured: 8-10 sessions at batch 16 stay on the identity plateau for 300 steps; 20 at
    # batch 32 and 2e-3 leave it within 100 (held-out jaw r 0.71, 0.86 at 200; with the
    # editor on its window, session 14: 0.84 and 0.82, mouth RMSE 0.43 against 0.73 unedited).
    cfg = dataclasses.replace(TINY, train_sessions=20, frames_per_session=8, steps=200,
                              batch=32, lr=2e-3)
    _, report = train_editor(donor, cfg, progress=False)
    h = report["heldout"]
    assert h["mouth_rmse_edited"] < 0.8 * h["mouth_rmse_unedited"]
    assert h["jaw_r_edited"] > h["jaw_r_unedited"] + 0.5


def test_bad_inputs_are_refused():
    torch.manual_seed(0)
    plain = LPM(smoke_config("online").model_config(), causal=True)
    with pytest.raises(ValueError, match="no mouth track"):
        train_editor(plain, TINY, progress=False)
    lpm, _ = train_editor(_donor(), TINY, progress=False)
    with pytest.raises(ValueError, match="already has a mouth editor"):
        train_editor(lpm, TINY, progress=False)
    with pytest.raises(ValueError, match="variants >= 2"):
        dataclasses.replace(TINY, variants=1)


def test_the_command_writes_a_checkpoint_the_stream_loads(tmp_path, chain):
    from npc_runtime.cli import main

    online_run = chain["online"][1]
    track = tmp_path / "mouth"
    assert main(["train", "mouth", "--init", str(online_run), "--out", str(track), "--steps",
                 "3", "--sessions", "2", "--test-sessions", "1", "--no-progress"]) == 0
    out = tmp_path / "editor"
    assert main(["train", "editor", "--init", str(track), "--out", str(out), "--steps", "40",
                 "--sessions", "3", "--test-sessions", "3", "--no-progress"]) == 0
    cfg, _, info = read_meta(out)
    assert cfg.mouth_edit.enabled and cfg.audio.mouth_track and cfg.mouth_edit.emotion
    assert not cfg.mouth_edit.commit_edited
    assert "counterfactual renders" in info["mouth_editor"]
    assert "conditioned on the mouth and the emotion" in info["mouth_editor"]
    assert info["recipe"] == "npc-runtime train vae -> base -> online -> mouth -> editor"
    model = PerformanceModel.from_checkpoint(out)
    assert model.lpm.mouth_edit is not None
    assert model.describe()["info"]["mouth_editor_heldout"] == info["mouth_editor_heldout"]
