"""NPC requests: validation against the limits and vocabulary, and record <-> proto conversion.

Everything here is pure (no I/O) so the servicer can validate a whole request before touching
the store: a refused request changes nothing.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping, Sequence

from npc_runtime.emotions import EmotionVocabulary, UnknownEmotionError
from npc_runtime._proto import emotion_pb2, npc_pb2
from npc_runtime.server.config import Limits
from npc_runtime.server.errors import invalid
from npc_runtime.store import ImageError, ImageInfo, NpcRecord, ReferenceRecord, inspect_image

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_npc_id(npc_id: str, field: str = "npc_id") -> str:
    if not _ID.match(npc_id):
        raise invalid(f"{field} {npc_id[:80]!r} must be 1..64 characters of [A-Za-z0-9_-]")
    return npc_id


def check_display_name(name: str, limits: Limits) -> str:
    if len(name) > limits.max_display_name_chars:
        raise invalid(f"display_name is {len(name)} characters; the limit is "
                      f"{limits.max_display_name_chars}")
    if any(ord(c) < 32 for c in name):
        raise invalid("display_name contains control characters")
    return name


def check_images(images: Sequence[bytes], limits: Limits,
                 field: str = "reference_images") -> list[ImageInfo]:
    if not limits.min_reference_images <= len(images) <= limits.max_reference_images:
        raise invalid(f"{field}: {len(images)} images given; {limits.min_reference_images}.."
                      f"{limits.max_reference_images} are required")
    infos = []
    for i, data in enumerate(images):
        try:
            infos.append(inspect_image(data, max_bytes=limits.max_image_bytes,
                                       max_pixels=limits.max_image_pixels,
                                       min_side=limits.min_image_side))
        except ImageError as e:
            raise invalid(f"{field}[{i}]: {e}") from None
    return infos


def check_presets(presets: Iterable[emotion_pb2.EmotionPreset], vocab: EmotionVocabulary,
                  limits: Limits) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for i, p in enumerate(presets):
        where = f"presets[{i}]"
        if not _ID.match(p.name):
            raise invalid(f"{where}.name {p.name[:80]!r} must be 1..64 characters of "
                          "[A-Za-z0-9_-]")
        if p.name in vocab.tags:
            raise invalid(f"{where}.name {p.name!r} is a vocabulary tag; presets need new names")
        if p.name in out:
            raise invalid(f"{where}.name {p.name!r} is given twice")
        if not p.blend:
            raise invalid(f"{where} ({p.name!r}) has an empty blend")
        blend = {tag: float(w) for tag, w in p.blend.items()}
        try:
            vocab.vector(blend)
        except UnknownEmotionError as e:
            raise invalid(f"{where} ({p.name!r}): {e}") from None
        except ValueError as e:
            raise invalid(f"{where} ({p.name!r}): {e}") from None
        out[p.name] = blend
    if len(out) > limits.max_presets:
        raise invalid(f"presets: {len(out)} given; the limit is {limits.max_presets}")
    return out


def check_tag_emotion(e: emotion_pb2.TagEmotion, vocab: EmotionVocabulary,
                      presets: Mapping[str, Mapping[str, float]], field: str
                      ) -> tuple[str, float]:
    """A TagEmotion -> (name, intensity), validated; empty name means neutral."""
    intensity = e.intensity if e.HasField("intensity") else 1.0
    if not 0.0 <= intensity <= 1.0:       # also false for NaN
        raise invalid(f"{field}.intensity must be in 0..1, got {intensity!r}")
    if e.name:
        try:
            vocab.resolve(e.name, presets)
        except UnknownEmotionError as err:
            raise invalid(f"{field}: {err}") from None
    return e.name, float(intensity)


def to_proto(record: NpcRecord, *, streaming: bool = False,
             image_data: Sequence[bytes] | None = None) -> npc_pb2.Npc:
    msg = npc_pb2.Npc(
        npc_id=record.npc_id, display_name=record.display_name,
        default_emotion=emotion_pb2.TagEmotion(name=record.default_emotion,
                                               intensity=record.default_intensity),
        revision=record.revision, created_unix_ms=record.created_ms,
        updated_unix_ms=record.updated_ms, streaming=streaming,
    )
    for name, blend in sorted(record.presets.items()):
        msg.presets.add(name=name, blend=dict(blend))
    for i, ref in enumerate(record.references):
        msg.references.add(sha256=ref.sha256, media_type=ref.media_type, width=ref.width,
                           height=ref.height, size_bytes=ref.size_bytes,
                           data=image_data[i] if image_data is not None else b"")
    return msg


def references_from(infos: Sequence[ImageInfo]) -> tuple[ReferenceRecord, ...]:
    return tuple(ReferenceRecord.from_info(i) for i in infos)
