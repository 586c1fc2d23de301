import pytest
import torch

from npc_runtime.config import PRESETS, load_config, preset, save_config
from npc_runtime.model.lpm import LPM


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_roundtrip_through_yaml(name, tmp_path):
    cfg = preset(name)
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg


def test_lpm_17b_counts_17_billion_parameters_on_meta():
    with torch.device("meta"):
        model = LPM(preset("lpm-17b"), causal=False)
    n = sum(p.numel() for p in model.parameters())
    assert abs(n - 17e9) <= 0.05 * 17e9, n


def test_tiny_dit_is_small_enough_for_a_cpu():
    model = LPM(preset("tiny"))
    n = sum(p.numel() for p in model.dit.parameters())
    assert 3e6 <= n <= 7e6


def test_bad_yaml_is_rejected_with_the_key_named(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: tiny\ndit: {dim: 256, depht: 4}\n")
    with pytest.raises(ValueError, match="depht"):
        load_config(p)
    p.write_text("name: tiny\nframe_size: 100\n")
    with pytest.raises(ValueError, match="multiple of"):
        load_config(p)
    with pytest.raises(ValueError, match="unknown model preset 'huge'"):
        preset("huge")
