"""Frame-aligned audio: each frame cross-attends to its own audio token and r either side."""

import dataclasses

import pytest
import torch

from npc_runtime.config import AudioConfig, load_config, save_config
from npc_runtime.model.dit import LPMDiT

from .conftest import micro_config


def _dit(radius: int) -> LPMDiT:
    cfg = micro_config()
    cfg = cfg.replace(audio=dataclasses.replace(cfg.audio, frame_radius=radius))
    torch.manual_seed(0)
    dit = LPMDiT(cfg)
    with torch.no_grad():                       # zero-initialised paths live (see conftest)
        for name, p in dit.named_parameters():
            if "adaLN" in name or "final_" in name or "frame_audio_pos" in name:
                p.normal_(0, 0.05)
    return dit


def test_each_frame_gets_its_own_window_of_the_chunk_tokens():
    dit = _dit(radius=2)
    cfg = dit.cfg
    c, h, r = cfg.stream.chunk_frames, cfg.audio.history_frames, 2
    tokens = torch.randn(2, 3, cfg.audio_window_frames, cfg.audio.dim)
    framed = dit.frame_audio(tokens)
    assert framed.shape == (2, 3 * c, 2 * r + 1, cfg.audio.dim)
    for chunk in range(3):
        for j in range(c):
            own = tokens[:, chunk, h + j - r:h + j + r + 1] + dit.frame_audio_pos
            assert torch.equal(framed[:, chunk * c + j], own)
    # Radius -1 keeps the chunk windows (the layout of checkpoints from before session 6).
    assert torch.equal(_dit(radius=-1).frame_audio(tokens), tokens)
    assert "frame_audio_pos" not in dict(_dit(radius=-1).named_parameters())


def test_a_frame_hears_only_its_window_in_a_block():
    """Perturbing the audio of frame k changes block outputs of frame k only (self-attention
    mixes frames before the cross-attention, so the outputs of other frames stay exact)."""
    dit = _dit(radius=1)
    cfg = dit.cfg
    b, f, t, d = 1, 2 * cfg.stream.chunk_frames, cfg.tokens_per_frame, cfg.dit.dim
    x, cond = torch.randn(b, f, t, d), torch.randn(b, f, d)
    audio = dit.frame_audio(torch.randn(b, 2, cfg.audio_window_frames, cfg.audio.dim))

    def attend(layer, q, k, v):
        return torch.nn.functional.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)

    block = dit.blocks[0]
    with torch.no_grad():
        ref = block(x, cond, audio, attend, None)
        for k in (0, 5):
            bumped = audio.clone()
            bumped[:, k] += 1.0
            out = block(x, cond, bumped, attend, None)
            changed = (out - ref).abs().amax(dim=(0, 2, 3)) > 1e-6
            assert changed.tolist() == [i == k for i in range(f)]


def test_frame_radius_is_validated_and_old_configs_load_as_whole_window(tmp_path):
    cfg = micro_config()
    for bad in (-2, cfg.audio.lookahead_frames + 1):
        with pytest.raises(ValueError, match="frame_radius"):
            cfg.replace(audio=AudioConfig(dim=32, layers=1, heads=2, frame_radius=bad))
    # A model.yaml written before frame_radius existed (no key) loads with whole windows.
    save_config(cfg, tmp_path / "m.yaml")
    text = (tmp_path / "m.yaml").read_text()
    assert "frame_radius: 2" in text
    old = text.replace("  frame_radius: 2\n", "")
    assert "frame_radius" not in old
    (tmp_path / "m.yaml").write_text(old)
    assert load_config(tmp_path / "m.yaml").audio.frame_radius == -1


@pytest.mark.parametrize("latent_channels", [4, 8])
def test_output_head_matches_latent_channels_whatever_the_chunk_length(latent_channels):
    # A regression: frame-aligned audio once reused the name of the latent channel count for
    # the chunk length, so only models with latent_channels == chunk_frames (tiny: 4 and 4)
    # got a correctly sized head; `base` (8 latent channels) could not unpatchify.
    cfg = micro_config()
    cfg = cfg.replace(vae=dataclasses.replace(cfg.vae, latent_channels=latent_channels))
    dit = LPMDiT(cfg)
    p = cfg.dit.patch
    assert dit.final_out.out_features == p * p * latent_channels
    assert dit.patch_embed.in_features == p * p * latent_channels
    z = torch.randn(1, cfg.stream.chunk_frames, latent_channels, cfg.latent_size,
                    cfg.latent_size)
    assert dit.unpatchify(dit.final_out(torch.zeros(1, z.shape[1], cfg.tokens_per_frame,
                                                    cfg.dit.dim))).shape == z.shape
