"""An expression editor (`expression_edit.enabled`, model/expression_edit.py): off by default,
an untrained one changes nothing, it edits only the face's window of the frames tagged with a
non-neutral emotion, and in the stream it changes the shown frames only, never the cache."""

import dataclasses

import numpy as np
import pytest
import torch

from npc_runtime.config import ExpressionEditConfig
from npc_runtime.model.expression_edit import ExpressionEditor, expressive
from npc_runtime.model.lpm import LPM
from npc_runtime.pipeline import ChunkRequest, PerformanceModel, slice_audio

from .conftest import _randomize_zero_inits, micro_config, random_refs, step_session


def edit_cfg(**changes):
    return micro_config().replace(expression_edit=ExpressionEditConfig(enabled=True, **changes))


def _live(editor: ExpressionEditor, seed: int = 0) -> ExpressionEditor:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in editor.out.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return editor.eval()


def _weights(cfg, n: int, tagged: list[bool]) -> torch.Tensor:
    """n frames' weights: neutral, or half neutral and half a random base emotion."""
    gen = torch.Generator().manual_seed(n)
    w = torch.zeros(n, cfg.emotion_dim)
    w[:, 0] = 1.0
    for i, t in enumerate(tagged):
        if t:
            k = int(torch.randint(1, cfg.emotion_dim, (1,), generator=gen))
            w[i, 0], w[i, k] = 0.5, 0.5
    return w


def test_off_by_default_and_validated():
    assert micro_config().expression_edit.enabled is False
    assert LPM(micro_config()).expression_edit is None
    assert LPM(edit_cfg()).expression_edit is not None
    with pytest.raises(ValueError, match="expression_edit.window"):
        edit_cfg(window=(0.5, 0.2, 0.0, 1.0))
    with pytest.raises(ValueError, match="multiples of 8"):
        edit_cfg(channels=12)


def test_untrained_it_changes_nothing_and_trained_only_the_faces_window():
    torch.manual_seed(0)
    cfg = edit_cfg()
    editor = ExpressionEditor(cfg).eval()
    z = torch.randn(3, cfg.vae.latent_channels, cfg.latent_size, cfg.latent_size)
    w = _weights(cfg, 3, [True, True, False])
    with torch.no_grad():
        assert torch.equal(editor(z, w), z)
        _live(editor)
        out = editor(z, w)
    rows, cols = cfg.expression_window
    inside = torch.zeros_like(z[0, 0], dtype=torch.bool)
    inside[rows, cols] = True
    assert torch.equal(out[:, :, ~inside], z[:, :, ~inside])
    assert not torch.equal(out[:, :, inside], z[:, :, inside])
    # The tag steers it: the same latent under two emotions comes out two ways.
    other = w.clone()
    other[0] = torch.roll(other[0], 1)
    with torch.no_grad():
        assert not torch.allclose(editor(z, other)[0], out[0])


def test_frames_edits_only_the_tagged_ones_and_refuses_bad_shapes():
    torch.manual_seed(1)
    cfg = edit_cfg()
    editor = _live(ExpressionEditor(cfg))
    z = torch.randn(2, 4, cfg.vae.latent_channels, cfg.latent_size, cfg.latent_size)
    tagged = [True, False, False, True, False, True, False, False]
    w = _weights(cfg, 8, tagged).view(2, 4, -1)
    assert torch.equal(expressive(w).flatten(), torch.tensor(tagged))
    with torch.no_grad():
        out = editor.frames(z, w)
        single = editor(z.flatten(0, 1), w.flatten(0, 1)).view(z.shape)
    for i, t in enumerate(tagged):
        b, f = divmod(i, 4)
        if t:
            assert torch.allclose(out[b, f], single[b, f], atol=1e-6)   # as edited alone
        else:
            assert torch.equal(out[b, f], z[b, f])                      # neutral: untouched
    with pytest.raises(ValueError, match="weights"):
        editor.frames(z, w[:, :3])
    with pytest.raises(ValueError, match="weights"):
        editor.frames(z, w[..., :-1])
    with pytest.raises(ValueError, match=r"\(N, c, h, w\)"):
        editor(z[0, 0], w[0, :1])


def _model(with_editor: bool) -> PerformanceModel:
    model = PerformanceModel.from_config(edit_cfg() if with_editor else micro_config(), seed=0)
    _randomize_zero_inits(model)
    if with_editor:
        _live(model.lpm.expression_edit, seed=4)
    return model


def _stream(model, refs, speak, emotion, n_chunks):
    sid = model.open_session(model.encode_identity(refs), 3)
    z = step_session(model, sid, speak, speak * 0, emotion, n_chunks)
    model.close_session(sid)
    return z


@torch.inference_mode()
def test_the_stream_redraws_the_tagged_frames_and_leaves_the_cache_alone():
    rng = np.random.default_rng(0)
    edited, plain = _model(True), _model(False)
    # The same weights but the editor's: the DiT, VAE and every other piece are the plain one's.
    state = {k: v for k, v in edited.lpm.state_dict().items()
             if not k.startswith("expression_edit.")}
    assert state.keys() == plain.lpm.state_dict().keys()
    plain.lpm.load_state_dict(state)
    plain._fingerprint = None
    cfg, n_chunks = edited.cfg, 6
    n = n_chunks * cfg.stream.chunk_frames
    tagged = [4 <= i < 10 or i >= 17 for i in range(n)]
    emotion = _weights(cfg, n, tagged).numpy()
    refs = random_refs(rng, 2, cfg.frame_size)
    speak = 0.1 * rng.standard_normal(n * cfg.samples_per_frame).astype(np.float32)
    a = _stream(edited, refs, speak, emotion, n_chunks)
    b = _stream(plain, refs, speak, emotion, n_chunks)
    changed = (a != b).flatten(1).any(1)
    # Only the tagged frames differ, and the neutral ones after them are the same bytes: the
    # cache held the DiT's own samples.
    assert torch.equal(changed, torch.tensor(tagged))
    # The decoded chunk is decode(the edited latents): two sessions of the same seed, one
    # stepped to frames, one to latents.
    identity = edited.encode_identity(refs)
    one, two = edited.open_session(identity, 3), edited.open_session(identity, 3)
    start, end = edited.audio_span(0)
    w = np.repeat(emotion[4:5], cfg.stream.chunk_frames, 0)
    audio = slice_audio(speak, start, end), slice_audio(speak * 0, start, end)
    frames = edited.step([ChunkRequest(one, *audio, w)])[0]
    z = edited.step_latents([ChunkRequest(two, *audio, w)])
    assert np.array_equal(frames, edited.decode(z)[0])


def test_a_reference_editor_reads_the_resting_face_and_needs_it():
    torch.manual_seed(2)
    cfg = edit_cfg(reference=True)
    editor = ExpressionEditor(cfg)
    assert editor.stem.in_channels == 2 * cfg.vae.latent_channels
    _live(editor)
    with torch.no_grad():
        for p in editor.stem.parameters():   # make the reference's channels count for sure
            p.copy_(torch.randn(p.shape) * 0.2)
    shape = (cfg.vae.latent_channels, cfg.latent_size, cfg.latent_size)
    z, w = torch.randn(2, 4, *shape), _weights(cfg, 8, [True] * 8).view(2, 4, -1)
    ref, other = torch.randn(2, *shape), torch.randn(2, *shape)
    with torch.no_grad():
        a, b = editor.frames(z, w, ref), editor.frames(z, w, other)
        # Frame by frame, as forward() with the session's reference beside every frame.
        single = editor(z.flatten(0, 1), w.flatten(0, 1),
                        ref[:, None].expand(z.shape).flatten(0, 1)).view(z.shape)
    assert torch.allclose(a, single, atol=1e-6)
    assert not torch.allclose(a, b)                      # another resting face, another edit
    rows, cols = cfg.expression_window
    outside = torch.ones(shape[1:], dtype=torch.bool)
    outside[rows, cols] = False
    assert torch.equal(a[..., outside], z[..., outside])
    with pytest.raises(ValueError, match="extra latent"):
        editor.frames(z, w)                              # no reference
    with pytest.raises(ValueError, match="reference"):
        editor.frames(z, w, ref[:1])
    with pytest.raises(ValueError, match="extra latent"):
        ExpressionEditor(edit_cfg())(z[0], w[0], ref[:1].expand(4, *shape))  # not wanted


@torch.inference_mode()
def test_the_stream_gives_a_reference_editor_the_first_reference():
    rng = np.random.default_rng(5)
    model = PerformanceModel.from_config(edit_cfg(reference=True), seed=0)
    _randomize_zero_inits(model)
    _live(model.lpm.expression_edit, seed=4)
    cfg = model.cfg
    refs = random_refs(rng, 2, cfg.frame_size)
    identity = model.encode_identity(refs)
    x = model.references_to_tensor(refs)
    assert torch.equal(identity.anchor, model.lpm.vae.encode(x[0, :1])[0])
    # The identity cache's bytes keep it; an encoding without one is refused and opens nothing.
    again = type(identity).from_bytes(model, identity.to_bytes())
    assert torch.equal(again.anchor, identity.anchor)
    bare = dataclasses.replace(identity, anchor=None)
    with pytest.raises(ValueError, match="reference latent"):
        type(identity).from_bytes(model, bare.to_bytes())
    with pytest.raises(ValueError, match="reference latent"):
        model.open_session(bare)
    assert model.session_count == 0 and model.cache.used_pages() == 0
    # Streamed, the tagged frames depend on the reference the session was opened with.
    n_chunks = 2
    n = n_chunks * cfg.stream.chunk_frames
    emotion = _weights(cfg, n, [True] * n).numpy()
    speak = 0.1 * rng.standard_normal(n * cfg.samples_per_frame).astype(np.float32)
    a = _stream(model, refs, speak, emotion, n_chunks)
    assert torch.equal(a, _stream(model, refs, speak, emotion, n_chunks))   # seeded
    flipped = _stream(model, refs[::-1].copy(), speak, emotion, n_chunks)
    assert not torch.equal(a, flipped)
