"""The Base LPM's auxiliary signals: motion weights, the performance head, the latent cache."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from npc_runtime.model.vae import VAE
from npc_runtime.train import stage_class
from npc_runtime.train.auxiliary import AUX_PARAMS, PerfHead, aux_targets, motion_weights
from npc_runtime.train.data import Sampler
from npc_runtime.train.flow import LatentCache, encode_latents
from npc_runtime.train.distributed import Dist
from npc_runtime.train.loop import _make_run, train
from npc_runtime.world.performance import NUM_PERF, P

from .conftest import smoke_config


def test_motion_weights_favour_what_moves_and_keep_the_loss_scale():
    x0 = torch.zeros(2, 8, 4, 6, 6)
    x0[0, ::2, :, 4, 2] = 1.0                 # clip 0: one position flickers (a mouth)
    w = motion_weights(x0, strength=2.0)
    assert w.shape == (2, 8, 1, 6, 6)
    assert torch.allclose(w.mean((1, 2, 3, 4)), torch.ones(2))
    assert w[0, 0, 0, 4, 2] > 2 * w[0, 0, 0, 0, 0]
    assert torch.allclose(w[1], torch.ones_like(w[1]))    # a still clip: plain MSE
    assert torch.equal(motion_weights(x0, 0.0), torch.ones_like(w))
    with pytest.raises(ValueError, match=">= 0"):
        motion_weights(x0, -1.0)


def test_perf_head_reads_per_frame_targets():
    head = PerfHead(32)
    assert head(torch.randn(2, 8, 16, 32)).shape == (2, 8, len(AUX_PARAMS))
    perf = torch.arange(NUM_PERF, dtype=torch.float32).expand(2, 8, NUM_PERF)
    targets = aux_targets(perf)
    assert targets[0, 0, AUX_PARAMS.index("jaw_open")] == P["jaw_open"]
    assert targets[0, 0, AUX_PARAMS.index("head_pitch")] == P["head_pitch"]


def test_latent_cache_equals_encoding_the_clip(tmp_path):
    cfg = smoke_config("base")
    mc = cfg.model_config()
    sampler = Sampler(cfg.data, mc, seed=0, max_position=64)
    vae = VAE(mc.vae).eval()
    cache = LatentCache(vae, size=1)
    for step in range(3):                     # size 1: evictions and re-encodes happen
        clip, sessions = sampler.clips_and_sessions(step, 0, 2, 2, 2)
        assert clip.perf.shape == (*clip.frames.shape[:2], NUM_PERF)
        got = cache.clip(clip, sessions, clip.frames.shape[1])
        want = encode_latents(vae, clip.frames)
        assert torch.allclose(got, want, atol=1e-5)
    assert len(cache._cache) == 1


def test_base_stage_with_aux_logs_both_losses_and_exports_only_the_lpm(tmp_path):
    cfg = smoke_config("base", steps=3)
    cfg = cfg.replace(base=dataclasses.replace(cfg.base, aux_weight=1.0, motion_weight=2.0))
    train(cfg, tmp_path / "aux", stage_class("base"), progress=False)
    lines = [json.loads(x) for x in (tmp_path / "aux/metrics.jsonl").read_text().splitlines()]
    assert all("aux" in x and "flow" in x and np.isfinite(x["aux"]) for x in lines)
    from safetensors.torch import load_file
    keys = load_file(str(tmp_path / "aux/export/model.safetensors")).keys()
    assert not any("head" in k and k.startswith("perf") for k in keys)
    assert all(k.split(".")[0] in ("vae", "audio", "dit") for k in keys)
    # Fine-tuning from that export starts from its DiT weights.
    ft = cfg.replace(base=dataclasses.replace(cfg.base, init_checkpoint=str(tmp_path / "aux")),
                     steps=1)
    s = stage_class("base")(_make_run(ft, tmp_path / "ft", Dist.from_env("cpu")))
    donor = load_file(str(tmp_path / "aux/export/model.safetensors"))
    for k, v in s.lpm.dit.state_dict().items():
        assert torch.equal(v, donor["dit." + k]), k


def test_base_init_across_a_latent_space_change_keeps_all_but_latent_layers(tmp_path):
    """A Base trained on another VAE (other latent channels, patch size) hands over its audio
    encoder and every same-shape DiT weight; patch embedding and output head start fresh;
    anything else differing in the model config is refused."""
    cfg = smoke_config("base", steps=1)
    train(cfg, tmp_path / "old", stage_class("base"), progress=False)
    model = cfg.model_config()
    # 4x instead of 8x downsampling, twice the channels, patches twice as wide: the same
    # tokens per frame (the session-4 change of the tiny model, in miniature).
    wider = {"vae": {"latent_channels": model.vae.latent_channels * 2,
                     "channels": list(model.vae.channels[:-1])},
             "dit": {"patch": model.dit.patch * 2}}
    merged = {k: {**v, **wider.get(k, {})} if isinstance(v, dict) else v
              for k, v in cfg.model_overrides.items()}
    new = cfg.replace(model_overrides=merged,
                      base=dataclasses.replace(cfg.base, init_checkpoint=str(tmp_path / "old")))
    s = stage_class("base")(_make_run(new, tmp_path / "new", Dist.from_env("cpu")))
    from safetensors.torch import load_file
    donor = load_file(str(tmp_path / "old/export/model.safetensors"))
    fresh = set(s.init_info["reinitialised"])
    assert fresh == {"patch_embed.weight", "final_out.weight", "final_out.bias"}
    for k, v in s.lpm.dit.state_dict().items():
        if k in fresh:
            assert v.shape != donor["dit." + k].shape, k
        else:
            assert torch.equal(v, donor["dit." + k]), k
    for k, v in s.lpm.audio.state_dict().items():
        assert torch.equal(v, donor["audio." + k]), k
    deeper = cfg.replace(model_overrides={**merged, "dit": {**merged["dit"],
                                                            "depth": model.dit.depth + 1}},
                         base=new.base)
    with pytest.raises(ValueError, match="only the VAE, the DiT patch size and audio.frame_radius"):
        stage_class("base")(_make_run(deeper, tmp_path / "bad", Dist.from_env("cpu")))


def test_base_init_from_a_chunk_window_donor_adds_frame_aligned_audio(tmp_path):
    """A Base trained with whole-window audio (frame_radius -1, sessions 1-5) hands every
    weight to a frame-aligned one; only the frame-audio positions start fresh (at zero)."""
    cfg = smoke_config("base", steps=1)
    overrides = cfg.model_overrides
    old = cfg.replace(model_overrides={**overrides,
                                       "audio": {**overrides["audio"], "frame_radius": -1}})
    train(old, tmp_path / "old", stage_class("base"), progress=False)
    new = cfg.replace(base=dataclasses.replace(cfg.base, init_checkpoint=str(tmp_path / "old")))
    assert new.model_config().audio.frame_radius == 2
    s = stage_class("base")(_make_run(new, tmp_path / "new", Dist.from_env("cpu")))
    from safetensors.torch import load_file
    donor = load_file(str(tmp_path / "old/export/model.safetensors"))
    assert s.init_info["reinitialised"] == ["frame_audio_pos"]
    assert not s.lpm.dit.frame_audio_pos.any()
    for k, v in s.lpm.dit.state_dict().items():
        if k != "frame_audio_pos":
            assert torch.equal(v, donor["dit." + k]), k


def test_negative_aux_weights_are_rejected():
    cfg = smoke_config("base")
    with pytest.raises(ValueError, match="aux_weight"):
        cfg.replace(base=dataclasses.replace(cfg.base, aux_weight=-1.0))


def test_online_stage_with_motion_weighted_ode_loss(tmp_path):
    cfg = smoke_config("online", steps=2)
    cfg = cfg.replace(online=dataclasses.replace(cfg.online, motion_weight=2.0, ode_steps=2))
    train(cfg, tmp_path / "online", stage_class("online"), progress=False)
    lines = [json.loads(x) for x in (tmp_path / "online/metrics.jsonl").read_text().splitlines()]
    assert lines and all(np.isfinite(x["loss_ode"]) and x["phase"] == 0.0 for x in lines)
    with pytest.raises(ValueError, match="online.motion_weight"):
        cfg.replace(online=dataclasses.replace(cfg.online, motion_weight=-0.5))
