"""Dyadic sessions: alignment, turn-taking behaviour, emotions, determinism, splits."""

import numpy as np
import pytest
import torch

from npc_runtime.emotions import DEFAULT_VOCABULARY
from npc_runtime.world.identity import EVAL_IDENTITY_SEEDS, TRAIN_IDENTITY_SEEDS
from npc_runtime.world.lines import EVAL_LINES, EVAL_VOICES, TRAIN_LINES, TRAIN_VOICES
from npc_runtime.world.performance import EXPRESSION_BASIS, P
from npc_runtime.world.session import (SAMPLES_PER_FRAME, EmotionSegment, emotion_track,
                                       generate_session)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def sessions():
    return [generate_session(s, 40.0, render=False) for s in range(4)]


def test_shapes_and_audio_alignment():
    s = generate_session(0, 4.0, size=128)
    t = s.num_frames
    assert t == 100 and s.frames.shape == (t, 128, 128, 3) and s.frames.dtype == np.uint8
    assert s.speak_audio.shape == s.listen_audio.shape == (t * SAMPLES_PER_FRAME,)
    assert s.emotion.shape == (t, DEFAULT_VOCABULARY.size) and s.perf.shape == (t, len(P))
    assert s.references.shape == (4, 128, 128, 3)
    assert s.identity.seed in TRAIN_IDENTITY_SEEDS


def test_deterministic_in_seed():
    a, b = generate_session(5, 6.0, render=False), generate_session(5, 6.0, render=False)
    assert np.array_equal(a.perf, b.perf) and np.array_equal(a.speak_audio, b.speak_audio)
    c = generate_session(6, 6.0, render=False)
    assert not np.array_equal(a.perf, c.perf)


def _frame_rms(audio):
    return np.sqrt((audio.reshape(-1, SAMPLES_PER_FRAME) ** 2).mean(1))


def test_speaking_state_follows_speak_audio_and_mouth_is_still_otherwise(sessions):
    for s in sessions:
        rms = _frame_rms(s.speak_audio)
        assert rms[s.speaking].mean() > 5 * rms[~s.speaking].mean()
        assert s.speaking.any() and s.listening.any()
        assert not (s.speaking & s.listening).any()
        jaw = s.perf[:, P["jaw_open"]]
        far = np.convolve(s.speaking, np.ones(11), mode="same") == 0  # >= 0.2 s from speech
        assert jaw[far].max() == 0.0  # closed and still
        assert jaw[s.speaking].mean() > 0.2


def test_listening_nods_come_at_partner_pauses(sessions):
    nods_listen, listen_s, nods_quiet, quiet_s = 0, 0.0, 0, 0.0
    for s in sessions:
        t = np.array(s.meta["nod_times"])
        frames = (t * 25).astype(int)
        frames = frames[frames < s.num_frames]
        near_listen = np.convolve(s.listening, np.ones(51), mode="same") > 0
        nods_listen += near_listen[frames].sum()
        nods_quiet += (~near_listen[frames]).sum()
        listen_s += s.listening.sum() / 25
        quiet_s += (~near_listen).sum() / 25
    assert nods_listen / listen_s * 60 > 5  # several nods per minute of listening
    assert nods_quiet == 0


def test_blinks_happen_at_human_rates(sessions):
    total = sum(len(s.meta["blink_times"]) for s in sessions)
    minutes = sum(s.num_frames for s in sessions) / 25 / 60
    assert 8 < total / minutes < 35


def test_emotions_shape_the_expression():
    segs = [EmotionSegment(0.0, "neutral", 1.0), EmotionSegment(2.0, "happy", 1.0, 0.5),
            EmotionSegment(4.0, "angry", 0.6, 0.5)]
    track = emotion_track(segs, 150)
    assert np.allclose(track[10], DEFAULT_VOCABULARY.neutral())
    assert np.allclose(track[90], DEFAULT_VOCABULARY.tag_vector("happy", 1.0))
    assert np.allclose(track[140], DEFAULT_VOCABULARY.tag_vector("angry", 0.6))
    assert 0 < track[52, DEFAULT_VOCABULARY.index("happy")] < 1  # a transition, not a cut
    expr = track @ EXPRESSION_BASIS
    assert expr[90, P["smile"]] > 0.8 and expr[140, P["brow_furrow"]] > 0.5


def test_session_emotion_is_visible_in_performance(sessions):
    for s in sessions:
        smile = s.perf[:, P["smile"]]
        happy = s.emotion[:, DEFAULT_VOCABULARY.index("happy")]
        sad = s.emotion[:, DEFAULT_VOCABULARY.index("sad")]
        if happy.max() > 0.5 and sad.max() > 0.5:
            assert smile[happy > 0.5].mean() > smile[sad > 0.5].mean() + 0.3


def test_eval_sessions_use_only_eval_identities_lines_and_voices():
    s = generate_session(3, 30.0, split="eval", render=False)
    assert s.identity.seed in EVAL_IDENTITY_SEEDS
    lang = s.meta["language"]
    assert s.meta["speak_voice"]["name"] in EVAL_VOICES[lang]
    assert s.meta["listen_voice"]["name"] in EVAL_VOICES[lang]
    assert s.meta["speak_voice"]["name"] != s.meta["listen_voice"]["name"] or len(
        EVAL_VOICES[lang]) == 1
    for turn in s.meta["turns"]:
        assert turn["text"] in EVAL_LINES[lang] and turn["text"] not in TRAIN_LINES[lang]
    train = generate_session(3, 30.0, split="train", render=False)
    assert train.meta["speak_voice"]["name"] in TRAIN_VOICES[train.meta["language"]]


def test_references_are_neutral_renders_of_the_identity():
    s = generate_session(2, 2.0, n_references=2)
    assert s.references.shape[0] == 2
    assert not np.array_equal(s.references[0], s.references[1])  # different viewpoints
