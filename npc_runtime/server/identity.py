"""Identity encodings for NPCs: memory LRU -> on-disk cache -> recompute from the images.

The encoding (the KV sink the model attends to) depends on the reference images, the way they
are normalised and the model weights, so the cache key is a hash of all three. The cache is
never the truth: a missing, unreadable or stale entry is rebuilt from the stored images.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict

import numpy as np

from npc_runtime.server.engine import Engine
from npc_runtime.store import NpcRecord, NpcStore, normalize_reference
from npc_runtime.store.images import NORMALIZATION_VERSION

log = logging.getLogger(__name__)


class IdentityProvider:
    def __init__(self, store: NpcStore, engine: Engine, model, memory_entries: int = 32) -> None:
        self.store, self.engine, self.model = store, engine, model
        self.fingerprint = str(model.fingerprint)
        self._memory: OrderedDict[str, object] = OrderedDict()
        self._memory_entries = memory_entries

    def key(self, record: NpcRecord) -> str:
        text = (f"norm{NORMALIZATION_VERSION}|size{self.model.frame_size}|"
                + ",".join(r.sha256 for r in record.references))
        return hashlib.sha256(text.encode()).hexdigest()

    async def get(self, record: NpcRecord):
        key = self.key(record)
        if key in self._memory:
            self._memory.move_to_end(key)
            return self._memory[key]
        enc = await self._from_disk(key)
        if enc is None:
            enc = await self._compute(record, key)
        self._memory[key] = enc
        while len(self._memory) > self._memory_entries:
            self._memory.popitem(last=False)
        return enc

    async def _from_disk(self, key: str):
        data = await asyncio.to_thread(self.store.identity_get, self.fingerprint, key)
        if data is None:
            return None
        from npc_runtime.pipeline import IdentityEncoding
        try:
            return await asyncio.wrap_future(
                self.engine.call(IdentityEncoding.from_bytes, self.model, data))
        except ValueError as e:
            log.warning("identity cache entry %s unusable (%s); rebuilding", key[:12], e)
            return None

    async def _compute(self, record: NpcRecord, key: str):
        size = self.model.frame_size

        def load() -> np.ndarray:
            return np.stack([normalize_reference(self.store.image_bytes(r), size)
                             for r in record.references])                  # (R, S, S, 3)

        refs = await asyncio.to_thread(load)
        enc = await asyncio.wrap_future(self.engine.call(self.model.encode_identity, refs))
        await asyncio.to_thread(self.store.identity_put, self.fingerprint, key, enc.to_bytes())
        log.info("NPC %s: identity encoded from %d reference(s) and cached", record.npc_id,
                 len(record.references))
        return enc
