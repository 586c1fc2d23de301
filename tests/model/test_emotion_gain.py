"""stream.emotion_gain: the emotion condition moved further from neutral's, streaming only."""

import numpy as np
import pytest
import torch

from npc_runtime.emotions import DEFAULT_VOCABULARY
from npc_runtime.pipeline import ChunkRequest, PerformanceModel

from .conftest import _randomize_zero_inits, micro_config, random_refs


def _model(gain: float | None = None) -> PerformanceModel:
    model = PerformanceModel.from_config(micro_config(), seed=0, emotion_gain=gain)
    _randomize_zero_inits(model)
    return model


def _stream(model: PerformanceModel, emotion: np.ndarray, chunks: int = 3) -> np.ndarray:
    rng = np.random.default_rng(1)
    n, c = model.audio_window, model.chunk_frames
    sid = model.open_session(model.encode_identity(random_refs(rng, 1, model.frame_size)), 7)
    out = []
    for k in range(chunks):
        speak = rng.normal(0, 0.1, n).astype(np.float32)
        listen = rng.normal(0, 0.1, n).astype(np.float32)
        out.append(model.step([ChunkRequest(sid, speak, listen,
                                            emotion[k * c:(k + 1) * c])])[0])
    return np.concatenate(out)


def test_embedding_is_extrapolated_from_neutral_linearly():
    lpm = _model().lpm
    w = torch.zeros(1, 4, lpm.cfg.emotion_dim)
    w[..., 0], w[..., 2] = 0.3, 0.7                          # sad at 0.7
    neutral = torch.zeros_like(w)
    neutral[..., 0] = 1.0
    e, e_n = lpm.dit.embed_emotion(w), lpm.dit.embed_emotion(neutral)
    assert torch.equal(lpm.embed_emotion(w, 1.0), e)        # gain 1: exactly as trained
    torch.testing.assert_close(lpm.embed_emotion(w, 1.5), e_n + 1.5 * (e - e_n))
    torch.testing.assert_close(lpm.embed_emotion(neutral, 2.0), e_n)   # neutral stays put
    assert not torch.allclose(lpm.embed_emotion(w, 1.5), e)


def test_stream_changes_only_where_an_emotion_is_tagged():
    c = micro_config().stream.chunk_frames
    neutral = np.tile(DEFAULT_VOCABULARY.neutral(), (3 * c, 1)).astype(np.float32)
    sad = np.tile(DEFAULT_VOCABULARY.tag_vector("sad", 0.8), (3 * c, 1)).astype(np.float32)
    plain, gained = _model(), _model(1.5)
    assert plain.emotion_gain == 1.0 and gained.emotion_gain == 1.5
    np.testing.assert_array_equal(_stream(plain, neutral), _stream(gained, neutral))
    assert np.abs(_stream(plain, sad).astype(int) - _stream(gained, sad).astype(int)).max() > 0


def test_gain_comes_from_the_config_and_bad_gains_are_refused():
    assert PerformanceModel.from_config(micro_config(emotion_gain=1.25)).emotion_gain == 1.25
    for bad in (0.0, -1.0, 5.0):
        with pytest.raises(ValueError, match="emotion_gain"):
            micro_config(emotion_gain=bad)
        with pytest.raises(ValueError, match="emotion_gain"):
            PerformanceModel.from_config(micro_config(), emotion_gain=bad)
