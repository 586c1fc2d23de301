"""Exact resume: N steps straight == N/2, stop, resume, N/2 (bit-identical on CPU)."""

import dataclasses

import pytest
import torch

from npc_runtime.train import stage_class
from npc_runtime.train.loop import latest_checkpoint, train

from .conftest import smoke_config


def _final_state(run):
    state = torch.load(latest_checkpoint(run), weights_only=False)
    return state["step"], state["modules"], state["optimizers"]


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], dict):
            _assert_same(a[k], b[k])
        elif isinstance(a[k], torch.Tensor):
            assert torch.equal(a[k], b[k]), k
        elif isinstance(a[k], (list, tuple)) and a[k] and isinstance(a[k][0], dict):
            for x, y in zip(a[k], b[k]):
                _assert_same(x, y)
        else:
            assert a[k] == b[k], k


@pytest.mark.parametrize("stage", ["base", "base-aux", "online", "online-reader"])
def test_resume_is_bit_identical(tmp_path, stage, micro_reader):
    aux = stage == "base-aux"
    reader = stage == "online-reader"
    stage = stage.removesuffix("-aux").removesuffix("-reader")
    cfg = smoke_config(stage, steps=4, eval_every=100, ckpt_every_steps=100)
    if aux:                     # the performance head and its optimiser state resume too
        cfg = cfg.replace(base=dataclasses.replace(cfg.base, aux_weight=1.0, motion_weight=2.0))
    if stage == "online":       # the resume point sits on the phase boundary (a) -> (b)
        cfg = cfg.replace(online=dataclasses.replace(cfg.online, ode_steps=2))
    if reader:                  # the resume point is where the reader joins the loss
        cfg = cfg.replace(online=dataclasses.replace(
            cfg.online, ode_steps=4, perf_weight=1.0, perf_start=2,
            reader_checkpoint=str(micro_reader)))
    cls = stage_class(stage)
    train(cfg, tmp_path / "straight", cls, progress=False)
    train(cfg, tmp_path / "split", cls, progress=False, stop_at=2)
    assert _final_state(tmp_path / "split")[0] == 2
    summary = train(cfg, tmp_path / "split", cls, resume=True, progress=False)
    assert summary["step"] == 4
    s1, m1, o1 = _final_state(tmp_path / "straight")
    s2, m2, o2 = _final_state(tmp_path / "split")
    assert s1 == s2 == 4
    _assert_same(m1, m2)
    _assert_same(o1, o2)
