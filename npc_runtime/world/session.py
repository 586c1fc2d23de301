"""Dyadic sessions: a scripted conversation rendered with ground truth, from one seed.

A session is what training and the bench consume: the character's frames (25 fps), its own
speech (SPEAK) and its partner's (LISTEN) as two 16 kHz tracks aligned so that frame i covers
samples [i*640, (i+1)*640), per-frame emotion weights, per-frame performance parameters, the
speaking/listening state, the identity and neutral reference renders of that identity.

`generate_session(seed, duration_s, ...)` is deterministic in its arguments, so training can draw
fresh sessions on the fly without touching disk and a shard can be regenerated from its index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from npc_runtime.emotions import DEFAULT_VOCABULARY
from npc_runtime.world.behaviour import Behaviour, BehaviourConfig, Turn, perform
from npc_runtime.world.identity import (EVAL_IDENTITY_SEEDS, TRAIN_IDENTITY_SEEDS, Identity,
                                        sample_identity)
from npc_runtime.world.lines import Split, sample_language, sample_line, sample_voice
from npc_runtime.world.performance import NUM_PERF, P
from npc_runtime.world.render import render_frames
from npc_runtime.world.speech import SAMPLE_RATE, speak

FPS = 25
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640

# Reference viewpoints (head_yaw, head_pitch) of the neutral reference renders, in order.
REFERENCE_VIEWS: tuple[tuple[float, float], ...] = ((0.0, 0.0), (-0.6, 0.0), (0.6, 0.0),
                                                    (0.0, -0.5))


@dataclass(frozen=True)
class EmotionSegment:
    start_s: float
    tag: str
    intensity: float
    transition_s: float = 0.5


@dataclass
class Session:
    seed: int
    split: str
    identity: Identity
    frames: np.ndarray | None  # (T, H, W, 3) uint8, None when generated without rendering
    speak_audio: np.ndarray  # (T * 640,) float32, 16 kHz
    listen_audio: np.ndarray  # (T * 640,) float32, 16 kHz
    emotion: np.ndarray  # (T, vocab.size) float32
    perf: np.ndarray  # (T, NUM_PERF) float32 ground-truth performance parameters
    speaking: np.ndarray  # (T,) bool
    listening: np.ndarray  # (T,) bool
    references: np.ndarray | None  # (R, H, W, 3) uint8 neutral renders
    fps: int = FPS
    meta: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return len(self.perf)

    @property
    def viseme(self) -> np.ndarray:
        """(T, 3) jaw_open, lip_width, lip_round."""
        return self.perf[:, [P["jaw_open"], P["lip_width"], P["lip_round"]]]


def emotion_track(segments: Sequence[EmotionSegment], n_frames: int, fps: float = FPS
                  ) -> np.ndarray:
    """Segments -> (T, vocab) weights, cross-fading (smoothstep) into each new segment."""
    vocab = DEFAULT_VOCABULARY
    t = (np.arange(n_frames) + 0.5) / fps
    out = np.tile(vocab.neutral(), (n_frames, 1))
    for seg in sorted(segments, key=lambda s: s.start_s):
        target = vocab.tag_vector(seg.tag, seg.intensity)
        u = np.clip((t - seg.start_s) / max(seg.transition_s, 1e-3), 0.0, 1.0)[:, None]
        w = u * u * (3 - 2 * u)
        out = out + w * (target - out)
    return out.astype(np.float32)


def random_emotions(rng: np.random.Generator, duration_s: float) -> list[EmotionSegment]:
    segs, t = [], 0.0
    while t < duration_s:
        tag = "neutral" if rng.random() < 0.3 else str(rng.choice(DEFAULT_VOCABULARY.tags[1:]))
        segs.append(EmotionSegment(t, tag, float(rng.uniform(0.3, 1.0)),
                                   float(rng.uniform(0.3, 1.0))))
        t += rng.uniform(3.0, 10.0)
    return segs


def random_script(rng: np.random.Generator, duration_s: float, split: Split) -> tuple[
        list[Turn], dict]:
    """Alternating turns (one or two lines each) with gaps and occasional long silences."""
    lang = sample_language(rng)
    own = sample_voice(rng, lang, split)
    partner = sample_voice(rng, lang, split, exclude=own.name)
    turns: list[Turn] = []
    t = float(rng.uniform(0.0, 1.5))
    channel = "speak" if rng.random() < 0.5 else "listen"
    while t < duration_s:
        voice = own if channel == "speak" else partner
        for _ in range(int(rng.integers(1, 3))):
            u = speak(sample_line(rng, lang, split), voice)
            turns.append(Turn(channel, t, u))
            t += u.duration_s + rng.uniform(0.25, 0.7)
        t += rng.uniform(2.0, 5.0) if rng.random() < 0.15 else rng.uniform(0.2, 1.2)
        channel = ("listen" if channel == "speak" else "speak") if rng.random() < 0.8 else channel
    meta = {"language": lang, "speak_voice": own.__dict__, "listen_voice": partner.__dict__,
            "turns": [{"channel": x.channel, "start_s": round(x.start_s, 4),
                       "text": x.utterance.text} for x in turns]}
    return turns, meta


def mix_track(turns: Sequence[Turn], channel: str, n_samples: int) -> np.ndarray:
    out = np.zeros(n_samples, dtype=np.float32)
    for turn in turns:
        if turn.channel != channel:
            continue
        s0 = int(round(turn.start_s * SAMPLE_RATE))
        a = turn.utterance.audio[: max(0, n_samples - s0)]
        out[s0:s0 + len(a)] += a
    return np.clip(out, -1.0, 1.0)


def render_references(identity: Identity, size: int = 128, n: int = 4) -> np.ndarray:
    """Neutral renders of `identity` from the first `n` REFERENCE_VIEWS -> (n, H, W, 3)."""
    if not 1 <= n <= len(REFERENCE_VIEWS):
        raise ValueError(f"1..{len(REFERENCE_VIEWS)} references, got {n}")
    perf = np.zeros((n, NUM_PERF), dtype=np.float32)
    for i, (yaw, pitch) in enumerate(REFERENCE_VIEWS[:n]):
        perf[i, P["head_yaw"]], perf[i, P["head_pitch"]] = yaw, pitch
    return render_frames(identity, perf, size)


def default_identity_seed(seed: int, split: Split) -> int:
    """Identity drawn from the split's documented seed range."""
    pool = TRAIN_IDENTITY_SEEDS if split == "train" else EVAL_IDENTITY_SEEDS
    rng = np.random.default_rng([seed, 0x1DE7])
    return int(pool.start + rng.integers(len(pool)))


def assemble_session(seed: int, split: Split, identity: Identity, turns: Sequence[Turn],
                     emotion: np.ndarray, rng: np.random.Generator, size: int = 128,
                     render: bool = True, n_references: int = 4, compile: bool = False,
                     meta: dict | None = None,
                     behaviour: BehaviourConfig = BehaviourConfig()) -> Session:
    """Turns + emotion track -> a full Session (audio mixed, behaviour performed, rendered)."""
    n = len(emotion)
    beh: Behaviour = perform(turns, emotion, rng, behaviour)
    frames = render_frames(identity, beh.perf, size, compile=compile) if render else None
    refs = render_references(identity, size, n_references) if render else None
    return Session(
        seed=seed, split=split, identity=identity, frames=frames,
        speak_audio=mix_track(turns, "speak", n * SAMPLES_PER_FRAME),
        listen_audio=mix_track(turns, "listen", n * SAMPLES_PER_FRAME),
        emotion=emotion, perf=beh.perf, speaking=beh.speaking, listening=beh.listening,
        references=refs,
        meta={**(meta or {}), "nod_times": beh.nod_times.round(3).tolist(),
              "blink_times": beh.blink_times.round(3).tolist()})


def generate_session(seed: int, duration_s: float = 20.0, split: Split = "train",
                     identity_seed: int | None = None, size: int = 128, render: bool = True,
                     n_references: int = 4, compile: bool = False) -> Session:
    """A random dyadic session: deterministic in (seed, duration_s, split, identity_seed).

    `split` picks the line/voice pools and, when `identity_seed` is None, the identity range
    (TRAIN_IDENTITY_SEEDS or EVAL_IDENTITY_SEEDS).
    """
    if split not in ("train", "eval"):
        raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
    rng = np.random.default_rng([seed, 0x5E55])
    ident_seed = default_identity_seed(seed, split) if identity_seed is None else identity_seed
    identity = sample_identity(ident_seed)
    n = int(round(duration_s * FPS))
    turns, meta = random_script(rng, n / FPS, split)
    emotion = emotion_track(random_emotions(rng, n / FPS), n)
    meta.update(seed=seed, identity_seed=ident_seed, duration_s=n / FPS)
    return assemble_session(seed, split, identity, turns, emotion, rng, size, render,
                            n_references, compile, meta)
