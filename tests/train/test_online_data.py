"""The Online stage's truth term (`online.data_weight`) and a teacher-free phase (a)."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from npc_runtime.train import stage_class
from npc_runtime.train.distributed import Dist
from npc_runtime.train.flow import encode_latents
from npc_runtime.train.loop import _make_run, train
from npc_runtime.train.online import OnlineStage, Student

from .conftest import smoke_config


def _online(**online):
    cfg = smoke_config("online", steps=2)
    return cfg.replace(online=dataclasses.replace(cfg.online, ode_steps=2, **online))


def _stage(tmp_path, **online) -> OnlineStage:
    cfg = _online(**online)
    return OnlineStage(_make_run(cfg, tmp_path, Dist.from_env("cpu")))


def test_data_batch_is_the_truth_noised_to_student_grid_times(tmp_path):
    stage = _stage(tmp_path, data_weight=1.0)
    clip = stage.run.sampler.clips(0, 0, 2, stage.run.cfg.online.clip_chunks, 2)
    shape = stage.latent_shape(clip)
    x0, noisy, t, target = stage.data_batch(clip, shape, step=0)
    with torch.no_grad():
        assert torch.equal(x0, encode_latents(stage.student.vae, clip.frames))
    c = stage.run.model_cfg.stream.chunk_frames
    grid = torch.tensor(stage.grid[:-1])
    assert bool(torch.isin(t, grid).all())                       # only the sampler's times
    assert bool((t.view(t.shape[0], -1, c) == t.view(t.shape[0], -1, c)[..., :1]).all())
    tt = t[..., None, None, None]
    # the straight path: x_t = x0 + t * (eps - x0), so one Euler step of the target lands on x0
    assert torch.allclose(noisy, x0 + tt * target, atol=1e-5)
    assert torch.allclose(noisy - tt * target, x0, atol=1e-5)
    again = stage.data_batch(clip, shape, step=0)
    assert all(torch.equal(a, b) for a, b in zip((x0, noisy, t, target), again))  # seeded


@torch.no_grad()
def test_one_forward_of_both_parts_equals_each_part_alone(tmp_path):
    stage = _stage(tmp_path, data_weight=1.0)
    clip = stage.run.sampler.clips(0, 0, 2, stage.run.cfg.online.clip_chunks, 2)
    shape = stage.latent_shape(clip)
    student = Student(stage.student, stage.grid).eval()
    for p in stage.student.parameters():      # leave the zero-initialised (adaLN-zero) start
        p.add_(0.05 * torch.randn_like(p))
    a = stage.data_batch(clip, shape, step=0)[:3]
    b = stage.data_batch(clip, shape, step=1)[:3]
    both = student(clip.cat(clip), tf=tuple(torch.cat([x, y]) for x, y in zip(a, b)))["v_tf"]
    alone = [student(clip, tf=a)["v_tf"], student(clip, tf=b)["v_tf"]]
    assert torch.allclose(both, torch.cat(alone), atol=1e-5)
    assert not torch.allclose(alone[0], alone[1], atol=1e-4)


def test_truth_only_phase_never_samples_the_teacher(tmp_path, monkeypatch):
    in_step, calls = [False], []
    ode_pairs, train_step = OnlineStage.ode_pairs, OnlineStage.train_step

    def counting_pairs(self, clip, noise):
        calls.append(in_step[0])
        return ode_pairs(self, clip, noise)

    def marked_step(self, step):
        in_step[0] = True
        try:
            return train_step(self, step)
        finally:
            in_step[0] = False

    monkeypatch.setattr(OnlineStage, "ode_pairs", counting_pairs)
    monkeypatch.setattr(OnlineStage, "train_step", marked_step)
    train(_online(ode_weight_a=0.0, data_weight=1.0), tmp_path / "run", stage_class("online"),
          progress=False)
    lines = [json.loads(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert lines and all("loss_data" in x and "loss_ode" not in x for x in lines)
    assert calls and not any(calls)   # only the evaluation compared with the teacher


def test_both_parts_are_logged_when_the_truth_joins_the_teacher(tmp_path):
    cfg = _online(data_weight=0.5)
    train(cfg, tmp_path / "run", stage_class("online"), progress=False)
    lines = [json.loads(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    # (the smoke teacher and student both start at zero velocity: the ODE loss may be ~0)
    assert lines and all(np.isfinite(x["loss_ode"]) and x["loss_data"] > 0 for x in lines)


def test_weights_are_checked():
    with pytest.raises(ValueError, match="must be >= 0"):
        _online(data_weight=-1.0)
    with pytest.raises(ValueError, match="no loss"):
        _online(ode_weight_a=0.0, data_weight=0.0)
