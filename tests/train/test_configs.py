"""Every training config in the repository loads and validates (a recipe that cannot even be
read is a broken recipe)."""

from pathlib import Path

import pytest

from npc_runtime.train import STAGES, load_train_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs" / "train").glob("*.yaml"))


def test_there_are_configs():
    assert len(CONFIGS) >= 3


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads(path):
    cfg = load_train_config(path)
    assert cfg.stage in STAGES
    assert path.stem.split("_")[0] == cfg.stage     # vae_*.yaml is a VAE config, and so on
