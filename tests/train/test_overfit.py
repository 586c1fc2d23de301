"""Training really learns: on one fixed session the losses fall well below their start."""

import json

import numpy as np
import pytest

from npc_runtime.train import stage_class
from npc_runtime.train.loop import train

from .conftest import smoke_config, with_data


def _losses(run, key="loss"):
    return [json.loads(x)[key] for x in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("stage, steps, lr", [("vae", 40, 3e-3), ("base", 30, 2e-3)])
def test_loss_decreases_on_a_tiny_overfit_case(tmp_path, stage, steps, lr):
    cfg = smoke_config(stage, steps=steps, lr=lr, warmup_steps=3, eval_every=1000,
                       ckpt_every_steps=1000)
    cfg = with_data(cfg, pool_sessions=1, refresh_every=10**9)
    train(cfg, tmp_path / stage, stage_class(stage), progress=False)
    loss = _losses(tmp_path / stage)
    first, last = np.mean(loss[:3]), np.mean(loss[-5:])
    assert last < 0.6 * first, (first, last)
