"""espeak-ng through ctypes: real audio, phoneme events, and visemes aligned to them."""

import numpy as np
import pytest
from scipy.signal import find_peaks

from npc_runtime.world.lines import EVAL_LINES, EVAL_VOICES, TRAIN_LINES, TRAIN_VOICES
from npc_runtime.world.speech import SAMPLE_RATE, SpeechError, Voice, speak
from npc_runtime.world.visemes import (frame_visemes, is_vowel, viseme_curve, viseme_target,
                                       vowel_centres)

CASES = [
    ("Welcome to the village, traveler. The inn is just past the well.", Voice("en-us", 175, 50)),
    ("I would not go into the forest after dark if I were you.", Voice("en+m3", 130, 30)),
    ("Please, you have to help me find my daughter before sunset.",
     Voice("en-gb-scotland+f4", 210, 75)),
    ("Guten Tag, Reisender. Was führt dich hierher?", Voice("de+f2", 160, 60)),
    ("La posada tiene las mejores sopas del reino.", Voice("es", 150, 40)),
    ("Bonjour, je suis le forgeron du village.", Voice("fr-be+f5", 190, 65)),
]


def test_speech_is_real_16khz_audio_with_phoneme_events():
    u = speak(*CASES[0])
    assert u.audio.dtype == np.float32 and 1.5 < u.duration_s < 8
    assert np.abs(u.audio).max() > 0.1  # audible
    assert len(u.phonemes) > 30
    starts = [p.start_s for p in u.phonemes]
    assert starts == sorted(starts) and starts[-1] < u.duration_s
    # Energy sits at the vowels, not in the pauses between clauses: events match the audio.
    hop = SAMPLE_RATE // 100
    env = np.sqrt((u.audio[: len(u.audio) // hop * hop].reshape(-1, hop) ** 2).mean(1))
    vowels = vowel_centres(u.phonemes)
    pauses = [int(100 * (p.start_s + p.end_s) / 2) for p in u.phonemes
              if p.phoneme.startswith("_") and p.end_s - p.start_s > 0.05]
    assert pauses
    assert np.median(env[(vowels * 100).astype(int)]) > 4 * np.median(env[pauses] + 1e-4)


def test_rate_and_pitch_change_the_speech():
    text = "The harvest festival starts tomorrow at noon."
    slow, fast = speak(text, Voice("en-us", 110)), speak(text, Voice("en-us", 260))
    assert slow.duration_s > 1.5 * fast.duration_s
    low, high = speak(text, Voice("en-us", 175, 10)), speak(text, Voice("en-us", 175, 90))
    assert not np.allclose(low.audio[:4000], high.audio[:4000])


def test_every_listed_voice_exists_and_speaks_its_language():
    for voices, lines in ((TRAIN_VOICES, TRAIN_LINES), (EVAL_VOICES, EVAL_LINES)):
        for lang, names in voices.items():
            for name in names:
                u = speak(lines[lang][0], Voice(name))
                assert u.duration_s > 0.5 and len(u.phonemes) > 5, name


def test_unknown_voice_is_an_error():
    with pytest.raises(SpeechError):
        speak("hello", Voice("xx-nonexistent"))


def test_train_and_eval_lines_and_voices_are_disjoint():
    for lang in TRAIN_LINES:
        assert not set(TRAIN_LINES[lang]) & set(EVAL_LINES[lang])
        assert not set(TRAIN_VOICES[lang]) & set(EVAL_VOICES[lang])


@pytest.mark.parametrize("text,voice", CASES)
def test_jaw_open_peaks_fall_within_40ms_of_vowel_events(text, voice):
    """Peaks (prominence >= 10% of the jaw range) of the per-frame jaw track vs vowel events.

    Every peak lies within 40 ms of a vowel phoneme's event span, and 90% lie within 40 ms of
    the vowel's centre (frames are 40 ms apart, so this is within one frame).
    """
    u = speak(text, voice)
    n = int(np.ceil(u.duration_s * 25))
    jaw = frame_visemes(u.phonemes, n)[:, 0]
    peaks, _ = find_peaks(jaw, prominence=0.1)
    spans = np.array([(p.start_s, p.end_s) for p in u.phonemes if is_vowel(p.phoneme)])
    t = (peaks + 0.5) / 25
    assert len(peaks) >= 0.3 * len(spans) > 0
    outside = np.maximum(spans[None, :, 0] - t[:, None], t[:, None] - spans[None, :, 1])
    assert np.clip(outside, 0, None).min(1).max() <= 0.040
    to_centre = np.abs(vowel_centres(u.phonemes)[None, :] - t[:, None]).min(1)
    assert (to_centre <= 0.040).mean() >= 0.9, to_centre


def test_coarticulation_closes_lips_for_bilabials_and_rounds_for_u():
    assert viseme_target("m").jaw == 0 and viseme_target("u:").round > 0.8
    assert is_vowel("aI") and is_vowel("@2") and not is_vowel("_:") and not is_vowel("s")
    u = speak("mama moo", Voice("en-us", 120))
    t = np.linspace(0, u.duration_s, 2000)
    v = viseme_curve(u.phonemes, t)
    for p in u.phonemes:
        c = (p.start_s + p.end_s) / 2
        k = np.abs(t - c).argmin()
        if p.phoneme == "m":
            assert v[k, 0] < 0.2  # closed through the /m/
        if p.phoneme.startswith("u"):
            assert v[k, 2] > 0.5  # rounded on /u:/
    # Silence before and after: the mouth is shut.
    assert viseme_curve(u.phonemes, np.array([-0.5, u.duration_s + 0.5]))[:, 0].max() < 1e-3
