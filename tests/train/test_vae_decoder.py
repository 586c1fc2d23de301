"""Decoder-only VAE fine-tune: the latent space stays exact, and `ship --vae` swaps decoders."""

import dataclasses

import pytest
import torch
from safetensors.torch import load_file

from npc_runtime.checkpoint import read_meta
from npc_runtime.cli import main
from npc_runtime.train import stage_class
from npc_runtime.train.loop import train
from npc_runtime.train.config import train_config_from_dict
from npc_runtime.train.vae import edge_weights, window_weights

from .conftest import smoke_config


def test_edge_weights_favour_lines_and_keep_the_scale():
    x = torch.zeros(2, 3, 16, 16)
    x[0, :, 8, :] = 1.0                                   # image 0: one bright line
    w = edge_weights(x, 2.0)
    assert w.shape == (2, 1, 16, 16)
    assert torch.allclose(w.mean((1, 2, 3)), torch.ones(2))
    assert w[0, 0, 7, 3] > 2 * w[0, 0, 2, 3]              # at the line vs flat background
    assert torch.allclose(w[1], torch.ones_like(w[1]))    # a flat image: plain L1


def test_decoder_only_keeps_the_latent_space_and_ships_into_an_lpm(chain, tmp_path):
    _, vae_run = chain["vae"]
    _, online = chain["online"]
    cfg = smoke_config("vae", steps=3)
    cfg = cfg.replace(vae=dataclasses.replace(cfg.vae, init_checkpoint=str(vae_run),
                                              train_encoder=False, edge_weight=2.0))
    train(cfg, tmp_path / "dec", stage_class("vae"), progress=False)
    before = load_file(str(vae_run / "export/model.safetensors"))
    after = load_file(str(tmp_path / "dec/export/model.safetensors"))
    vae_keys = [k for k in before if k.startswith("vae.")]
    for k in vae_keys:
        if k.startswith("vae.decoder."):
            continue
        assert torch.equal(before[k], after[k]), k        # encoder + latent_scale: exact
    assert any(not torch.equal(before[k], after[k]) for k in vae_keys
               if k.startswith("vae.decoder."))
    _, _, info = read_meta(tmp_path / "dec/export")
    assert info["vae_decoder_only"] is True

    dest = tmp_path / "shipped"
    assert main(["train", "ship", str(online / "export"), "--dest", str(dest),
                 "--vae", str(tmp_path / "dec")]) == 0
    shipped = load_file(str(dest / "model.safetensors"))
    original = load_file(str(online / "export/model.safetensors"))
    for k in shipped:
        want = after[k] if k.startswith("vae.decoder.") else original[k]
        assert torch.equal(shipped[k], want), k
    _, trained, sinfo = read_meta(dest)
    assert trained is True and "decoder-only" in sinfo["vae_decoder"]

    # A VAE with another encoder (another latent space) is refused; nothing is written.
    other = smoke_config("vae", steps=1, seed=99)
    train(other, tmp_path / "other", stage_class("vae"), progress=False)
    with pytest.raises(SystemExit, match="latent_scale differ"):
        main(["train", "ship", str(online / "export"), "--dest", str(tmp_path / "never"),
              "--vae", str(tmp_path / "other")])
    assert not (tmp_path / "never").exists()


def test_decoder_only_needs_an_encoder_to_keep():
    cfg = smoke_config("vae")
    with pytest.raises(ValueError, match="init_checkpoint"):
        cfg.replace(vae=dataclasses.replace(cfg.vae, train_encoder=False))


def test_face_window_weights_favour_the_face_and_keep_the_scale():
    w = window_weights((2, 3, 16, 16), (-0.5, 0.5, -0.5, 0.0), 4.0)
    assert w.shape == (1, 1, 16, 16)
    assert torch.isclose(w.mean(), torch.tensor(1.0))
    # Rows 4..7 (y in [-0.5, 0]) and columns 4..11 (x in [-0.5, 0.5]) are the window.
    assert torch.isclose(w[0, 0, 5, 8] / w[0, 0, 12, 8], torch.tensor(4.0))
    assert torch.isclose(w[0, 0, 5, 2], w[0, 0, 12, 8])
    assert int((w > 1.0).sum()) == 4 * 8
    assert torch.equal(window_weights((1, 3, 8, 8), (-1, 1, -1, 1), 3.0),
                       torch.ones(1, 1, 8, 8))


def test_face_weighted_vae_step_trains_and_bad_windows_are_refused(tmp_path):
    cfg = smoke_config("vae", steps=2)
    cfg = cfg.replace(vae=dataclasses.replace(cfg.vae, face_weight=3.0))
    train(cfg, tmp_path / "face", stage_class("vae"), progress=False)
    assert (tmp_path / "face/export/model.safetensors").exists()
    for bad in ({"face_weight": 0.5}, {"face_window": (0.5, -0.5, -1.0, 1.0)},
                {"face_window": (-2.0, 0.5, -1.0, 1.0)}):
        with pytest.raises(ValueError, match="face_"):
            cfg.replace(vae=dataclasses.replace(cfg.vae, **bad))
    with pytest.raises(ValueError, match="face_window"):
        train_config_from_dict({"stage": "vae", "vae": {"face_window": [0, 1]}})


def test_an_expression_decoder_is_not_swapped_into_a_plain_vae():
    from npc_runtime.model.vae import VAE
    from npc_runtime.train.vae import swap_decoder

    plain_cfg = smoke_config("vae").model_config().vae
    plain = VAE(plain_cfg)
    expr = VAE(dataclasses.replace(plain_cfg, emotion_dim=7))
    before = {k: v.clone() for k, v in plain.state_dict().items()}
    with pytest.raises(ValueError, match="reads emotion tags"):
        swap_decoder(plain, expr)
    assert all(torch.equal(v, before[k]) for k, v in plain.state_dict().items())
