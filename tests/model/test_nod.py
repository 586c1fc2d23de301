"""Listening nods (`nod.enabled`, model/nod.py): the track streams exactly as it trains, the
stream's nods follow the onset probabilities with the configured shape and pauses, the editor
is the identity until trained and stays in its window, and the pipeline tilts only the frames
of a nod."""

import dataclasses

import numpy as np
import pytest
import torch

from npc_runtime.config import NodConfig
from npc_runtime.model.audio import chunk_windows
from npc_runtime.model.lpm import LPM
from npc_runtime.model.nod import (NodEditor, NodState, NodTrack, nod_curve, nod_offsets,
                                   track_features)
from npc_runtime.pipeline import ChunkRequest, PerformanceModel, slice_audio

from .conftest import _randomize_zero_inits, micro_config, random_emotion, random_refs


def nod_cfg(**changes):
    return micro_config().replace(nod=NodConfig(enabled=True, **changes))


def _dialogue(cfg, n_frames: int, seed: int = 0) -> np.ndarray:
    """Partner audio with loud stretches and pauses (the track hears loudness)."""
    rng = np.random.default_rng(seed)
    spf = cfg.samples_per_frame
    loud = np.repeat(rng.random(n_frames // 6 + 1) < 0.6, 6)[:n_frames]
    pcm = rng.standard_normal(n_frames * spf).astype(np.float32) * 0.2
    return pcm * np.repeat(loud, spf).astype(np.float32)


def test_off_by_default_and_validated():
    assert micro_config().nod.enabled is False
    lpm = LPM(micro_config())
    assert lpm.nod_track is None and lpm.nod_edit is None
    with pytest.raises(ValueError, match="nod.lookahead_frames"):
        nod_cfg(lookahead_frames=9)
    with pytest.raises(ValueError, match="threshold in"):
        nod_cfg(threshold=1.0)
    with pytest.raises(ValueError, match="multiples of 8"):
        nod_cfg(channels=12)
    with pytest.raises(ValueError, match="nod.window"):
        nod_cfg(window=(0.5, 0.4, 0.0, 1.0))


@pytest.mark.parametrize("look", [0, 2, 4])
def test_the_track_streams_bit_for_bit_as_it_trains(look):
    """Chunk by chunk on the stream's windows (GRU state carried) == one pass over the whole
    track's loudness: frame t hears frames 0..t + lookahead, in both."""
    torch.manual_seed(0)
    cfg = nod_cfg(lookahead_frames=look)
    track = NodTrack(cfg).eval()
    c, n_chunks = cfg.stream.chunk_frames, 9
    audio = torch.from_numpy(_dialogue(cfg, n_chunks * c))[None]
    with torch.no_grad():
        whole, _ = track.sequence(track_features(cfg, audio, n_chunks * c + look))
        windows = chunk_windows(cfg, audio, n_chunks)[0]
        h, streamed = None, []
        for k in range(n_chunks):
            logits, h = track.chunk(windows[k:k + 1], h)
            streamed.append(logits[0])
    assert torch.allclose(torch.cat(streamed), whole[0], atol=1e-6)
    with pytest.raises(ValueError, match="windows of"):
        track.chunk(windows[:1, :-1], None)


def test_nods_start_above_the_threshold_run_their_curve_and_then_pause():
    cfg = nod_cfg(threshold=0.5, duration_frames=6, refractory_frames=3)
    curve = nod_curve(cfg)
    assert len(curve) == 6 and max(curve) <= cfg.nod.amplitude and min(curve) > 0
    probs = torch.zeros(1, 24)
    probs[0, [2, 3, 9, 10, 11, 19]] = 0.9    # 3: inside the first nod; 9, 10 and 19: refractory
    state, out = NodState(), []
    for k in range(0, 24, 4):                       # chunk by chunk: the nod spans chunks
        out.append(nod_offsets(cfg, probs[:, k:k + 4], [state])[0])
    got = torch.cat(out)
    want = torch.zeros(24)
    want[2:8] = torch.tensor(curve)                 # starts at 2, runs 6 frames
    want[11:17] = torch.tensor(curve)               # 8-10 refractory; 11 is the next above
    assert torch.allclose(got, want)
    assert state.phase == -1
    # At the threshold itself nothing starts.
    assert not nod_offsets(cfg, torch.full((1, 4), 0.5), [NodState()]).any()


def test_the_editor_is_the_identity_untrained_and_stays_in_its_window():
    torch.manual_seed(0)
    cfg = nod_cfg(window=(0.25, 0.75, 0.25, 0.75))
    editor = NodEditor(cfg).eval()
    z = torch.randn(2, 4, cfg.vae.latent_channels, cfg.latent_size, cfg.latent_size)
    offsets = torch.tensor([[0.0, 0.3, 0.6, 0.0], [0.0, 0.0, 0.0, 0.0]])
    with torch.no_grad():
        assert torch.equal(editor.frames(z, offsets), z)
        for p in editor.out.parameters():
            p.normal_(0, 0.2)
        out = editor.frames(z, offsets)
    rows, cols = cfg.nod_window
    changed = (out != z).any(2)                          # (B, F, h, w)
    assert changed[0, 1].any() and changed[0, 2].any()   # the nod's frames are tilted
    assert not changed[0, 0].any() and not changed[1].any()   # offset 0: untouched
    inside = torch.zeros_like(changed[0, 1])
    inside[rows, cols] = True
    assert not (changed[0, 1] & ~inside).any()
    assert not torch.allclose(out[0, 1], out[0, 2])      # the offset steers the edit
    with pytest.raises(ValueError, match=r"offsets \(B, F\)"):
        editor.frames(z, offsets[:, :3])


def _nod_model(live_editor: bool) -> PerformanceModel:
    model = PerformanceModel.from_config(nod_cfg(threshold=0.3), seed=0)
    _randomize_zero_inits(model)
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        model.lpm.nod_track.head.bias.fill_(0.0)         # logits near 0: some frames above 0.3
        if live_editor:
            for p in model.lpm.nod_edit.out.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    model._fingerprint = None
    return model


def _stream(model, refs, speak, listen, emotion, n_chunks, reset_at=None):
    c = model.chunk_frames
    sid = model.open_session(model.encode_identity(refs), 3)
    out = []
    for k in range(n_chunks):
        if k == reset_at:
            model.reset_session(sid)
        start, end = model.audio_span(k)
        out.append(model.step_latents([ChunkRequest(
            sid, slice_audio(speak, start, end), slice_audio(listen, start, end),
            emotion[k * c:(k + 1) * c])])[0])
    nod = model._sessions[sid].nod
    model.close_session(sid)
    return torch.stack(out), nod


@torch.inference_mode()
def test_the_stream_tilts_only_the_frames_of_a_nod():
    rng = np.random.default_rng(0)
    live, idle = _nod_model(True), _nod_model(False)
    cfg, n_chunks = live.cfg, 8
    n = n_chunks * cfg.stream.chunk_frames
    refs = random_refs(rng, 2, cfg.frame_size)
    speak = np.zeros(n * cfg.samples_per_frame, np.float32)
    listen = _dialogue(cfg, n, seed=1)
    emotion = random_emotion(rng, n, cfg.emotion_dim)
    a, state = _stream(live, refs, speak, listen, emotion, n_chunks)
    b, _ = _stream(idle, refs, speak, listen, emotion, n_chunks)
    # Offsets the track gives this audio, computed apart from the stream.
    track_logits, _ = live.lpm.nod_track.sequence(
        track_features(cfg, torch.from_numpy(listen)[None], n + cfg.nod.lookahead_frames))
    offsets = nod_offsets(cfg, torch.sigmoid(track_logits), [NodState()])[0]
    assert offsets.any() and not offsets.all()
    changed = (a != b).flatten(2).any(2).flatten()       # per frame
    assert torch.equal(changed, offsets != 0)            # nod frames tilted, the rest as sampled
    assert state.h is not None


@torch.inference_mode()
def test_reset_forgets_the_nod_and_a_second_stream_repeats_the_first():
    rng = np.random.default_rng(1)
    model = _nod_model(True)
    cfg, n_chunks = model.cfg, 6
    n = n_chunks * cfg.stream.chunk_frames
    refs = random_refs(rng, 2, cfg.frame_size)
    speak = np.zeros(n * cfg.samples_per_frame, np.float32)
    listen = _dialogue(cfg, n, seed=2)
    emotion = random_emotion(rng, n, cfg.emotion_dim)
    first, _ = _stream(model, refs, speak, listen, emotion, n_chunks)
    again, _ = _stream(model, refs, speak, listen, emotion, n_chunks)
    assert torch.equal(first, again)                     # nods are deterministic per stream
    sid = model.open_session(model.encode_identity(refs), 3)
    model._sessions[sid].nod = NodState(h=torch.ones(cfg.nod.hidden), phase=2, cooldown=1)
    model.reset_session(sid)
    assert model._sessions[sid].nod == NodState()
    model.close_session(sid)


def test_a_checkpoint_without_nods_loads_into_a_model_with_them_unchanged():
    """Adding nods keeps every other weight: the nod modules are the only new keys."""
    donor = LPM(micro_config())
    lpm = LPM(nod_cfg())
    missing = lpm.load_state_dict(donor.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith(("nod_track.", "nod_edit.")) for k in missing)
    assert dataclasses.replace(lpm.cfg.nod, enabled=False) == NodConfig()
