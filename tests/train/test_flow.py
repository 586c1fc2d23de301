"""Classifier-free guidance of the teacher: the null branch and the guided velocity."""

import dataclasses
import json

import numpy as np
import torch

from npc_runtime.model.lpm import LPM
from npc_runtime.train import stage_class
from npc_runtime.train.data import Sampler
from npc_runtime.train.flow import Conditioning, guided
from npc_runtime.train.loop import train

from .conftest import smoke_config


def _clip_and_lpm():
    cfg = smoke_config("base")
    mc = cfg.model_config()
    torch.manual_seed(0)
    lpm = LPM(mc, causal=False).eval()
    with torch.no_grad():                     # leave the zero-initialised (adaLN-zero) start
        for p in lpm.parameters():
            p.add_(0.05 * torch.randn_like(p))
    clip = Sampler(cfg.data, mc, seed=0, max_position=64).clips(0, 0, 2, 2, 2)
    b, f = clip.frames.shape[:2]
    z = torch.randn(b, f, mc.vae.latent_channels, mc.latent_size, mc.latent_size)
    return lpm, clip, z, torch.full((b, f), 0.6)


@torch.no_grad()
def test_guided_velocity_is_the_cfg_combination_of_conditional_and_null():
    lpm, clip, z, t = _clip_and_lpm()
    cond = Conditioning(lpm, clip)
    null = cond.null(lpm, clip)
    v_c = lpm.velocity(z, t, cond.ctx, cond.sink)
    v_u = lpm.velocity(z, t, null.ctx, null.sink)
    # the null drops audio and emotion but keeps the identity: the branches differ
    assert not torch.allclose(v_c, v_u, atol=1e-6)
    assert null.sink is cond.sink
    assert torch.equal(guided(lpm, cond, null, 1.0)(z, t), v_c)
    assert torch.equal(guided(lpm, cond, None, 3.0)(z, t), v_c)
    assert torch.allclose(guided(lpm, cond, null, 2.0)(z, t), 2 * v_c - v_u, atol=1e-5)


def test_online_stage_distils_a_guided_teacher(tmp_path):
    cfg = smoke_config("online", steps=2)
    cfg = cfg.replace(online=dataclasses.replace(cfg.online, guidance=2.0, ode_steps=2))
    train(cfg, tmp_path / "online", stage_class("online"), progress=False)
    lines = [json.loads(x) for x in (tmp_path / "online/metrics.jsonl").read_text().splitlines()]
    assert lines and all(np.isfinite(x["loss_ode"]) for x in lines)
