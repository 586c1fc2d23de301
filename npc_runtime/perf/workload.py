"""What the load tools send: real speech lines, player voice, identities and emotion cues.

Dialogue and player lines are spoken by espeak-ng (`npc_runtime.world.speech`) from the
evaluation line and voice pools, so the sidecar hears real speech with real pauses. Identities
are renders of evaluation identities (`EVAL_IDENTITY_SEEDS`), PNG-encoded as a game would
upload them. Everything is deterministic in its seed.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class SpokenLine:
    text: str
    pcm16: bytes                  # mono little-endian int16 at SAMPLE_RATE

    @property
    def duration_s(self) -> float:
        return len(self.pcm16) / 2 / SAMPLE_RATE


def speech_corpus(n_lines: int, seed: int = 0) -> list[SpokenLine]:
    """`n_lines` distinct (text, voice) utterances from the evaluation pools."""
    from npc_runtime.world.lines import sample_language, sample_line, sample_voice
    from npc_runtime.world.speech import speak

    rng = np.random.default_rng([seed, 0x9E5F])
    out = []
    for _ in range(n_lines):
        lang = sample_language(rng)
        text = sample_line(rng, lang, "eval")
        utt = speak(text, sample_voice(rng, lang, "eval"))
        pcm = (np.clip(utt.audio, -1, 1) * 32767).astype("<i2").tobytes()
        out.append(SpokenLine(text, pcm))
    log.info("speech corpus: %d lines, %.1f s in all", len(out),
             sum(x.duration_s for x in out))
    return out


def identity_png(seed: int, size: int = 128) -> bytes:
    """One neutral front render of evaluation identity `seed`, as PNG bytes."""
    from PIL import Image

    from npc_runtime.world.identity import EVAL_IDENTITY_SEEDS, sample_identity
    from npc_runtime.world.session import render_references

    ident = sample_identity(EVAL_IDENTITY_SEEDS.start + seed % len(EVAL_IDENTITY_SEEDS))
    img = render_references(ident, size, 1)[0]
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    return buf.getvalue()


@dataclass
class Cue:
    at_s: float
    tag: str
    intensity: float
    transition_s: float


@dataclass
class Script:
    """One stream's input: SPEAK lines and LISTEN (player) lines placed on its timeline."""
    duration_s: float
    speak: list[tuple[float, SpokenLine]] = field(default_factory=list)
    listen: list[tuple[float, SpokenLine]] = field(default_factory=list)
    cues: list[Cue] = field(default_factory=list)

    def track(self, channel: str) -> np.ndarray:
        """The channel as one int16 array of `duration_s` (silence between lines)."""
        n = int(round(self.duration_s * SAMPLE_RATE))
        out = np.zeros(n, np.int16)
        for start, line in getattr(self, channel):
            a = np.frombuffer(line.pcm16, "<i2")
            s0 = int(round(start * SAMPLE_RATE))
            if s0 < n:
                out[s0:s0 + len(a)] = a[: n - s0]
        return out


def random_script(rng: np.random.Generator, corpus: list[SpokenLine], duration_s: float,
                  player_voice: bool = True, emotions: tuple[str, ...] = ()) -> Script:
    """A dyadic exchange: NPC lines with pauses, the player answering in the gaps."""
    script = Script(duration_s)
    t = float(rng.uniform(0.0, 0.5))
    npc_turn = True
    while t < duration_s:
        line = corpus[int(rng.integers(len(corpus)))]
        if npc_turn:
            script.speak.append((t, line))
        elif player_voice:
            script.listen.append((t, line))
        t += line.duration_s + float(rng.uniform(0.2, 0.8))
        npc_turn = not npc_turn or not player_voice
    for _ in range(int(duration_s // 4)):
        if emotions:
            script.cues.append(Cue(float(rng.uniform(0, duration_s)),
                                   str(rng.choice(emotions)), float(rng.uniform(0.3, 1.0)),
                                   float(rng.uniform(0.1, 0.8))))
    script.cues.sort(key=lambda c: c.at_s)
    return script
