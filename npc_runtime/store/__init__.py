"""Durable NPC store: records in SQLite (WAL), reference images as content-addressed files.

Everything a restart must bring back lives here: registered NPCs, their reference images (kept
byte-for-byte), default emotion and designer presets. Identity encodings computed by the model
are a cache beside it, keyed by image hashes and the model fingerprint, rebuilt when missing.
"""

from npc_runtime.store.blobs import BlobCorruptError, BlobStore, atomic_write
from npc_runtime.store.db import (
    NpcExistsError,
    NpcNotFoundError,
    NpcRecord,
    NpcStore,
    ReferenceRecord,
    RevisionMismatchError,
    StoreLockedError,
)
from npc_runtime.store.images import ImageError, ImageInfo, inspect_image, normalize_reference

__all__ = [
    "BlobCorruptError", "BlobStore", "atomic_write", "NpcExistsError", "NpcNotFoundError",
    "NpcRecord", "NpcStore", "ReferenceRecord", "RevisionMismatchError", "StoreLockedError",
    "ImageError", "ImageInfo", "inspect_image", "normalize_reference",
]
