"""Blinks (`blink.enabled`, model/blink.py): the clock reads each frame's state as a stream
hears it, chunk by chunk exactly as over a whole track; blinks start at the configured rate
of their state, run the world's curve and keep the refractory gap; the same seed gives the same
blinks; the editor is the identity until trained and stays in its window; the pipeline closes
the eyes of only the frames of a blink."""

import dataclasses

import numpy as np
import pytest
import torch

from npc_runtime.config import BlinkConfig, MouthEditConfig
from npc_runtime.model.audio import chunk_windows
from npc_runtime.model.blink import (IDLE, LISTENING, SPEAKING, BlinkEditor, blink_closures,
                                     blink_curve, blink_frame_states, blink_state)
from npc_runtime.model.lpm import LPM
from npc_runtime.model.mouth_edit import speech_gate
from npc_runtime.pipeline import ChunkRequest, PerformanceModel, slice_audio

from .conftest import _randomize_zero_inits, micro_config, random_emotion, random_refs


def blink_cfg(**changes):
    cfg = micro_config()
    return cfg.replace(audio=dataclasses.replace(cfg.audio, mouth_track=True),
                       mouth_edit=MouthEditConfig(enabled=True),
                       blink=BlinkConfig(enabled=True, **changes))


def test_off_by_default_and_validated():
    assert not micro_config().blink.enabled and LPM(micro_config()).blink_edit is None
    with pytest.raises(ValueError, match="needs mouth_edit.enabled"):
        micro_config().replace(blink=BlinkConfig(enabled=True))
    for bad in ({"rates_per_min": (1.0, -1.0, 2.0)}, {"rates_per_min": (1.0, 2.0)},
                {"amplitude": 0.0}, {"refractory_frames": 3},
                {"window": (0.5, 0.4, 0.2, 0.8)}):
        with pytest.raises(ValueError, match="blink"):
            blink_cfg(**bad)


def _voice(n_frames: int, spf: int, on: np.ndarray) -> np.ndarray:
    """Noise at speech loudness on the frames where `on`, silence elsewhere."""
    rng = np.random.default_rng(len(on))
    return (rng.standard_normal(n_frames * spf) * 0.1).astype(np.float32) * np.repeat(on, spf)


def test_frame_states_read_who_speaks_through_the_speech_gate():
    cfg = blink_cfg()
    c, spf, n = cfg.stream.chunk_frames, cfg.samples_per_frame, 80
    speak_on, listen_on = np.zeros(n, np.float32), np.zeros(n, np.float32)
    speak_on[10:20] = 1
    listen_on[15:40] = 1                                 # overlaps the NPC's speech at 15-19
    k = cfg.mouth_edit.gate_frames
    gates = [speech_gate(cfg, chunk_windows(cfg, torch.from_numpy(_voice(n, spf, on))[None],
                                            n // c)) for on in (speak_on, listen_on)]
    states = blink_frame_states(gates[0], gates[1])[0]
    assert (states[10:20] == SPEAKING).all()             # the NPC's own voice wins
    # The gate opens k frames before a voice and stays k after.
    assert (states[20 + k:40 + k] == LISTENING).all() and (states[40 + k:] == IDLE).all()
    assert (states[:10 - k] == IDLE).all()
    # Chunk by chunk: the same states.
    chunked = [blink_frame_states(gates[0][:, i * c:(i + 1) * c], gates[1][:, i * c:(i + 1) * c])
               for i in range(n // c)]
    assert np.array_equal(np.concatenate(chunked, 1)[0], states)


def _onsets(closure: torch.Tensor) -> np.ndarray:
    c = closure.numpy()
    return np.flatnonzero((c > 0) & (np.r_[0.0, c[:-1]] == 0))


def test_blinks_start_at_their_states_rate_run_the_curve_and_keep_their_gap():
    cfg = blink_cfg(rates_per_min=(12.0, 0.0, 60.0))
    fps, n = cfg.stream.fps, 200_000
    states = np.where(np.arange(n) % 4000 < 2000, IDLE, LISTENING)[None]
    closure = blink_closures(cfg, states, [blink_state(7)])[0]
    onsets = _onsets(closure)
    assert np.diff(onsets).min() >= cfg.blink.refractory_frames
    curve = torch.tensor(blink_curve(cfg))
    assert curve.max() == pytest.approx(cfg.blink.amplitude) and len(curve) == 5
    for o in onsets[:20]:
        assert torch.equal(closure[o:o + 5], curve)
    # Rates: a start per frame with p = rate / fps / 60 outside the refractory frames.
    for s, rate in ((IDLE, 12.0), (LISTENING, 60.0)):
        minutes = (states[0] == s).sum() / fps / 60
        p = rate / fps / 60
        expected = minutes * rate / (1 + p * (cfg.blink.refractory_frames - 1))
        got = (states[0][onsets] == s).sum()
        assert abs(got - expected) < 4 * np.sqrt(expected), (s, got, expected)
    # No rate, no blinks: a speaking stream with rate 0 never blinks.
    speaking = np.full((1, 5000), SPEAKING)
    assert not blink_closures(cfg, speaking, [blink_state(1)]).any()


def test_the_same_seed_gives_the_same_blinks_chunk_by_chunk_as_at_once():
    cfg = blink_cfg(rates_per_min=(30.0, 30.0, 30.0))
    states = np.random.default_rng(0).integers(0, 3, (2, 400))
    whole = blink_closures(cfg, states, [blink_state(3), blink_state(4)])
    a, b = blink_state(3), blink_state(4)
    chunked = torch.cat([blink_closures(cfg, states[:, i:i + 4], [a, b])
                         for i in range(0, 400, 4)], 1)
    # Draws are per frame, so chunks take them in the same order: the same blinks.
    assert whole.any() and torch.equal(whole, chunked)
    assert not torch.equal(whole[0], whole[1])           # another seed, other blinks


def test_the_editor_is_the_identity_untrained_and_stays_in_its_window():
    torch.manual_seed(0)
    cfg = blink_cfg()
    editor = BlinkEditor(cfg).eval()
    z = torch.randn(2, 4, cfg.vae.latent_channels, cfg.latent_size, cfg.latent_size)
    closure = torch.tensor([[0.0, 0.4, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    with torch.no_grad():
        assert torch.equal(editor.frames(z, closure), z)
        for p in editor.out.parameters():
            p.normal_(0, 0.2)
        out = editor.frames(z, closure)
    rows, cols = cfg.blink_window
    changed = (out != z).any(2)
    assert changed[0, 1].any() and changed[0, 2].any()
    assert not changed[0, 0].any() and not changed[1].any()
    inside = torch.zeros_like(changed[0, 1])
    inside[rows, cols] = True
    assert not (changed[0, 1] & ~inside).any()
    with pytest.raises(ValueError, match=r"closures \(B, F\)"):
        editor.frames(z, closure[:, :3])
    with pytest.raises(ValueError, match="one closure per frame"):
        editor(z[0], closure[0, :3])


def _blink_model(rates) -> PerformanceModel:
    model = PerformanceModel.from_config(blink_cfg(rates_per_min=rates), seed=0)
    _randomize_zero_inits(model)
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in model.lpm.blink_edit.out.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    model._fingerprint = None
    return model


def _stream(model, refs, speak, listen, emotion, n_chunks, seed=3):
    c = model.chunk_frames
    sid = model.open_session(model.encode_identity(refs), seed)
    out = []
    for k in range(n_chunks):
        start, end = model.audio_span(k)
        out.append(model.step_latents([ChunkRequest(
            sid, slice_audio(speak, start, end), slice_audio(listen, start, end),
            emotion[k * c:(k + 1) * c])])[0])
    model.close_session(sid)
    return torch.stack(out)


@torch.inference_mode()
def test_the_stream_closes_the_eyes_of_only_the_frames_of_a_blink():
    rng = np.random.default_rng(0)
    live, still = _blink_model((0.0, 0.0, 300.0)), _blink_model((0.0, 0.0, 0.0))
    cfg, n_chunks = live.cfg, 12
    n = n_chunks * cfg.stream.chunk_frames
    refs = random_refs(rng, 2, cfg.frame_size)
    speak = np.zeros(n * cfg.samples_per_frame, np.float32)
    on = np.zeros(n, np.float32)
    on[8:40] = 1
    listen = _voice(n, cfg.samples_per_frame, on)
    emotion = random_emotion(rng, n, cfg.emotion_dim)
    a = _stream(live, refs, speak, listen, emotion, n_chunks)
    b = _stream(still, refs, speak, listen, emotion, n_chunks)
    # The blinks the clock gives this audio and seed, computed apart from the stream.
    gates = [speech_gate(cfg, chunk_windows(cfg, torch.from_numpy(x)[None], n_chunks))
             for x in (speak, listen)]
    states = blink_frame_states(gates[0], gates[1])
    closure = blink_closures(cfg, states, [blink_state(3)])[0]
    assert closure.any() and not closure[states[0] != LISTENING].any()
    changed = (a != b).flatten(2).any(2).flatten()
    assert torch.equal(changed, closure != 0)            # blink frames edited, the rest as sampled
    assert torch.equal(a, _stream(live, refs, speak, listen, emotion, n_chunks))
    assert not torch.equal(a, _stream(live, refs, speak, listen, emotion, n_chunks, seed=4))


@torch.inference_mode()
def test_reset_forgets_the_running_blink_and_keeps_the_clock_going():
    model = _blink_model((0.0, 0.0, 300.0))
    refs = random_refs(np.random.default_rng(2), 2, model.cfg.frame_size)
    sid = model.open_session(model.encode_identity(refs), 3)
    session = model._sessions[sid]
    session.blink.phase, session.blink.cooldown = 2, 0
    draws = np.random.default_rng([3, 0xB1]).random(4)     # blink_state(3)'s first draws
    model.reset_session(sid)
    assert session.blink.phase == -1 and session.blink.cooldown == 0
    # The generator goes on where it was (a reset is not a new seed): nothing was drawn yet.
    assert np.array_equal(session.blink.rng.random(4), draws)
    model.close_session(sid)
