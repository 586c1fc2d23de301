"""`npc-runtime train expression`: the VAE decoder fine-tuned to read the frames' emotion tags;
the encoder, the DiT and every add-on stay bit-identical."""

import dataclasses

import numpy as np
import pytest
import torch

from npc_runtime.checkpoint import read_meta
from npc_runtime.emotions import DEFAULT_VOCABULARY
from npc_runtime.model.lpm import LPM
from npc_runtime.pipeline import PerformanceModel
from npc_runtime.train.expression import (ExpressionTrainConfig, _retagged, add_expression,
                                          expression_data, expression_pixels, train_expression)
from npc_runtime.train.flow import load_lpm
from npc_runtime.world.performance import EXPRESSION_BASIS, P, neutral_performance

from .conftest import smoke_config

TINY = ExpressionTrainConfig(sessions=3, test_sessions=2, session_s=4.0, frames_per_session=6,
                             steps=12, batch=4)


def _donor() -> LPM:
    torch.manual_seed(0)
    return LPM(smoke_config("online").model_config(), causal=True)


def test_retagging_swaps_the_tags_part_of_the_performance():
    rng = np.random.default_rng(0)
    vocab = DEFAULT_VOCABULARY
    n = 200
    emotion = np.tile(vocab.tag_vector("happy", 0.5), (n, 1)).astype(np.float32)
    perf = neutral_performance(n) + 0.1 + emotion @ EXPRESSION_BASIS   # inside the bounds
    new_perf, new_emotion = _retagged(perf, emotion, rng, 0.5)
    moved = ~np.all(new_emotion == emotion, axis=1)
    assert 60 < moved.sum() < 140                                     # about half
    assert np.array_equal(new_perf[~moved], perf[~moved])
    for i in np.flatnonzero(moved):
        tag = int(np.argmax(new_emotion[i, 1:])) + 1
        assert 0.3 <= new_emotion[i, tag] <= 1.0
        assert np.allclose(new_emotion[i], vocab.tag_vector(vocab.tags[tag],
                                                            new_emotion[i, tag]))
    # The world's own rendering of the new tag: the neutral face + 0.1 + new weights @ basis,
    # clipped to the renderer's bounds (the untouched jaw keeps its 0.1).
    want = np.clip(neutral_performance(moved.sum()) + 0.1 + new_emotion[moved] @ EXPRESSION_BASIS,
                   -1, 1)
    assert np.allclose(new_perf[moved][:, P["brow_raise"]], want[:, P["brow_raise"]], atol=1e-5)
    assert np.allclose(new_perf[moved][:, P["jaw_open"]], 0.1)


def test_the_expression_pixels_are_where_the_tag_changes_the_frame():
    frames = np.zeros((2, 4, 4, 3), np.uint8)
    untagged = frames.copy()
    untagged[0, 1, 2, 1] = 40          # a channel moved past the threshold
    untagged[1, 3, 3, 0] = 5           # under it
    got = expression_pixels(frames, untagged, 12)
    assert got.shape == (2, 4, 4) and got.sum() == 1 and got[0, 1, 2]


def test_the_data_is_seeded_and_carries_the_weights():
    lpm = add_expression(_donor())
    frames, z, emotion, pixels = expression_data(lpm, "train", range(940_000, 940_003), TINY)
    n = 3 * TINY.frames_per_session
    assert frames.shape == (n, lpm.cfg.frame_size, lpm.cfg.frame_size, 3)
    assert z.shape == (3, n, lpm.cfg.vae.latent_channels, lpm.cfg.latent_size,
                       lpm.cfg.latent_size)
    assert not torch.equal(z[0], z[2])                  # the other emotion's render differs
    assert emotion.shape == (n, lpm.cfg.emotion_dim)
    assert torch.allclose(emotion.sum(1), torch.ones(n), atol=1e-5)
    # A frame at rest has no expression pixels; a tagged one has some, on the face.
    assert pixels.shape == frames.shape[:3]
    tagged = (emotion[:, 1:].sum(1) > 0.3).numpy()
    assert tagged.any() and pixels[tagged].reshape(tagged.sum(), -1).sum(1).min() > 0
    assert pixels[emotion[:, 0].numpy() == 1.0].sum() == 0
    again = expression_data(lpm, "train", range(940_000, 940_003), TINY)
    assert np.array_equal(frames, again[0]) and torch.equal(emotion, again[2])
    assert np.array_equal(pixels, again[3])


def test_training_moves_only_the_decoder():
    donor = _donor()
    lpm, report = train_expression(donor, TINY, progress=False)
    assert lpm.cfg.vae.emotion_dim == lpm.cfg.emotion_dim and donor.vae.decoder.film is None
    theirs = donor.state_dict()
    moved = [k for k, v in lpm.state_dict().items()
             if not k.startswith("vae.decoder.film.") and not torch.equal(v, theirs[k])]
    assert moved and all(k.startswith("vae.decoder.") for k in moved)
    assert any(float(p.abs().max()) > 0 for p in lpm.vae.decoder.film.parameters())
    assert set(report["heldout"]) == {f"{w}psnr_{e}" for w in ("", "face_", "expression_")
                                      for e in ("tagged", "neutral", "shuffled")} \
        | {"expression_psnr_tagged_from_other"}


def test_it_learns_to_draw_the_tags_in_the_shipped_latent_space():
    """With the shipped VAE, a short training already draws the tag: held-out faces of
    never-seen identities decode closer to the truth with their own tags than with shuffled
    ones, and from the latent of another emotion's render the tag's expression comes out much
    closer than the plain decoder's. The shipped recipe's figures are in docs/training.md,
    session 21."""
    shipped = load_lpm("npc_runtime/weights/tiny", causal=True)[0]
    if shipped.cfg.vae.emotion_dim:
        cfg = shipped.cfg.replace(vae=dataclasses.replace(shipped.cfg.vae, emotion_dim=0))
        donor = LPM(cfg, causal=True)
        donor.load_state_dict({k: v for k, v in shipped.state_dict().items()
                               if not k.startswith("vae.decoder.film.")})
    else:
        donor = shipped
    cfg = dataclasses.replace(TINY, sessions=24, test_sessions=4, session_s=6.0,
                              frames_per_session=24, steps=250, batch=16)
    _, report = train_expression(donor, cfg, progress=False)
    h, before = report["heldout"], report["heldout_before"]
    # Measured (session 21, 2 threads): from another emotion's latent 12.45 -> 13.50 dB on the
    # expression's pixels; from the frames' own latents 19.88 -> 20.19 dB with their tags,
    # 20.11 with shuffled tags.
    assert h["expression_psnr_tagged_from_other"] > \
        before["expression_psnr_tagged_from_other"] + 0.5
    assert h["expression_psnr_tagged"] > before["expression_psnr_tagged"] + 0.1
    assert h["expression_psnr_tagged"] > h["expression_psnr_shuffled"]


def test_bad_inputs_are_refused():
    lpm = add_expression(_donor())
    with pytest.raises(ValueError, match="already has an expression decoder"):
        add_expression(lpm)
    with pytest.raises(ValueError, match="retag and mismatch in"):
        dataclasses.replace(TINY, retag=1.5)
    with pytest.raises(ValueError, match="retag and mismatch in"):
        dataclasses.replace(TINY, mismatch=-0.1)
    with pytest.raises(ValueError, match="expression_threshold in"):
        dataclasses.replace(TINY, expression_threshold=0)
    with pytest.raises(ValueError, match="counts >= 1"):
        dataclasses.replace(TINY, steps=0)


def test_the_command_writes_a_checkpoint_the_stream_loads(tmp_path, chain):
    from npc_runtime.cli import main

    out = tmp_path / "expression"
    assert main(["train", "expression", "--init", str(chain["online"][1]), "--out", str(out),
                 "--steps", "10", "--sessions", "2", "--no-progress"]) == 0
    cfg, _, info = read_meta(out)
    assert cfg.vae.emotion_dim == cfg.emotion_dim
    assert "read the emotion tags" in info["expression_decoder"]
    assert info["recipe"].endswith("-> expression")
    model = PerformanceModel.from_checkpoint(out)
    assert model.lpm.vae.decoder.film is not None
    assert model.describe()["info"]["expression_heldout"] == info["expression_heldout"]
