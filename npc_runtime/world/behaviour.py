"""Behaviour: a conversation's timeline -> per-frame performance parameters.

Given the character's own utterances (SPEAK), the partner's (LISTEN) and an emotion track, this
module writes what the face does on every frame:
- speaking: phoneme-aligned visemes, head motion and brow flashes that follow speech emphasis;
- listening: nods at the partner's pauses and turn ends, small back-channel reactions, attentive
  gaze;
- always: blinks (a Poisson process whose rate depends on the state), gaze saccades, idle head
  drift and body sway, and the emotion's expression (weights @ EXPRESSION_BASIS);
- a closed, still mouth whenever the character is not speaking.
The ground-truth event times (nods, blinks) are returned too, for the bench's sanity checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np

from npc_runtime.world.performance import EXPRESSION_BASIS, NUM_PERF, P, clip_performance
from npc_runtime.world.speech import SAMPLE_RATE, Utterance
from npc_runtime.world.visemes import frame_visemes, is_pause

Channel = Literal["speak", "listen"]


@dataclass(frozen=True)
class Turn:
    """One utterance placed on the session timeline."""

    channel: Channel
    start_s: float
    utterance: Utterance

    def voiced_span(self) -> tuple[float, float]:
        """Start and end (s, session time) of the voiced part, trailing pauses excluded."""
        voiced = [p for p in self.utterance.phonemes if not is_pause(p.phoneme)]
        if not voiced:
            return self.start_s, self.start_s
        return self.start_s + voiced[0].start_s, self.start_s + voiced[-1].end_s


@dataclass(frozen=True)
class BehaviourConfig:
    fps: float = 25.0
    blink_per_min: dict = field(default_factory=lambda: {"speak": 18.0, "listen": 24.0,
                                                          "idle": 12.0})
    nod_probability: float = 0.85  # at each partner pause / turn end
    nod_min_pause_s: float = 0.12  # a partner pause at least this long invites a nod
    nod_duration_s: float = 0.5
    reaction_probability: float = 0.35
    articulation_range: tuple[float, float] = (0.85, 1.1)  # per-session jaw gain


@dataclass
class Behaviour:
    perf: np.ndarray  # (T, NUM_PERF) float32
    speaking: np.ndarray  # (T,) bool
    listening: np.ndarray  # (T,) bool
    nod_times: np.ndarray  # (K,) s
    blink_times: np.ndarray  # (B,) s


def _mask(turns: Sequence[Turn], channel: Channel, n: int, fps: float) -> np.ndarray:
    t = (np.arange(n) + 0.5) / fps
    m = np.zeros(n, dtype=bool)
    for turn in turns:
        if turn.channel == channel:
            a, b = turn.voiced_span()
            m |= (t >= a) & (t < b)
    return m


def _pulse(t: np.ndarray, onset: float, duration: float) -> np.ndarray:
    """A smooth 0->1->0 bump (sin^2) starting at `onset`."""
    u = (t - onset) / duration
    return np.where((u > 0) & (u < 1), np.sin(np.pi * np.clip(u, 0, 1)) ** 2, 0.0)


def _smooth_noise(rng: np.random.Generator, t: np.ndarray, period_s: float) -> np.ndarray:
    """Band-limited noise in [-1, 1]: a few sinusoids around `period_s` with random phases."""
    out = np.zeros_like(t)
    for k in range(3):
        f = 1.0 / (period_s * rng.uniform(0.6, 1.6))
        out += np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) / (k + 1)
    return out / 1.84


def _speech_envelope(turns: Sequence[Turn], n: int, fps: float) -> np.ndarray:
    """Per-frame RMS of the character's own speech, normalised to its 95th percentile."""
    hop = int(SAMPLE_RATE / fps)
    env = np.zeros(n)
    for turn in turns:
        if turn.channel != "speak":
            continue
        a = turn.utterance.audio
        f0 = int(round(turn.start_s * fps))
        k = min(len(a) // hop, n - f0)
        if k > 0:
            env[f0:f0 + k] = np.sqrt((a[:k * hop].reshape(k, hop) ** 2).mean(1))
    scale = np.percentile(env[env > 0], 95) if np.any(env > 0) else 1.0
    return np.clip(env / max(scale, 1e-6), 0, 1.5)


def _nod_onsets(turns: Sequence[Turn], cfg: BehaviourConfig) -> list[float]:
    """Moments the character may nod: the partner's internal pauses and the end of each line."""
    onsets = []
    for turn in turns:
        if turn.channel != "listen":
            continue
        for p in turn.utterance.phonemes:
            if is_pause(p.phoneme) and p.end_s - p.start_s >= cfg.nod_min_pause_s:
                onsets.append(turn.start_s + p.start_s)
        onsets.append(turn.voiced_span()[1])
    return sorted(set(round(o, 3) for o in onsets))


def _blinks(rng, n, fps, state: np.ndarray, cfg: BehaviourConfig) -> np.ndarray:
    rates = np.array([cfg.blink_per_min[s] for s in ("idle", "speak", "listen")]) / 60.0
    p = rates[state] / fps  # per-frame probability of a blink starting
    starts = np.flatnonzero(rng.random(n) < p)
    keep, last = [], -1e9
    for s in starts:  # at least 0.4 s between blinks
        if s - last >= 0.4 * fps:
            keep.append(s)
            last = s
    return (np.asarray(keep, dtype=np.float64) + rng.random(len(keep))) / fps


def _gaze(rng, t: np.ndarray, state: np.ndarray, fps: float) -> np.ndarray:
    """Fixations with quick saccades; listening fixates near the partner (centre)."""
    spread = np.array([0.7, 0.4, 0.2])  # idle, speak, listen
    out = np.zeros((len(t), 2))
    cur, i = np.zeros(2), 0
    while i < len(t):
        dur = max(1, int(rng.uniform(0.8, 3.0) * fps))
        s = spread[state[i]]
        target = rng.uniform(-s, s, 2) * np.array([1.0, 0.5])
        seg = slice(i, min(i + dur, len(t)))
        ramp = np.clip((np.arange(seg.stop - seg.start) + 1) / (0.06 * fps), 0, 1)[:, None]
        out[seg] = cur + ramp * (target - cur)
        cur, i = target, seg.stop
    return out


def perform(turns: Sequence[Turn], emotion: np.ndarray, rng: np.random.Generator,
            config: BehaviourConfig = BehaviourConfig()) -> Behaviour:
    """Per-frame performance for a session of len(emotion) frames."""
    fps, n = config.fps, len(emotion)
    t = (np.arange(n) + 0.5) / fps
    perf = np.zeros((n, NUM_PERF))
    speaking = _mask(turns, "speak", n, fps)
    listening = _mask(turns, "listen", n, fps) & ~speaking
    state = np.where(speaking, 1, np.where(listening, 2, 0))  # idle, speak, listen

    gain = rng.uniform(*config.articulation_range)
    for turn in turns:
        if turn.channel == "speak":
            f0 = max(0, int(turn.start_s * fps) - 5)
            f1 = min(n, int((turn.start_s + turn.utterance.duration_s) * fps) + 5)
            if f1 > f0:
                v = frame_visemes(turn.utterance.phonemes, f1 - f0, fps,
                                  offset_s=turn.start_s - f0 / fps)
                perf[f0:f1, P["jaw_open"]] += gain * v[:, 0]
                perf[f0:f1, P["lip_width"]] += v[:, 1]
                perf[f0:f1, P["lip_round"]] += v[:, 2]

    # Speech emphasis: loud syllables lift the brows and dip the head a little.
    env = _speech_envelope(turns, n, fps)
    emphasis = np.convolve(np.clip(env - 0.6, 0, None), np.hanning(7) / 3.5, mode="same")
    perf[:, P["brow_raise"]] += 0.35 * emphasis
    perf[:, P["head_pitch"]] += 0.25 * emphasis

    nods = [o + rng.uniform(0.1, 0.3) for o in _nod_onsets(turns, config)
            if rng.random() < config.nod_probability]
    for onset in nods:
        amp = rng.uniform(0.45, 0.8)
        perf[:, P["head_pitch"]] += amp * _pulse(t, onset, config.nod_duration_s)
        if rng.random() < config.reaction_probability:  # back-channel: a small smile or flash
            which = P["smile"] if rng.random() < 0.5 else P["brow_raise"]
            perf[:, which] += rng.uniform(0.2, 0.4) * _pulse(t, onset, 1.0)

    blinks = _blinks(rng, n, fps, state, config)
    for b in blinks:
        perf[:, P["blink"]] = np.maximum(perf[:, P["blink"]], _pulse(t, b, 0.2))

    gaze = _gaze(rng, t, state, fps)
    perf[:, P["gaze_x"]] += gaze[:, 0]
    perf[:, P["gaze_y"]] += gaze[:, 1]
    # Idle drift, larger while speaking (people move their heads when they talk).
    motion = np.where(speaking, 1.6, 1.0)
    perf[:, P["head_yaw"]] += 0.25 * motion * _smooth_noise(rng, t, 4.0)
    perf[:, P["head_pitch"]] += 0.12 * motion * _smooth_noise(rng, t, 3.0)
    perf[:, P["head_roll"]] += 0.2 * _smooth_noise(rng, t, 5.0)
    perf[:, P["sway"]] += 0.5 * _smooth_noise(rng, t, 7.0)

    perf += np.asarray(emotion, np.float64) @ EXPRESSION_BASIS
    # The mouth is closed and still whenever the character is not speaking.
    quiet = ~speaking
    perf[quiet, P["jaw_open"]] = np.where(perf[quiet, P["jaw_open"]] < 0.02, 0.0,
                                          perf[quiet, P["jaw_open"]])
    return Behaviour(perf=clip_performance(perf), speaking=speaking, listening=listening,
                     nod_times=np.asarray(nods), blink_times=blinks)
