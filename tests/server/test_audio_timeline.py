"""Resampling, audio placement on the timeline, and the emotion / line tracks."""

from __future__ import annotations

import numpy as np
import pytest

from npc_runtime.server.audio import AudioTrack, Resampler
from npc_runtime.server.errors import RpcError
from npc_runtime.server.timeline import EmotionTrack, LineMarker, LineTrack


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000, 12345])
def test_resampler_streams_a_sine_accurately(rate):
    t = np.arange(rate) / rate
    x = 0.5 * np.sin(2 * np.pi * 440 * t)
    r, rng, outs, i = Resampler(rate, 16000), np.random.default_rng(rate), [], 0
    while i < len(x):                                       # ragged chunk sizes
        n = int(rng.integers(1, 2000))
        outs.append(r.push(x[i:i + n]))
        i += n
    y = np.concatenate(outs + [r.flush()])
    assert len(y) == 16000
    ref = 0.5 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    assert np.abs(y[100:-100] - ref[100:-100]).max() < 1e-3


def _track() -> AudioTrack:
    return AudioTrack("SPEAK", 16000, 8000, 48000, max_chunk_s=5.0, max_gap_s=10.0)


def _pcm(samples: np.ndarray) -> bytes:
    return (samples * 32767).astype("<i2").tobytes()


def test_track_places_audio_by_pts_and_fills_gaps_with_silence():
    tr = _track()
    one = np.full(1600, 0.5)
    for pts in (None, 500_000):                              # 0-0.1 s, then 0.5-0.6 s
        s, start = tr.check(_pcm(one), 16000, pts)
        tr.write(s, 16000, start)
    out = tr.read(-800, 11200)
    assert np.all(out[:800] == 0) and np.allclose(out[800:2400], 0.5, atol=1e-4)
    assert np.all(out[2400:8800] == 0) and np.allclose(out[8800:10400], 0.5, atol=1e-4)
    assert tr.end_us == 600_000
    with pytest.raises(RpcError, match="goes backwards"):
        tr.check(_pcm(one), 16000, 400_000)
    with pytest.raises(RpcError, match="jumps 20.4 s ahead"):
        tr.check(_pcm(one), 16000, 21_000_000)
    with pytest.raises(RpcError, match="changed from 16000 to 8000"):
        tr.check(_pcm(one), 8000, None)


def test_late_audio_is_reported():
    tr = _track()
    tr.frontier = 3200                                       # 0.2 s already rendered
    s, start = tr.check(_pcm(np.full(4800, 0.1)), 16000, None)
    assert tr.write(s, 16000, start).late_samples == 3200


def test_emotion_track_blends_and_clamps_to_the_frontier():
    a, b = np.array([1.0, 0.0], np.float32), np.array([0.0, 1.0], np.float32)
    tr = EmotionTrack(a, max_pending=8)
    tr.add_cue(b, 1_000_000, 0.5, frontier_us=0)
    np.testing.assert_allclose(tr.value_at(1_250_000), [0.5, 0.5])
    np.testing.assert_allclose(tr.value_at(2_000_000), b)
    with pytest.raises(RpcError, match="goes backwards"):
        tr.check_cue(900_000, 0.0, 10.0)
    assert tr.add_cue(a, 1_100_000, 0.0, frontier_us=3_000_000) == 3_000_000   # past -> now
    np.testing.assert_allclose(tr.value_at(2_999_999), b)
    np.testing.assert_allclose(tr.value_at(3_000_000), a)


def test_line_track():
    lines = LineTrack(max_pending=4)
    lines.add(LineMarker("a", 0, None, ""))
    lines.add(LineMarker("b", 1_000_000, 1_500_000, ""))
    assert lines.line_at(500_000).line_id == "a"
    assert lines.line_at(1_200_000).line_id == "b"
    assert lines.line_at(1_600_000) is None
    with pytest.raises(RpcError, match="goes backwards"):
        lines.check("c", 10, None, "")
