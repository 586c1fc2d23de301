"""Dialogue lines and voices of the synthetic world, split into training and evaluation sets.

The evaluation suite must hear sentences and voices that no training session used, so both pools
are split here once, by hand, and never sampled across: `split="train"` draws only from the
training pools and `split="eval"` only from the evaluation pools. Several languages are spoken so
that mouth shapes are learnt from phonemes, not from a handful of English words.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from npc_runtime.world.speech import Voice

Split = Literal["train", "eval"]

TRAIN_LINES: dict[str, tuple[str, ...]] = {
    "en": (
        "Welcome to the village, traveler. The inn is just past the well.",
        "I would not go into the forest after dark if I were you.",
        "Bring me three wolf pelts and I will pay you well.",
        "The blacksmith has been missing since the storm.",
        "Have you seen my brother? He went to the mines two days ago.",
        "Those bandits took everything we had. Everything!",
        "Ha! You call that a sword? My grandmother swings harder.",
        "The king's guards are looking for someone who matches your description.",
        "Potions, scrolls and charms. Best prices in the whole kingdom.",
        "Keep your voice down. The walls have ears in this town.",
        "I remember when this road was safe to walk at night.",
        "Thank you, friend. I will not forget this kindness.",
        "Another dragon sighting near the northern pass, they say.",
        "Move along, nothing to see here.",
        "Can you read this map for me? My eyes are not what they used to be.",
        "The harvest festival starts tomorrow at noon.",
        "Why should I trust you? You are a stranger here.",
        "Oh no, the bridge collapsed again. We will have to go around.",
        "Well, well. Look who finally decided to show up.",
        "My shop is closed. Come back in the morning.",
        "Listen carefully, because I will only say this once.",
        "What a beautiful day for fishing by the lake.",
        "Do you hear that? Something is moving in the shadows.",
        "The old wizard lives at the top of the tower, alone.",
    ),
    "es": (
        "Hola amigo, bienvenido a nuestra ciudad.",
        "El camino hacia las montañas es muy peligroso.",
        "No tengo tiempo para tus preguntas ahora.",
        "La posada tiene las mejores sopas del reino.",
    ),
    "de": (
        "Guten Tag, Reisender. Was führt dich hierher?",
        "Der Wald ist nachts nicht sicher.",
        "Ich habe das Schwert gestern repariert.",
        "Pass auf, die Wachen sind überall.",
    ),
    "fr": (
        "Bonjour, je suis le forgeron du village.",
        "La route du nord est fermée depuis hier.",
        "Vous cherchez quelque chose de particulier?",
        "Attention, il y a des loups dans la forêt.",
    ),
}

EVAL_LINES: dict[str, tuple[str, ...]] = {
    "en": (
        "The lighthouse keeper swears he saw a ghost ship last night.",
        "Please, you have to help me find my daughter before sunset.",
        "Gold coins, silver rings, a crown! We are rich!",
        "I have guarded this gate for thirty years without a single mistake.",
        "Quiet now. Follow me, and do not touch anything.",
        "Absolutely not. That price is an insult to my family.",
    ),
    "es": ("Cuidado con el puente viejo, está roto.",),
    "de": ("Morgen beginnt das große Fest auf dem Marktplatz.",),
    "fr": ("Mon frère est parti à la guerre il y a trois ans.",),
}

# espeak-ng voice names with +variants; languages must match the lines they speak.
TRAIN_VOICES: dict[str, tuple[str, ...]] = {
    "en": ("en-us", "en-us+f3", "en", "en+m3", "en-us+f2", "en-gb-x-rp+m1", "en-us+m7"),
    "es": ("es", "es+f3"), "de": ("de", "de+f2"), "fr": ("fr", "fr+m3"),
}
EVAL_VOICES: dict[str, tuple[str, ...]] = {
    "en": ("en-gb-scotland+f4", "en-us-nyc+m2", "en-029+f1"),
    "es": ("es-419+m4",), "de": ("de+m5",), "fr": ("fr-be+f5",),
}
# Most dialogue is English; the other languages add phoneme variety.
LANGUAGE_WEIGHTS = {"en": 0.7, "es": 0.1, "de": 0.1, "fr": 0.1}
RATE_RANGE = {"train": (130, 210), "eval": (120, 220)}
PITCH_RANGE = (25, 75)


def lines_for(split: Split) -> dict[str, tuple[str, ...]]:
    return TRAIN_LINES if split == "train" else EVAL_LINES


def voices_for(split: Split) -> dict[str, tuple[str, ...]]:
    return TRAIN_VOICES if split == "train" else EVAL_VOICES


def sample_language(rng: np.random.Generator) -> str:
    langs = list(LANGUAGE_WEIGHTS)
    return str(rng.choice(langs, p=np.array([LANGUAGE_WEIGHTS[k] for k in langs])))


def sample_voice(rng: np.random.Generator, language: str, split: Split,
                 exclude: str | None = None) -> Voice:
    """A voice of `language` from the split's pool (not named `exclude`: the partner differs)."""
    names = [v for v in voices_for(split)[language] if v != exclude] or list(
        voices_for(split)[language])
    lo, hi = RATE_RANGE[split]
    return Voice(name=str(rng.choice(names)), rate=int(rng.integers(lo, hi)),
                 pitch=int(rng.integers(*PITCH_RANGE)), pitch_range=int(rng.integers(30, 80)))


def sample_line(rng: np.random.Generator, language: str, split: Split) -> str:
    pool = lines_for(split)[language]
    return str(pool[rng.integers(len(pool))])
