"""Metric functions on constructed signals: each detects what it claims to."""

import numpy as np

from npc_runtime.bench import metrics as M
from npc_runtime.world.performance import EXPRESSION_BASIS, EXPRESSION_INDEX, P


def test_lip_sync_finds_the_offset():
    rng = np.random.default_rng(0)
    ref = np.convolve(rng.random(500), np.ones(3) / 3, mode="same")
    mouth = np.roll(ref, 2)  # video two frames late
    speaking = np.ones(500, bool)
    r = M.lip_sync(mouth, ref, speaking, 25)
    assert r["lip_sync_offset_frames"] == 2 and r["lip_sync_corr"] > 0.99
    still = M.lip_sync(np.zeros(500), ref, speaking, 25)
    assert still["lip_sync_corr"] == 0.0 and still["lip_sync_confidence"] == 0.0


def test_decode_emotion_recovers_tags_and_intensity():
    for row in range(1, EXPRESSION_BASIS.shape[0]):
        expr = 0.7 * EXPRESSION_BASIS[row, EXPRESSION_INDEX]
        w = M.decode_emotion(expr[None])[0]
        assert np.argmax(w[1:]) + 1 == row and abs(w[row] - 0.7) < 1e-6


def test_decode_emotion_holds_fearful_under_small_errors():
    # NNLS on all six prototypes (the decoding up to session 24) read 0.7 fearful plus noise
    # of 0.05 per channel as surprised in ~20 % of draws: fearful is nearly a non-negative
    # blend of surprised, sad and angry. Every base emotion must survive such an error.
    rng = np.random.default_rng(0)
    for row in range(1, EXPRESSION_BASIS.shape[0]):
        expr = 0.7 * EXPRESSION_BASIS[row, EXPRESSION_INDEX] + 0.05 * rng.standard_normal(
            (200, len(EXPRESSION_INDEX)))
        w = M.decode_emotion(expr)
        assert (w[:, 1:].argmax(1) + 1 == row).mean() >= 0.99
        assert np.abs(w[:, row] - 0.7).mean() < 0.05 and np.allclose(w[:, 0], 1 - w[:, row])


def test_emotion_scores_reward_matching_expression():
    emotion = np.zeros((250, EXPRESSION_BASIS.shape[0]), np.float32)
    emotion[:125, 1] = 0.8  # happy
    emotion[125:, 3] = 0.8  # angry
    emotion[:, 0] = 0.2
    perf = np.zeros((250, len(P)), np.float32)
    perf[:, EXPRESSION_INDEX] = (emotion @ EXPRESSION_BASIS)[:, EXPRESSION_INDEX]
    good = M.emotion_scores(perf, emotion, 25)
    assert good["emotion_accuracy"] == 1.0 and good["emotion_intensity_mae"] < 1e-3
    flat = M.emotion_scores(np.zeros_like(perf), emotion, 25)
    assert flat["emotion_accuracy"] == 0.0 and flat["emotion_corr"] == 0.0


def test_nods_and_blinks_are_counted_by_state():
    fps, n = 25, 1500
    t = np.arange(n) / fps
    perf = np.zeros((n, len(P)), np.float32)
    listening = (t > 10) & (t < 40)
    for onset in (12, 18, 25, 33):
        u = (t - onset) / 0.5
        perf[:, P["head_pitch"]] += np.where((u > 0) & (u < 1), np.sin(np.pi * u) ** 2, 0) * 0.6
    for onset in (5, 15, 45, 55):
        perf[int(onset * fps):int(onset * fps) + 4, P["blink"]] = 1.0
    c = M.listening_counts(perf, np.zeros(n, bool), listening, fps)
    assert c["nods_listen"] == 4 and c["nods_silence"] == 0 and c["blinks"] == 4
    assert c["blinks_listen"] == 1 and c["blinks_silence"] == 3  # at 15 s; at 5, 45 and 55 s


def test_temporal_metrics_see_chunk_jumps_and_flicker():
    smooth = np.full(99, 0.01)
    jumpy = smooth.copy()
    jumpy[3::4] = 0.05  # frame t = 4k is a chunk boundary: d1[t-1]
    assert M.temporal(smooth, np.zeros(98), 4)["chunk_boundary_ratio"] < 1.01
    assert M.temporal(jumpy, np.zeros(98), 4)["chunk_boundary_ratio"] > 4


def test_identification_and_fpd():
    refs = np.eye(3) * 5
    frames = [np.tile(r, (10, 1)) + 0.1 for r in refs]
    assert M.identification(frames, refs) == [1.0, 1.0, 1.0]
    swapped = [frames[1], frames[0], frames[2]]
    assert M.identification(swapped, refs)[0] == 0.0
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 4))
    assert M.fpd([a], [a]) < 1e-3 < M.fpd([a + 1.0], [a])


def test_drift_detects_decay():
    csim = np.concatenate([np.full(100, 0.9), np.full(100, 0.5)])
    mean = np.zeros((200, 3))
    d = M.drift(csim, mean, np.ones(200), np.ones(200), 25)
    assert abs(d["drift_identity"] - 0.4) < 1e-6 and d["drift_image"] == 0


def test_strong_emotion_windows_are_the_tagged_emotions_at_half_intensity_or_more():
    vocab = EXPRESSION_BASIS.shape[0]
    emotion = np.zeros((300, vocab), np.float32)
    emotion[:100, 0] = 1.0                       # neutral: labelled, not a base emotion
    emotion[100:200, 1] = 0.4                    # happy at 0.4: labelled, not strong
    emotion[200:, 2] = 0.7                       # sad at 0.7: strong
    perf = np.zeros((300, len(P)), np.float32)
    perf[:, EXPRESSION_INDEX] = (emotion @ EXPRESSION_BASIS)[:, EXPRESSION_INDEX]
    good = M.emotion_scores(perf, emotion, 25)
    assert good["emotion_windows"] == 12 and good["emotion_strong_windows"] == 4
    assert good["emotion_strong_correct"] == 4
    # A face that shows sad everywhere is right on the strong windows only.
    sad = np.zeros_like(perf)
    sad[:, EXPRESSION_INDEX] = EXPRESSION_BASIS[2, EXPRESSION_INDEX] * 0.7
    s = M.emotion_scores(sad, emotion, 25)
    assert s["emotion_strong_correct"] == 4 and s["emotion_accuracy"] == 4 / 12
    # A still (neutral) face is right on the neutral windows only.
    flat = M.emotion_scores(np.zeros_like(perf), emotion, 25)
    assert flat["emotion_strong_correct"] == 0 and flat["emotion_accuracy"] == 4 / 12
