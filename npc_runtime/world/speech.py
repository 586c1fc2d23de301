"""Real synthesized speech with phoneme timing, from the espeak-ng C library through ctypes.

espeak-ng is initialised in synchronous mode with phoneme events on, so every synthesis returns
both the waveform and one `espeakEVENT_PHONEME` per phoneme with its position in the audio. The
mouth shapes of the synthetic world are built from those timings (see `visemes.py`), never from
loudness. espeak speaks at 22050 Hz; everything downstream uses 16 kHz, so the audio is resampled
with a polyphase filter (320/441 exactly).

The library keeps global state and is not thread-safe: all calls go through one module-level
lock, and synthesis results are cached per (text, voice) because dataset generation draws the
same lines many times.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import threading
from dataclasses import dataclass

import numpy as np
from scipy.signal import resample_poly

SAMPLE_RATE = 16_000
ESPEAK_RATE = 22_050

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_DONT_EXIT = 0x8000
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE = 1, 2, 3, 4


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


class SpeechError(RuntimeError):
    """espeak-ng is missing or refused a request (unknown voice, failed synthesis)."""


@dataclass(frozen=True)
class Voice:
    """One espeak-ng voice setting: a language/voice name with optional `+variant`, rate, pitch."""

    name: str = "en-us"
    rate: int = 160  # words per minute, espeak range 80..450
    pitch: int = 50  # 0..100
    pitch_range: int = 50  # 0..100

    @property
    def language(self) -> str:
        return self.name.split("+")[0]


@dataclass(frozen=True)
class PhonemeEvent:
    """One phoneme: its espeak mnemonic and its span in seconds within the utterance."""

    phoneme: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Utterance:
    """A spoken line: 16 kHz float32 audio and the phoneme events aligned to it."""

    text: str
    voice: Voice
    audio: np.ndarray  # (N,) float32 in [-1, 1], 16 kHz
    phonemes: tuple[PhonemeEvent, ...]

    @property
    def duration_s(self) -> float:
        return len(self.audio) / SAMPLE_RATE


class _Espeak:
    """The process-wide espeak-ng handle (initialised lazily, once)."""

    def __init__(self) -> None:
        path = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            self.lib = ctypes.CDLL(path)
        except OSError as e:
            raise SpeechError(f"libespeak-ng not found ({e}); run scripts/setup.sh") from e
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint,
                                          ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                          ctypes.c_void_p, ctypes.c_void_p]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 200, None,
                                          _INIT_PHONEME_EVENTS | _INIT_DONT_EXIT)
        if rate != ESPEAK_RATE:
            raise SpeechError(f"espeak_Initialize returned sample rate {rate}, want {ESPEAK_RATE}")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[str, int]] = []  # (phoneme, audio position in ms)
        self._callback = _CALLBACK(self._on_synth)  # kept alive: C holds the pointer
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lock = threading.Lock()

    def _on_synth(self, wav, n, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EVENT_PHONEME:
                name = bytes(ev.id.string).split(b"\0")[0].decode("utf-8", "replace")
                self._events.append((name, ev.audio_position))
            i += 1
        return 0  # 0 = continue synthesis

    def synth(self, text: str, voice: Voice) -> tuple[np.ndarray, list[tuple[str, int]]]:
        with self.lock:
            if self.lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
                raise SpeechError(f"espeak-ng has no voice {voice.name!r}")
            for param, value in ((_PARAM_RATE, voice.rate), (_PARAM_PITCH, voice.pitch),
                                 (_PARAM_RANGE, voice.pitch_range), (_PARAM_VOLUME, 100)):
                self.lib.espeak_SetParameter(param, int(value), 0)
            self._chunks, self._events = [], []
            data = text.encode("utf-8") + b"\0"
            err = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8,
                                        None, None)
            if err != 0:
                raise SpeechError(f"espeak_Synth failed with code {err} for {text!r}")
            self.lib.espeak_Synchronize()
            audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            return audio, list(self._events)


@functools.lru_cache(maxsize=1)
def _engine() -> _Espeak:
    return _Espeak()


@functools.lru_cache(maxsize=4096)
def speak(text: str, voice: Voice = Voice()) -> Utterance:
    """Synthesize `text` with `voice`: 16 kHz audio plus phoneme events (cached)."""
    raw, events = _engine().synth(text, voice)
    audio = resample_poly(raw.astype(np.float32) / 32768.0, 320, 441).astype(np.float32)
    audio = np.clip(audio, -1.0, 1.0)
    duration = len(audio) / SAMPLE_RATE
    phonemes = []
    for k, (name, pos_ms) in enumerate(events):
        start = pos_ms / 1000.0
        end = events[k + 1][1] / 1000.0 if k + 1 < len(events) else duration
        if end > start and name:
            phonemes.append(PhonemeEvent(name, start, min(end, duration)))
    return Utterance(text=text, voice=voice, audio=audio, phonemes=tuple(phonemes))
