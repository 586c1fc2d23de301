"""A steady head (`steady.enabled`, model/steady.py): the offsets cut only excursions beyond the
band on quiet frames, the baseline follows the reading whatever the chunking, the reader stays
in the head's window, and the pipeline steadies only quiet frames without touching the cache."""

import numpy as np
import pytest
import torch

from npc_runtime.config import NodConfig, SteadyConfig
from npc_runtime.model.lpm import LPM
from npc_runtime.model.steady import PitchReader, SteadyState, steady_offsets
from npc_runtime.pipeline import PerformanceModel

from .conftest import (_randomize_zero_inits, micro_config, random_emotion, random_refs,
                       step_session)


def steady_cfg(**changes):
    return micro_config().replace(nod=NodConfig(enabled=True),
                                  steady=SteadyConfig(enabled=True, **changes))


def test_off_by_default_and_validated():
    assert micro_config().steady.enabled is False
    assert LPM(micro_config()).pitch_reader is None
    assert LPM(steady_cfg()).pitch_reader is not None
    with pytest.raises(ValueError, match="needs nod.enabled"):
        micro_config().replace(steady=SteadyConfig(enabled=True))
    with pytest.raises(ValueError, match="band in"):
        steady_cfg(band=-0.1)
    with pytest.raises(ValueError, match="time_constant_frames"):
        steady_cfg(time_constant_frames=0.5)


def test_offsets_cut_excursions_beyond_the_band_on_quiet_frames_only():
    cfg = steady_cfg(band=0.1, time_constant_frames=4.0)
    pitch = torch.tensor([[0.0, 0.05, 0.4, 0.4, -0.3, 0.4, 0.0, 0.0]])
    quiet = torch.tensor([[True, True, True, True, True, False, True, True]])
    state = SteadyState()
    got = steady_offsets(cfg, pitch, quiet, [state])[0]
    # The baseline, by hand: starts at the first reading, moves a quarter of each deviation.
    base, before, want = 0.0, [], []
    for p, q in zip(pitch[0].tolist(), quiet[0].tolist()):
        dev = p - base
        before.append(base)
        want.append((min(max(dev, -0.1), 0.1) - dev) if q and abs(dev) > 0.1 else 0.0)
        base += dev / 4
    assert torch.allclose(got, torch.tensor(want))
    assert state.baseline == pytest.approx(base)
    assert got[0] == 0 and got[1] == 0            # within the band: untouched
    assert got[2] < 0 and got[4] > 0              # a bob up is pulled down, one down up
    assert got[5] == 0                            # speaking: the DiT's head
    # Every steadied frame is shown exactly on the band's edge around the baseline it met.
    shown = pitch[0] + got
    for i in torch.nonzero(got).flatten().tolist():
        assert abs(float(shown[i]) - before[i]) == pytest.approx(0.1, abs=1e-6)


@pytest.mark.parametrize("hold", [0, 3])
def test_the_baseline_does_not_depend_on_the_chunking(hold):
    cfg = steady_cfg(band=0.05, emotion_hold_frames=hold)
    gen = torch.Generator().manual_seed(0)
    pitch = 0.3 * torch.randn(2, 24, generator=gen)
    quiet = torch.rand(2, 24, generator=gen) < 0.7
    # Emotion weights that change at a few random frames.
    steps = (torch.rand(2, 24, 1, generator=gen) < 0.15).float().cumsum(1)
    emotion = torch.cat([steps / 10, torch.zeros(2, 24, cfg.emotion_dim - 1)], 2)
    whole_states = [SteadyState(), SteadyState()]
    whole = steady_offsets(cfg, pitch, quiet, whole_states, emotion)
    states = [SteadyState(), SteadyState()]
    chunked = torch.cat([steady_offsets(cfg, pitch[:, k:k + 4], quiet[:, k:k + 4], states,
                                        emotion[:, k:k + 4]) for k in range(0, 24, 4)], 1)
    assert torch.equal(whole, chunked)
    assert states == whole_states
    assert whole.any()


def test_an_emotion_change_holds_the_steadying_and_moves_the_baseline():
    """With emotion_hold_frames, the frames within that many of a change in the emotion weights
    are left alone and the baseline takes their reading; 0 (the default) ignores the weights."""
    cfg = steady_cfg(band=0.05, time_constant_frames=1000.0, emotion_hold_frames=3)
    pitch = torch.tensor([[0.0, 0.0, 0.3, 0.3, 0.3, 0.3, 0.3, 0.6]])
    quiet = torch.ones(1, 8, dtype=torch.bool)
    emotion = torch.zeros(1, 8, cfg.emotion_dim)
    emotion[0, :, 0] = 1.0
    emotion[0, 2:, 0], emotion[0, 2:, 2] = 0.0, 1.0          # neutral -> sad at frame 2
    state = SteadyState()
    got = steady_offsets(cfg, pitch, quiet, [state], emotion)[0]
    # Frames 2-4 (the change and two after) pass as drawn and set the baseline to 0.3; from
    # frame 5 the head is steadied around it again: 0.3 stays, the jump to 0.6 is cut back.
    assert torch.equal(got[:7], torch.zeros(7))
    assert got[7] == pytest.approx(-0.25)
    off = steady_offsets(steady_cfg(band=0.05, time_constant_frames=1000.0), pitch, quiet,
                         [SteadyState()], emotion)[0]
    assert off[2] == pytest.approx(-0.25)                   # no hold: the tilt is held back
    with pytest.raises(ValueError, match="emotion_hold_frames"):
        steady_cfg(emotion_hold_frames=-1)


def test_the_reader_reads_only_the_heads_window():
    torch.manual_seed(0)
    cfg = steady_cfg()
    reader = PitchReader(cfg).eval()
    z = torch.randn(3, cfg.vae.latent_channels, cfg.latent_size, cfg.latent_size)
    rows, cols = cfg.nod_window
    outside = torch.ones_like(z[0, 0], dtype=torch.bool)
    outside[rows, cols] = False
    with torch.no_grad():
        base = reader(z)
        moved = z.clone()
        moved[:, :, outside] += 5.0
        assert base.shape == (3,) and torch.equal(reader(moved), base)
        moved[:, :, rows, cols] += 1.0
        assert not torch.allclose(reader(moved), base)
    with pytest.raises(ValueError, match=r"\(N, c, h, w\)"):
        reader(z[0])


def _steady_model(pitch_fn) -> PerformanceModel:
    """A model whose nod track never nods (only the steadying edits) and whose reader is
    replaced by `pitch_fn(z) -> (N,)`, so the test controls what the head 'reads'."""
    model = PerformanceModel.from_config(steady_cfg(band=0.1), seed=0)
    _randomize_zero_inits(model)
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        model.lpm.nod_track.head.bias.fill_(-50.0)       # no nods
        model.lpm.nod_track.head.weight.zero_()
        for p in model.lpm.nod_edit.out.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    model.lpm.pitch_reader.forward = pitch_fn
    model._fingerprint = None
    return model


def _stream(model, refs, speak, listen, emotion, n_chunks):
    sid = model.open_session(model.encode_identity(refs), 3)
    z = step_session(model, sid, speak, listen, emotion, n_chunks)
    state = model._sessions[sid].steady
    model.close_session(sid)
    return z, state


@torch.inference_mode()
def test_the_stream_steadies_quiet_frames_and_leaves_speech_and_the_cache_alone():
    rng = np.random.default_rng(0)
    n_chunks = 8
    frame = {"i": 0}
    # The 'read' pitch: flat, with a bob of 0.5 on frames 9-11 (quiet) and 21-23 (speaking).
    reading = torch.zeros(n_chunks * 4)
    reading[9:12] = 0.5
    reading[21:24] = 0.5

    def pitch_fn(z):
        i = frame["i"]
        frame["i"] += len(z)
        return reading[i:i + len(z)]

    steadied = _steady_model(pitch_fn)
    plain = _steady_model(lambda z: torch.zeros(len(z)))
    cfg = steadied.cfg
    n = n_chunks * cfg.stream.chunk_frames
    spf = cfg.samples_per_frame
    refs = random_refs(rng, 2, cfg.frame_size)
    speak = np.zeros(n * spf, np.float32)
    speak[18 * spf:27 * spf] = 0.2 * rng.standard_normal(9 * spf).astype(np.float32)
    listen = np.zeros(n * spf, np.float32)
    emotion = random_emotion(rng, n, cfg.emotion_dim)
    a, state = _stream(steadied, refs, speak, listen, emotion, n_chunks)
    b, _ = _stream(plain, refs, speak, listen, emotion, n_chunks)
    changed = (a != b).flatten(1).any(1)
    want = torch.zeros(n, dtype=torch.bool)
    want[9:12] = True                                    # the quiet bob, pulled back
    assert torch.equal(changed, want)
    assert state.baseline is not None and state.baseline > 0
    # The cache held the DiT's own frames: the chunks after the bob are the same samples
    # (unchanged frames bit for bit) as in the stream that never steadied.
    assert torch.equal(a[12:21], b[12:21])


def test_reset_forgets_the_baseline():
    model = _steady_model(lambda z: torch.zeros(len(z)))
    rng = np.random.default_rng(2)
    sid = model.open_session(model.encode_identity(random_refs(rng, 2, model.frame_size)), 0)
    model._sessions[sid].steady = SteadyState(baseline=0.3)
    model.reset_session(sid)
    assert model._sessions[sid].steady == SteadyState()
    model.close_session(sid)
