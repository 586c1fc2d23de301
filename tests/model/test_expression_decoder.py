"""The expression decoder (`vae.emotion_dim`, model/vae.py): it starts as the plain decoder, a
neutral frame is never touched, each frame reads only its own weights, and the stream hands it
the requests' weights without changing the latents it samples."""

import dataclasses

import numpy as np
import pytest
import torch

from npc_runtime.config import VAEConfig
from npc_runtime.model.vae import VAE
from npc_runtime.pipeline import ChunkRequest, PerformanceModel, slice_audio

from .conftest import _randomize_zero_inits, micro_config, random_emotion, random_refs

E = 7


def _pair() -> tuple[VAE, VAE]:
    """A plain VAE and an expression VAE holding the same weights (FiLM as initialised)."""
    torch.manual_seed(0)
    plain = VAE(VAEConfig(channels=(8, 16)))
    expr = VAE(VAEConfig(channels=(8, 16), emotion_dim=E))
    missing = expr.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("decoder.film.") for k in missing)
    return plain, expr


def _live(vae: VAE) -> VAE:
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in vae.decoder.film.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return vae


def _neutral(n: int) -> torch.Tensor:
    e = torch.zeros(n, E)
    e[:, 0] = 1.0
    return e


@torch.no_grad()
def test_it_starts_as_the_plain_decoder_and_neutral_is_never_touched():
    plain, expr = _pair()
    assert plain.decoder.film is None
    z = torch.randn(5, 4, 8, 8)
    emotion = torch.rand(5, E)
    assert torch.equal(expr.decode(z, emotion), plain.decode(z))      # FiLM starts at zero
    assert torch.equal(plain.decode(z, emotion), plain.decode(z))     # a plain one ignores tags
    _live(expr)
    assert torch.equal(expr.decode(z, _neutral(5)), plain.decode(z))  # no bias: neutral = plain
    assert torch.equal(expr.decode(z), plain.decode(z))               # None = neutral
    assert not torch.allclose(expr.decode(z, emotion), plain.decode(z), atol=1e-3)


@torch.no_grad()
def test_each_frame_reads_only_its_own_weights():
    _, expr = _pair()
    _live(expr)
    z = torch.randn(4, 4, 8, 8)
    emotion = torch.rand(4, E)
    whole = expr.decode(z, emotion)
    for i in range(4):
        one = expr.decode(z[i:i + 1], emotion[i:i + 1])
        assert torch.allclose(one, whole[i:i + 1], atol=1e-5)
    other = emotion.clone()
    other[2] = torch.rand(E)
    changed = (expr.decode(z, other) != whole).flatten(1).any(1)
    assert changed.tolist() == [False, False, True, False]


def test_bad_inputs_are_refused():
    _, expr = _pair()
    with pytest.raises(ValueError, match=r"emotion must be \(3, 7\)"):
        expr.decode(torch.randn(3, 4, 8, 8), torch.rand(3, E - 1))
    with pytest.raises(ValueError, match="vae.emotion_dim must be 0"):
        micro_config().replace(vae=VAEConfig(channels=(8, 8, 8), emotion_dim=3))


@torch.inference_mode()
def test_the_stream_decodes_with_the_requests_weights_and_samples_the_same_latents():
    cfg = micro_config()
    expr_cfg = cfg.replace(vae=dataclasses.replace(cfg.vae, emotion_dim=cfg.emotion_dim))
    plain = PerformanceModel.from_config(cfg, seed=0)
    _randomize_zero_inits(plain)
    expr = PerformanceModel.from_config(expr_cfg, seed=0)
    expr.lpm.load_state_dict(plain.lpm.state_dict(), strict=False)
    _live(expr.lpm.vae)
    expr._fingerprint = None
    rng = np.random.default_rng(0)
    c, n_chunks = cfg.stream.chunk_frames, 3
    n = n_chunks * c
    refs = random_refs(rng, 2, cfg.frame_size)
    speak = 0.1 * rng.standard_normal(n * cfg.samples_per_frame).astype(np.float32)
    listen = np.zeros_like(speak)
    emotion = random_emotion(rng, n, cfg.emotion_dim)
    emotion[:c] = 0.0
    emotion[:c, 0] = 1.0                                  # the first chunk neutral

    def stream(model, latents_only):
        sid = model.open_session(model.encode_identity(refs), 3)
        out = []
        for k in range(n_chunks):
            start, end = model.audio_span(k)
            req = ChunkRequest(sid, slice_audio(speak, start, end),
                               slice_audio(listen, start, end), emotion[k * c:(k + 1) * c])
            out.append(model.step_latents([req])[0] if latents_only else model.step([req])[0])
        model.close_session(sid)
        return out

    z_plain, z_expr = stream(plain, True), stream(expr, True)
    for a, b in zip(z_plain, z_expr):
        assert torch.equal(a, b)                         # the decoder never feeds the DiT
    frames_plain, frames_expr = stream(plain, False), stream(expr, False)
    for k, (z, got) in enumerate(zip(z_expr, frames_expr)):
        want = expr.decode(z[None], torch.from_numpy(emotion[k * c:(k + 1) * c])[None])[0]
        assert np.array_equal(got, want)
    assert np.array_equal(frames_plain[0], frames_expr[0])   # neutral chunk: plain pixels
    assert not np.array_equal(frames_plain[1], frames_expr[1])
