"""PerformanceModel's contract with the sidecar: shapes, description, bad inputs, checkpoints."""

import numpy as np
import pytest
import torch

from npc_runtime.checkpoint import CheckpointError, save_checkpoint
from npc_runtime.emotions import DEFAULT_VOCABULARY, UnknownEmotionError
from npc_runtime.pipeline import ChunkRequest, IdentityEncoding, PerformanceModel

from .conftest import micro_config, random_refs


def _request(model, sid, **override):
    n, c = model.audio_window, model.chunk_frames
    fields = dict(speak=np.zeros(n, np.float32), listen=np.zeros(n, np.float32),
                  emotion=np.tile(DEFAULT_VOCABULARY.neutral(), (c, 1)))
    fields.update(override)
    return ChunkRequest(sid, **fields)


def test_step_returns_uint8_frames_and_describe_says_untrained(micro_model, rng):
    m = micro_model
    sid = m.open_session(m.encode_identity(random_refs(rng, 1, m.frame_size)))
    frames = m.step([_request(m, sid)])
    assert frames[0].shape == (m.chunk_frames, m.frame_size, m.frame_size, 3)
    assert frames[0].dtype == np.uint8
    d = m.describe()
    assert d["trained"] is False and "untrained" in d["status"]
    assert m.chunk_index(sid) == 1


def test_bad_inputs_raise_clear_errors_and_change_nothing(micro_model, rng):
    m = micro_model
    with pytest.raises(ValueError, match=r"\(R, 32, 32, 3\)"):
        m.encode_identity(rng.integers(0, 255, (1, 64, 64, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="1..4 reference"):
        m.encode_identity(random_refs(rng, 5, m.frame_size))
    with pytest.raises(ValueError, match="uint8"):
        m.encode_identity(random_refs(rng, 1, m.frame_size).astype(np.float32))
    sid = m.open_session(m.encode_identity(random_refs(rng, 1, m.frame_size)))
    with pytest.raises(ValueError, match="samples of 16 kHz"):
        m.step([_request(m, sid, speak=np.zeros(100, np.float32))])
    with pytest.raises(ValueError, match="emotion must be"):
        m.step([_request(m, sid, emotion=np.zeros((m.chunk_frames, 3), np.float32))])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        m.step([_request(m, sid, emotion=np.full((m.chunk_frames, m.emotion_dim), 2.0,
                                                  np.float32))])
    with pytest.raises(KeyError, match="unknown session"):
        m.step([_request(m, 999)])
    with pytest.raises(ValueError, match="only once"):
        m.step([_request(m, sid), _request(m, sid)])
    assert m.chunk_index(sid) == 0                       # nothing advanced
    with pytest.raises(ValueError, match="16000 Hz"):
        m.perform(random_refs(rng, 1, m.frame_size), np.zeros(4410, np.float32),
                  sample_rate=44100)
    with pytest.raises(UnknownEmotionError, match="known tags: neutral, happy"):
        DEFAULT_VOCABULARY.tag_vector("elated")


def test_identity_encoding_bytes_roundtrip_and_staleness(micro_model, rng):
    m = micro_model
    enc = m.encode_identity(random_refs(rng, 2, m.frame_size))
    back = IdentityEncoding.from_bytes(m, enc.to_bytes())
    assert back.n_refs == 2 and torch.equal(back.k, enc.k) and torch.equal(back.v, enc.v)
    other = PerformanceModel.from_config(micro_config(), seed=1)
    with pytest.raises(ValueError, match="different model"):
        IdentityEncoding.from_bytes(other, enc.to_bytes())
    with pytest.raises(ValueError, match="unreadable"):
        IdentityEncoding.from_bytes(m, b"garbage" * 10)


def test_checkpoint_roundtrip_and_mismatch(micro_model, rng, tmp_path):
    m = micro_model
    save_checkpoint(tmp_path / "ok", m.lpm, m.cfg, trained=True, info={"recipe": "test"})
    loaded = PerformanceModel.from_checkpoint(tmp_path / "ok")
    assert loaded.describe()["trained"] is True
    assert loaded.fingerprint == m.fingerprint
    refs = random_refs(rng, 1, m.frame_size)
    speak = rng.standard_normal(16000).astype(np.float32) * 0.1
    np.testing.assert_array_equal(loaded.perform(refs, speak), m.perform(refs, speak))

    # Same file, config claims a wider model: every mismatch is named.
    bigger = PerformanceModel.from_config(micro_config(), seed=0)
    cfg2 = m.cfg.replace(dit=m.cfg.dit.__class__(dim=96, depth=2, heads=2, rope_dims=16))
    save_checkpoint(tmp_path / "bad", m.lpm, cfg2, trained=True)
    with pytest.raises(CheckpointError, match="shape mismatches"):
        PerformanceModel.from_checkpoint(tmp_path / "bad")
    del bigger
    # A corrupt weights file.
    (tmp_path / "ok" / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="corrupt"):
        PerformanceModel.from_checkpoint(tmp_path / "ok")
    with pytest.raises(CheckpointError, match="no model.yaml"):
        PerformanceModel.from_checkpoint(tmp_path / "missing")


def test_perform_whole_clip_length(micro_model, rng):
    m = micro_model
    speak = rng.standard_normal(int(16000 * 0.5)).astype(np.float32)
    frames = m.perform(random_refs(rng, 1, m.frame_size), speak)
    assert frames.shape[0] == 13                         # 0.5 s = 12.5 frames: the last partial one is kept
    assert m.session_count == 0                          # the session was closed


def test_status_never_calls_a_partly_trained_model_trained(micro_cfg, tmp_path):
    m = PerformanceModel.from_config(micro_cfg)
    save_checkpoint(tmp_path / "vae_only", m.lpm, m.cfg, trained=False,
                    info={"vae": "trained", "dit": "untrained (random init, seed 0)"})
    loaded = PerformanceModel.from_checkpoint(tmp_path / "vae_only")
    assert loaded.describe()["trained"] is False
    assert loaded.status.startswith("untrained") and "only vae trained" in loaded.status
