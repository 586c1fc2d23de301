"""The Online LPM stream through the paged cache equals the masked whole-sequence model."""

import numpy as np
import pytest
import torch

from npc_runtime.model.audio import chunk_windows
from npc_runtime.pipeline import ChunkRequest, PerformanceModel, slice_audio
from npc_runtime.sampler import sample_euler

from .conftest import _randomize_zero_inits, micro_config, random_emotion, random_refs


def _stream(model: PerformanceModel, refs, speak, listen, emotion, n_chunks, seed=7):
    """Stream n_chunks through one session -> clean latents (n_chunks, C, c, h, w)."""
    c = model.chunk_frames
    sid = model.open_session(model.encode_identity(refs), seed)
    out = []
    for k in range(n_chunks):
        start, end = model.audio_span(k)
        req = ChunkRequest(sid, slice_audio(speak, start, end), slice_audio(listen, start, end),
                           emotion[k * c:(k + 1) * c])
        out.append(model.step_latents([req])[0])
    model.close_session(sid)
    return torch.stack(out)


def _inputs(model, rng, n_chunks):
    cfg = model.cfg
    samples = n_chunks * cfg.stream.chunk_frames * cfg.samples_per_frame
    speak = rng.standard_normal(samples).astype(np.float32) * 0.3
    listen = rng.standard_normal(samples).astype(np.float32) * 0.3
    emotion = random_emotion(rng, n_chunks * cfg.stream.chunk_frames, cfg.emotion_dim)
    return random_refs(rng, 2, cfg.frame_size), speak, listen, emotion


def _whole_sequence_context(model, speak, listen, emotion, n_chunks):
    cfg, lpm = model.cfg, model.lpm
    f = n_chunks * cfg.stream.chunk_frames
    sp = chunk_windows(cfg, torch.from_numpy(speak)[None], n_chunks)
    li = chunk_windows(cfg, torch.from_numpy(listen)[None], n_chunks)
    return lpm.context(sp, li, torch.from_numpy(emotion[:f])[None], torch.arange(f)[None])


@torch.inference_mode()
def test_stream_equals_whole_sequence_with_block_causal_mask(micro_model, rng):
    """Chunk by chunk through the cache == for every chunk, one masked forward over the whole
    sequence so far (clean past chunks at t=0, the current chunk noisy), same noise."""
    model, cfg, lpm = micro_model, micro_model.cfg, micro_model.lpm
    n_chunks = 7                      # > window + 1: the ring wraps several times
    refs, speak, listen, emotion = _inputs(model, rng, n_chunks)
    streamed = _stream(model, refs, speak, listen, emotion, n_chunks)

    sink = lpm.encode_identity(model.references_to_tensor(refs))
    gen = torch.Generator().manual_seed(7)
    c = cfg.stream.chunk_frames
    shape = (1, c, cfg.vae.latent_channels, cfg.latent_size, cfg.latent_size)
    clean: list[torch.Tensor] = []
    for k in range(n_chunks):
        ctx = _whole_sequence_context(model, speak, listen, emotion, k + 1)
        noise = torch.randn(shape[1:], generator=gen)[None]

        def velocity(x, t, k=k, ctx=ctx):
            z = torch.cat(clean + [x], dim=1)
            times = torch.cat([torch.zeros(1, k * c), torch.full((1, c), t)], dim=1)
            return lpm.velocity(z, times, ctx, sink)[:, -c:]

        clean.append(sample_euler(velocity, noise, model.timesteps))
    whole = torch.cat(clean, dim=1)[0].view(n_chunks, c, *shape[2:])
    torch.testing.assert_close(streamed, whole, atol=2e-4, rtol=2e-4)
    assert streamed.abs().max() > 0.1      # not trivially zero


@torch.inference_mode()
def test_teacher_forcing_one_pass_equals_stream(rng):
    """One forward over [clean chunks | noisy chunks] (the training layout) gives the same
    first-step velocity as the stream computes through the cache, for every chunk at once."""
    model = PerformanceModel.from_config(micro_config(online_steps=1), seed=0)
    _randomize_zero_inits(model)
    cfg, lpm, c = model.cfg, model.lpm, model.chunk_frames
    n_chunks = 5
    refs, speak, listen, emotion = _inputs(model, rng, n_chunks)
    streamed = _stream(model, refs, speak, listen, emotion, n_chunks, seed=3)
    gen = torch.Generator().manual_seed(3)
    noise = torch.stack([torch.randn(streamed.shape[1:], generator=gen) for _ in range(n_chunks)])
    ctx = _whole_sequence_context(model, speak, listen, emotion, n_chunks)
    f = n_chunks * c
    doubled = type(ctx)(emotion=ctx.emotion.repeat(1, 2, 1), speak=ctx.speak.repeat(1, 2, 1, 1),
                        listen=ctx.listen.repeat(1, 2, 1, 1), positions=ctx.positions.repeat(1, 2))
    z = torch.cat([streamed.flatten(0, 1), noise.flatten(0, 1)])[None]
    t = torch.cat([torch.zeros(1, f), torch.ones(1, f)], dim=1)
    sink = lpm.encode_identity(model.references_to_tensor(refs))
    mask = lpm.teacher_forcing_mask(n_chunks, sink[0].shape[2])
    v = lpm.velocity(z, t, doubled, sink, mask=mask)[0, f:]
    # One Euler step from t=1 to 0: z0 = noise - v.
    torch.testing.assert_close((noise.flatten(0, 1) - v).view_as(streamed), streamed,
                               atol=2e-4, rtol=2e-4)


@torch.inference_mode()
def test_causality_future_audio_and_emotion_do_not_change_past(micro_model, rng):
    model, cfg = micro_model, micro_model.cfg
    n_chunks, k = 5, 1
    refs, speak, listen, emotion = _inputs(model, rng, n_chunks)
    base = _stream(model, refs, speak, listen, emotion, n_chunks)
    _, end_k = model.audio_span(k)            # everything chunk k may hear (incl. lookahead)
    c = cfg.stream.chunk_frames

    speak2, listen2, emotion2 = speak.copy(), listen.copy(), emotion.copy()
    speak2[end_k:] = rng.standard_normal(len(speak) - end_k)
    listen2[end_k:] = 0.0
    emotion2[(k + 1) * c:] = 1.0 - emotion2[(k + 1) * c:]
    changed = _stream(model, refs, speak2, listen2, emotion2, n_chunks)
    torch.testing.assert_close(changed[:k + 1], base[:k + 1], atol=0, rtol=0)
    assert not torch.allclose(changed[k + 1:], base[k + 1:], atol=1e-3)

    # The lookahead is real and bounded: audio just before end_k does change chunk k.
    speak3 = speak.copy()
    speak3[end_k - 2 * cfg.samples_per_frame:end_k] *= -3.0
    looked = _stream(model, refs, speak3, listen, emotion, k + 1)
    assert not torch.allclose(looked[k], base[k], atol=1e-4)


@torch.inference_mode()
def test_batched_sessions_match_solo_and_identities_do_not_leak(micro_model, rng):
    """Two sessions with different references and different history lengths in one batch give
    exactly what each gives alone; their sinks stay intact across many chunks."""
    model, cfg = micro_model, micro_model.cfg
    c = cfg.stream.chunk_frames
    refs_a, refs_b = random_refs(rng, 1, cfg.frame_size), random_refs(rng, 3, cfg.frame_size)
    n = model.audio_window
    reqs = [(rng.standard_normal(n).astype(np.float32), np.zeros(n, np.float32),
             random_emotion(rng, c, cfg.emotion_dim)) for _ in range(8)]

    def run(refs, seed, steps, batch_with=None):
        sid = model.open_session(model.encode_identity(refs), seed)
        other = model.open_session(model.encode_identity(batch_with), 99) if batch_with is not None else None
        out = []
        for i in range(steps):
            batch = [ChunkRequest(sid, *reqs[i])]
            if other is not None and i >= 2:        # the partner joins late: ragged lengths
                batch.insert(0, ChunkRequest(other, *reqs[(i + 3) % len(reqs)]))
            z = model.step_latents(batch)
            out.append(z[-1])
        sink_k = model.cache.pool.k[:, model.cache.sessions[sid].sink].clone()
        for s in (sid, other):
            if s is not None:
                model.close_session(s)
        return torch.stack(out), sink_k

    solo_a, sink_solo = run(refs_a, 1, 8)
    batched_a, sink_batched = run(refs_a, 1, 8, batch_with=refs_b)
    torch.testing.assert_close(batched_a, solo_a, atol=1e-5, rtol=1e-5)
    # The sink after 8 chunks (window of 2 wrapped 3 times) is still the identity encoding.
    enc = model.encode_identity(refs_a)
    torch.testing.assert_close(sink_batched.flatten(1, 2), enc.k, atol=1e-6, rtol=0)
    # And identity matters: the same stream with other references differs.
    solo_b, _ = run(refs_b, 1, 3)
    assert not torch.allclose(solo_b, solo_a[:3], atol=1e-3)


@torch.inference_mode()
def test_unbounded_stream_memory_constant_and_positions_periodic(micro_model, rng):
    """Many chunks: cache pages and pool bytes never grow; frame positions far beyond the
    RoPE period give bit-identical rotations (the stream never leaves the trained range)."""
    model, cfg = micro_model, micro_model.cfg
    sid = model.open_session(model.encode_identity(random_refs(rng, 2, cfg.frame_size)), 0)
    used0, bytes0 = model.cache.used_pages(), model.cache.pool.nbytes
    n = model.audio_window
    em = np.tile(model_neutral(cfg), (cfg.stream.chunk_frames, 1))
    for _ in range(120):
        model.step_latents([ChunkRequest(sid, np.zeros(n, np.float32),
                                         np.zeros(n, np.float32), em)])
        assert model.cache.used_pages() == used0
    assert model.cache.pool.nbytes == bytes0
    assert model.cache.sessions[sid].count == cfg.stream.window_chunks
    rope = model.lpm.dit.rope
    p = torch.arange(0, 50)
    cos_a, sin_a = rope.angles(p)
    cos_b, sin_b = rope.angles(p + 1000 * cfg.dit.rope_period)
    assert torch.equal(cos_a, cos_b) and torch.equal(sin_a, sin_b)


def model_neutral(cfg):
    e = np.zeros(cfg.emotion_dim, np.float32)
    e[0] = 1.0
    return e
