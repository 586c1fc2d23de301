"""Shared helpers: seconds-long stage configs on the micro model (the `--smoke` settings)."""

import dataclasses

import pytest
import torch

from npc_runtime.train import TrainConfig, smoke


def smoke_config(stage: str, **changes) -> TrainConfig:
    cfg = smoke(TrainConfig(stage=stage))
    return cfg.replace(threads=1, device="cpu", **changes)


def with_data(cfg: TrainConfig, **data) -> TrainConfig:
    return cfg.replace(data=dataclasses.replace(cfg.data, **data))


@pytest.fixture(autouse=True)
def _threads():
    """Training sets torch's thread count; restore it for the rest of the suite."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def chain(tmp_path_factory):
    """vae -> base -> online smoke runs, each starting from the previous export."""
    from npc_runtime.train import stage_class
    from npc_runtime.train.loop import train

    root = tmp_path_factory.mktemp("chain")
    out = {}
    cfg = smoke_config("vae", steps=4)
    out["vae"] = (train(cfg, root / "vae", stage_class("vae"), progress=False), root / "vae")
    base = smoke_config("base", steps=4)
    base = base.replace(base=dataclasses.replace(base.base, vae_checkpoint=str(root / "vae")))
    out["base"] = (train(base, root / "base", stage_class("base"), progress=False), root / "base")
    online = smoke_config("online", steps=4)
    online = online.replace(online=dataclasses.replace(online.online, ode_steps=2,
                                                       base_checkpoint=str(root / "base")))
    out["online"] = (train(online, root / "online", stage_class("online"), progress=False),
                     root / "online")
    return out
