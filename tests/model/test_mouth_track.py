"""The mouth track (`audio.mouth_track`): off by default, a no-op when added, causal, streamed
exactly as the whole sequence, dropped with the SPEAK audio."""

import dataclasses

import numpy as np
import torch

from npc_runtime.checkpoint import load_weights, save_checkpoint
from npc_runtime.model.audio import MOUTH_PARAMS, audio_span, chunk_windows
from npc_runtime.model.lpm import LPM
from npc_runtime.pipeline import PerformanceModel
from npc_runtime.train.flow import drop_audio

from .conftest import _randomize_zero_inits, micro_config, random_emotion
from .test_streaming import _inputs, _stream, _whole_sequence_context


def mouth_cfg(**stream):
    cfg = micro_config(**stream)
    return cfg.replace(audio=dataclasses.replace(cfg.audio, mouth_track=True))


def _live_mouth(model: PerformanceModel) -> None:
    """The mouth embedding starts at zero (a no-op); wiring tests need it live."""
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in model.lpm.dit.mouth_embed.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    model._fingerprint = None


def _context_inputs(cfg, rng, n_chunks):
    samples = n_chunks * cfg.stream.chunk_frames * cfg.samples_per_frame
    speak = torch.from_numpy(rng.standard_normal(samples).astype(np.float32) * 0.3)[None]
    listen = torch.from_numpy(rng.standard_normal(samples).astype(np.float32) * 0.3)[None]
    f = n_chunks * cfg.stream.chunk_frames
    emotion = torch.from_numpy(random_emotion(rng, f, cfg.emotion_dim))[None]
    return speak, listen, emotion, torch.arange(f)[None]


def test_off_by_default_and_in_the_shipped_presets():
    assert micro_config().audio.mouth_track is False
    lpm = LPM(micro_config())
    assert lpm.mouth is None and not hasattr(lpm.dit, "mouth_embed")


def test_adding_the_track_changes_nothing_until_trained(rng):
    torch.manual_seed(0)
    plain = LPM(micro_config(), causal=True)
    with_track = LPM(mouth_cfg(), causal=True)
    missing = with_track.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith(("mouth.", "dit.mouth_embed.")) for k in missing)
    for lpm in (plain, with_track):      # the same live residual branches in both
        torch.manual_seed(1)
        for name, p in lpm.dit.named_parameters():
            if "adaLN" in name or "final_" in name:
                p.data.normal_(0, 0.05)
    cfg = plain.cfg
    n = 3
    speak, listen, emotion, pos = _context_inputs(cfg, rng, n)
    sp, li = chunk_windows(cfg, speak, n), chunk_windows(cfg, listen, n)
    refs = torch.rand(1, 2, 3, cfg.frame_size, cfg.frame_size) * 2 - 1
    z = torch.randn(1, n * cfg.stream.chunk_frames, cfg.vae.latent_channels, cfg.latent_size,
                    cfg.latent_size)
    t = torch.full(z.shape[:2], 0.7)
    with torch.no_grad():
        outs = [lpm.velocity(z, t, lpm.context(sp, li, emotion, pos), lpm.encode_identity(refs))
                for lpm in (plain, with_track)]
        ctx = with_track.context(sp, li, emotion, pos)
    assert ctx.mouth is not None and ctx.mouth.shape == (1, z.shape[1], cfg.dit.dim)
    torch.testing.assert_close(outs[0], outs[1])
    assert outs[0].abs().max() > 0.01


def test_the_track_reads_each_chunks_own_frames_from_its_window_only(rng):
    """Chunk k's mouth is a function of audio_span(k): audio after it changes nothing."""
    cfg = mouth_cfg()
    torch.manual_seed(0)
    lpm = LPM(cfg).eval()
    n = 4
    speak, _, _, _ = _context_inputs(cfg, rng, n)
    changed = speak.clone()
    _, end = audio_span(cfg, 1)
    changed[:, end:] = torch.randn(changed[:, end:].shape)
    with torch.no_grad():
        a = lpm.mouth.chunk_frames(chunk_windows(cfg, speak, n))
        b = lpm.mouth.chunk_frames(chunk_windows(cfg, changed, n))
    c = cfg.stream.chunk_frames
    assert a.shape == (1, n * c, len(MOUTH_PARAMS))
    torch.testing.assert_close(a[:, :2 * c], b[:, :2 * c])       # chunks 0 and 1: unchanged
    assert not torch.allclose(a[:, 2 * c:], b[:, 2 * c:])          # later chunks hear it


@torch.inference_mode()
def test_stream_equals_whole_sequence_with_the_track(rng):
    from npc_runtime.sampler import sample_euler

    model = PerformanceModel.from_config(mouth_cfg(), seed=0)
    _randomize_zero_inits(model)
    _live_mouth(model)
    cfg, lpm, c = model.cfg, model.lpm, model.chunk_frames
    n_chunks = 4
    refs, speak, listen, emotion = _inputs(model, rng, n_chunks)
    streamed = _stream(model, refs, speak, listen, emotion, n_chunks)
    sink = lpm.encode_identity(model.references_to_tensor(refs))
    gen = torch.Generator().manual_seed(7)
    shape = (c, cfg.vae.latent_channels, cfg.latent_size, cfg.latent_size)
    clean = []
    for k in range(n_chunks):
        ctx = _whole_sequence_context(model, speak, listen, emotion, k + 1)
        noise = torch.randn(shape, generator=gen)[None]

        def velocity(x, t, k=k, ctx=ctx):
            z = torch.cat(clean + [x], dim=1)
            times = torch.cat([torch.zeros(1, k * c), torch.full((1, c), t)], dim=1)
            return lpm.velocity(z, times, ctx, sink)[:, -c:]

        clean.append(sample_euler(velocity, noise, model.timesteps))
    whole = torch.cat(clean, dim=1)[0].view(n_chunks, *shape)
    torch.testing.assert_close(streamed, whole, atol=2e-4, rtol=2e-4)
    # ... and the track is live: without it the stream differs.
    model.lpm.dit.mouth_embed[-1].weight.data.zero_()
    model.lpm.dit.mouth_embed[-1].bias.data.zero_()
    model._fingerprint = None
    assert not torch.allclose(_stream(model, refs, speak, listen, emotion, n_chunks), streamed,
                              atol=1e-3)


def test_dropped_speak_audio_drops_the_track(rng):
    cfg = mouth_cfg()
    lpm = LPM(cfg)
    speak, listen, emotion, pos = _context_inputs(cfg, rng, 2)
    speak, listen = torch.cat([speak, speak]), torch.cat([listen, listen])
    emotion, pos = torch.cat([emotion, emotion]), torch.cat([pos, pos])
    with torch.no_grad():
        for p in lpm.dit.mouth_embed.parameters():
            p.normal_()
        ctx = lpm.context(chunk_windows(cfg, speak, 2), chunk_windows(cfg, listen, 2), emotion,
                          pos)
    dropped = drop_audio(ctx, torch.tensor([True, False]))
    torch.testing.assert_close(dropped.mouth[0], ctx.mouth[0])
    assert float(dropped.mouth[1].abs().max()) == 0.0 and float(ctx.mouth[1].abs().max()) > 0


def test_checkpoint_round_trip_with_the_track(tmp_path):
    cfg = mouth_cfg()
    torch.manual_seed(0)
    lpm = LPM(cfg)
    save_checkpoint(tmp_path, lpm, cfg, trained=False)
    again = LPM(cfg)
    load_weights(tmp_path, again)
    for (k, a), (_, b) in zip(lpm.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k
