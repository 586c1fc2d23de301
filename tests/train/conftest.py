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


@pytest.fixture(scope="session")
def micro_reader(tmp_path_factory):
    """A latent reader for the micro model's (untrained) VAE: 96 renders, two epochs. It reads
    next to nothing (a random VAE's 4x4 latents); the plumbing tests that use it record a trust
    of 1 for every parameter instead of its held-out R², so that the reader term is on."""
    from npc_runtime.model.lpm import LPM
    from npc_runtime.train.reader import ReaderTrainConfig, save_reader, train_reader

    mc = smoke_config("online").model_config()
    torch.manual_seed(0)
    cfg = ReaderTrainConfig(train_frames=96, test_frames=12, epochs=2, batch=16, width=8)
    reader, report = train_reader(LPM(mc).vae, mc.frame_size, cfg, progress=False)
    out = tmp_path_factory.mktemp("reader")
    save_reader(reader, out, {**report, "r2_heldout": {k: 1.0 for k in report["r2_heldout"]}})
    return out
