"""The mouth editor (`mouth_edit.enabled`): off by default, the identity map until trained,
steered by the mouth (and with `mouth_edit.emotion` the emotion weights) it is given, applied
to the chunks the stream shows, and fed back to the DiT's window only with `commit_edited`."""

import dataclasses

import pytest
import torch

from npc_runtime.config import MouthEditConfig
from npc_runtime.model.audio import chunk_windows
from npc_runtime.model.lpm import LPM
from npc_runtime.model.mouth_edit import MouthEditor, speech_gate
from npc_runtime.pipeline import PerformanceModel

from .conftest import _randomize_zero_inits, micro_config
from .test_mouth_track import _live_mouth, mouth_cfg
from .test_streaming import _inputs, _stream


def editor_cfg():
    return mouth_cfg().replace(mouth_edit=MouthEditConfig(enabled=True))


def _live_editor(lpm: LPM) -> None:
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in lpm.mouth_edit.out.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)


def test_off_by_default_and_only_with_a_track():
    assert micro_config().mouth_edit.enabled is False
    assert LPM(micro_config()).mouth_edit is None
    with pytest.raises(ValueError, match="needs audio.mouth_track"):
        micro_config().replace(mouth_edit=MouthEditConfig(enabled=True))
    with pytest.raises(ValueError, match="multiples of 8"):
        mouth_cfg().replace(mouth_edit=MouthEditConfig(enabled=True, channels=12))


def test_untrained_it_is_the_identity_and_trained_it_follows_the_mouth():
    torch.manual_seed(0)
    cfg = editor_cfg()
    editor = MouthEditor(cfg).eval()
    z = torch.randn(6, cfg.vae.latent_channels, cfg.latent_size, cfg.latent_size)
    open_, closed = torch.tensor([[0.9, 0.0, 0.1]]).expand(6, 3), torch.zeros(6, 3)
    with torch.no_grad():
        assert torch.equal(editor(z, open_), z)          # zero-initialised output: a no-op
        for p in editor.out.parameters():
            p.normal_(0, 0.2)
        a, b = editor(z, open_), editor(z, closed)
    assert not torch.allclose(a, b)                       # the mouth steers the edit
    with pytest.raises(ValueError, match=r"mouth \(N, 3\)"):
        editor(z, open_[:, :2])


def test_it_changes_only_its_window_and_its_gradient_reaches_only_the_window():
    torch.manual_seed(0)
    cfg = editor_cfg()
    rows, cols = cfg.mouth_window
    editor = MouthEditor(cfg)
    for p in editor.out.parameters():
        torch.nn.init.normal_(p, 0, 0.2)
    z = torch.randn(2, cfg.vae.latent_channels, cfg.latent_size, cfg.latent_size,
                    requires_grad=True)
    out = editor(z, torch.tensor([[0.9, 0.0, 0.1]]).expand(2, 3))
    inside = torch.zeros_like(z, dtype=torch.bool)
    inside[:, :, rows, cols] = True
    assert torch.equal(out[~inside], z[~inside])          # untouched outside the window
    assert not torch.allclose(out[inside], z[inside])
    out.square().sum().backward()
    # Outside, the gradient is the identity's alone: d(out^2)/dz = 2 z.
    torch.testing.assert_close(z.grad[~inside], 2 * z.detach()[~inside])


def test_the_window_in_latent_pixels():
    cfg = editor_cfg()
    # 4x4 latent: rows 1.75-3.75 round out to 1-4, odd, so grow upward (4 is the edge).
    assert (cfg.latent_size, cfg.mouth_window) == (4, (slice(0, 4), slice(1, 3)))
    from importlib import resources

    from npc_runtime.checkpoint import read_meta
    from npc_runtime.pipeline import DEFAULT_CHECKPOINT

    # The shipped tiny: a 32x32 latent.
    tiny = read_meta(resources.files("npc_runtime").joinpath(DEFAULT_CHECKPOINT))[0]
    full = tiny.replace(audio=dataclasses.replace(tiny.audio, mouth_track=True),
                        mouth_edit=MouthEditConfig(enabled=True))
    assert full.latent_size == 32
    # The default covers rows 14-29 and columns 8-23 of the shipped 32x32 latent: 16x16.
    assert full.mouth_window == (slice(14, 30), slice(8, 24))
    whole = full.replace(mouth_edit=MouthEditConfig(enabled=True, window=(0, 1, 0, 1)))
    assert whole.mouth_window == (slice(0, 32), slice(0, 32))
    for bad in ((0.5, 0.5, 0, 1), (0, 1.2, 0, 1), (0.2, 0.9, 0.7, 0.3), (0, 1, 0)):
        with pytest.raises(ValueError, match="mouth_edit.window"):
            mouth_cfg().replace(mouth_edit=MouthEditConfig(enabled=True, window=bad))


def test_the_emotion_weights_steer_an_emotion_conditioned_editor():
    torch.manual_seed(0)
    cfg = mouth_cfg().replace(mouth_edit=MouthEditConfig(enabled=True, emotion=True))
    editor = MouthEditor(cfg).eval()
    for p in editor.out.parameters():
        torch.nn.init.normal_(p, 0, 0.2)
    z = torch.randn(2, cfg.vae.latent_channels, cfg.latent_size, cfg.latent_size)
    mouth = torch.tensor([[0.5, 0.0, 0.1]]).expand(2, 3)
    happy, sad = torch.zeros(2, cfg.emotion_dim), torch.zeros(2, cfg.emotion_dim)
    happy[:, 1], sad[:, 2] = 1.0, 1.0
    with torch.no_grad():
        assert not torch.allclose(editor(z, mouth, happy), editor(z, mouth, sad))
        with pytest.raises(ValueError, match=r"emotion weights \(N, 7\) needed, got None"):
            editor(z, mouth)
        with pytest.raises(ValueError, match="needed, got \\(2, 6\\)"):
            editor(z, mouth, happy[:, :6])
        # Without mouth_edit.emotion the weights are not read.
        plain = MouthEditor(editor_cfg()).eval()
        for p in plain.out.parameters():
            torch.nn.init.normal_(p, 0, 0.2)
        assert torch.equal(plain(z, mouth, happy), plain(z, mouth, sad))


def _edited_stream(plain, rng, **edit):
    """A copy of `plain` with a live editor (MouthEditConfig(**edit)), streamed beside it."""
    edited = PerformanceModel(LPM(mouth_cfg().replace(
        mouth_edit=MouthEditConfig(enabled=True, **edit)), causal=True))
    missing = edited.lpm.load_state_dict(plain.lpm.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("mouth_edit.") for k in missing)
    refs, speak, listen, emotion = _inputs(plain, rng, 3)
    untrained = _stream(edited, refs, speak, listen, emotion, 3)
    base = _stream(plain, refs, speak, listen, emotion, 3)
    torch.testing.assert_close(untrained, base)            # an untrained editor: same stream
    _live_editor(edited.lpm)
    edited._fingerprint = None
    out = _stream(edited, refs, speak, listen, emotion, 3)
    cfg = plain.cfg
    chunks = chunk_windows(cfg, torch.from_numpy(speak)[None], 3)
    mouth = edited.lpm.mouth.chunk_frames(chunks)[0].view(3, cfg.stream.chunk_frames, -1)
    weights = torch.from_numpy(emotion).float().view(3, cfg.stream.chunk_frames, -1)
    shown = edited.lpm.mouth_edit.frames(base, mouth, weights)  # the plain chunks, edited
    return out, base, shown


def _plain(rng):
    plain = PerformanceModel.from_config(mouth_cfg(), seed=0)
    _randomize_zero_inits(plain)
    _live_mouth(plain)
    return plain


@torch.inference_mode()
def test_the_stream_shows_the_edited_chunk_and_commits_the_sampled_one(rng):
    """Default (commit_edited False): the DiT's window holds its own samples, so every chunk
    is the plain stream's chunk through the editor, the mouth track's values and the frames'
    emotion weights."""
    out, base, shown = _edited_stream(_plain(rng), rng, emotion=True)
    assert not torch.allclose(out, base)
    torch.testing.assert_close(out, shown)


@torch.inference_mode()
def test_commit_edited_feeds_the_edited_chunk_back(rng):
    """commit_edited: chunk 0 (no past) is still the plain chunk edited; chunk 1's DiT output
    saw the edited chunk 0, so it is not the plain chunk 1 edited."""
    out, base, shown = _edited_stream(_plain(rng), rng, commit_edited=True)
    torch.testing.assert_close(out[0], shown[0])
    assert not torch.allclose(out[1], shown[1], atol=1e-4, rtol=0)


def test_the_speech_gate_opens_around_the_npcs_speech_and_nowhere_else():
    cfg = editor_cfg()
    spf, c = cfg.samples_per_frame, cfg.stream.chunk_frames
    audio = torch.zeros(1, 6 * c * spf)
    gen = torch.Generator().manual_seed(0)
    audio[0, 10 * spf:14 * spf] = 0.1 * torch.randn(4 * spf, generator=gen)
    gate = speech_gate(cfg, chunk_windows(cfg, audio, 6))[0]
    # Speech in frames 10-13, gate_frames 3: half at 7 and 16 (one loud frame in reach), full
    # between, zero beyond.
    expected = torch.zeros(24)
    expected[8:16], expected[[7, 16]] = 1.0, 0.5
    torch.testing.assert_close(gate, expected)
    # A noise floor under gate_rms does not open it.
    hum = torch.full_like(audio, 1e-4)
    assert torch.equal(speech_gate(cfg, chunk_windows(cfg, hum, 6)), torch.zeros(1, 24))
    with pytest.raises(ValueError, match="windows of"):
        speech_gate(cfg, chunk_windows(cfg, audio, 6)[..., 1:])
    for frames in (0, 5):
        with pytest.raises(ValueError, match="gate_frames in 1..4"):
            mouth_cfg().replace(mouth_edit=MouthEditConfig(enabled=True, gate_frames=frames))
    with pytest.raises(ValueError, match="gate_rms >= 0"):
        mouth_cfg().replace(mouth_edit=MouthEditConfig(enabled=True, gate_rms=-1.0))


def test_the_gate_is_per_session_and_frame_in_a_batch():
    """Several NPCs stepped together: each frame gets its own session's gate, and a batch with
    every gate closed is returned as it came (the editor is not run)."""
    torch.manual_seed(0)
    cfg = editor_cfg()
    editor = MouthEditor(cfg).eval()
    for p in editor.out.parameters():
        torch.nn.init.normal_(p, 0, 0.2)
    c, h = cfg.vae.latent_channels, cfg.latent_size
    z, mouth = torch.randn(2, 4, c, h, h), torch.rand(2, 4, 3)
    gate = torch.tensor([[0.0, 0.0, 0.5, 1.0], [1.0, 1.0, 1.0, 1.0]])
    with torch.no_grad():
        full = editor.frames(z, mouth)
        out = editor.frames(z, mouth, gate=gate)
        assert torch.equal(out[0, :2], z[0, :2])
        torch.testing.assert_close(out[0, 2], z[0, 2] + 0.5 * (full[0, 2] - z[0, 2]))
        torch.testing.assert_close(out[0, 3], full[0, 3])
        torch.testing.assert_close(out[1], full[1])
        assert editor.frames(z, mouth, gate=torch.zeros(2, 4)) is z
        with pytest.raises(ValueError, match=r"gate \(B, F\) = \(2, 4\) needed"):
            editor.frames(z, mouth, gate=gate[:, :3])


@torch.inference_mode()
def test_a_silent_npc_is_shown_as_the_dit_drew_it(rng):
    """Frames whose SPEAK audio is silent (beyond gate_frames) are the plain stream's, bit for
    bit; frames the gate half opens are half edited; speech frames are fully edited; with
    gate_rms 0 every frame is edited."""
    plain = _plain(rng)
    cfg = plain.cfg
    spf, c = cfg.samples_per_frame, cfg.stream.chunk_frames
    refs, speak, listen, emotion = _inputs(plain, rng, 3)
    speak[:10 * spf] = 0.0                                  # the NPC starts speaking at frame 10
    base = _stream(plain, refs, speak, listen, emotion, 3)
    for gate_rms in (0.003, 0.0):
        edited = PerformanceModel(LPM(mouth_cfg().replace(
            mouth_edit=MouthEditConfig(enabled=True, gate_rms=gate_rms)), causal=True))
        edited.lpm.load_state_dict(plain.lpm.state_dict(), strict=False)
        _live_editor(edited.lpm)
        out = _stream(edited, refs, speak, listen, emotion, 3).flatten(0, 1)
        chunks = chunk_windows(cfg, torch.from_numpy(speak)[None], 3)
        mouth = edited.lpm.mouth.chunk_frames(chunks)[0].view(3, c, -1)
        shown = edited.lpm.mouth_edit.frames(base, mouth).flatten(0, 1)   # every frame edited
        flat = base.flatten(0, 1)
        if gate_rms:
            assert torch.equal(out[:7], flat[:7])
            torch.testing.assert_close(out[7], flat[7] + 0.5 * (shown[7] - flat[7]))
            torch.testing.assert_close(out[8:], shown[8:])
        else:
            torch.testing.assert_close(out, shown)
        assert not torch.allclose(shown[:7], flat[:7])      # there was an edit to leave out


def test_config_round_trip_keeps_the_editor(tmp_path):
    from npc_runtime.checkpoint import load_weights, read_meta, save_checkpoint

    torch.manual_seed(0)
    lpm = LPM(editor_cfg(), causal=True)
    _live_editor(lpm)
    save_checkpoint(tmp_path, lpm, lpm.cfg, trained=False, info={})
    cfg, _, _ = read_meta(tmp_path)
    assert cfg.mouth_edit == dataclasses.replace(MouthEditConfig(), enabled=True)
    again = LPM(cfg, causal=True)
    load_weights(tmp_path, again)
    torch.testing.assert_close(again.mouth_edit.out.weight, lpm.mouth_edit.out.weight)
