"""NpcStore: NPC records in SQLite (WAL, synchronous=FULL) beside a BlobStore of images.

Crash safety comes from ordering: image files are written (atomically, fsynced) before the row
that references them is committed, and a row is deleted before its images. A crash therefore
leaves at worst unreferenced image files, which `open` removes. With WAL and synchronous=FULL a
committed transaction survives a power cut, so an NPC whose registration returned OK is intact.

One process owns a data directory at a time (an flock on `LOCK`). The schema version is SQLite's
`user_version`; a newer schema than this code knows is refused rather than misread.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Mapping, Sequence

from npc_runtime.store.blobs import BlobStore, atomic_write, sha256_hex
from npc_runtime.store.images import ImageInfo

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE npcs (
    npc_id            TEXT PRIMARY KEY,
    display_name      TEXT NOT NULL,
    default_emotion   TEXT NOT NULL,
    default_intensity REAL NOT NULL,
    presets_json      TEXT NOT NULL,   -- {"name": {"tag": weight}}
    references_json   TEXT NOT NULL,   -- [{"sha256", "media_type", "width", "height", "size_bytes"}]
    revision          INTEGER NOT NULL,
    created_ms        INTEGER NOT NULL,
    updated_ms        INTEGER NOT NULL
);
"""


class NpcNotFoundError(KeyError):
    pass


class NpcExistsError(KeyError):
    pass


class RevisionMismatchError(RuntimeError):
    pass


class StoreLockedError(RuntimeError):
    pass


@dataclass(frozen=True)
class ReferenceRecord:
    sha256: str
    media_type: str
    width: int
    height: int
    size_bytes: int

    @classmethod
    def from_info(cls, info: ImageInfo) -> "ReferenceRecord":
        return cls(info.sha256, info.media_type, info.width, info.height, info.size_bytes)


@dataclass(frozen=True)
class NpcRecord:
    npc_id: str
    display_name: str
    references: tuple[ReferenceRecord, ...]
    default_emotion: str = ""
    default_intensity: float = 1.0
    presets: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    revision: int = 1
    created_ms: int = 0
    updated_ms: int = 0


def _now_ms() -> int:
    return int(time.time() * 1000)


def _row_to_record(row: sqlite3.Row) -> NpcRecord:
    refs = tuple(ReferenceRecord(**r) for r in json.loads(row["references_json"]))
    return NpcRecord(
        npc_id=row["npc_id"], display_name=row["display_name"], references=refs,
        default_emotion=row["default_emotion"], default_intensity=row["default_intensity"],
        presets=json.loads(row["presets_json"]), revision=row["revision"],
        created_ms=row["created_ms"], updated_ms=row["updated_ms"],
    )


class NpcStore:
    """Thread-safe (one connection behind a lock); call from worker threads, not the event loop."""

    def __init__(self, data_dir: str | os.PathLike) -> None:
        self.data_dir = Path(data_dir).expanduser()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.data_dir / "LOCK", "a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise StoreLockedError(f"data dir {self.data_dir} is in use by another process") from None
        self.images = BlobStore(self.data_dir / "images")
        self._identity_dir = self.data_dir / "identity_cache"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.data_dir / "npcs.sqlite3", isolation_level=None,
                                   check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._migrate()
        self._collect_garbage()

    # --- lifecycle -------------------------------------------------------------------------
    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"{self.data_dir} has store schema {version}; this npc_runtime "
                               f"knows up to {SCHEMA_VERSION}: upgrade npc_runtime")
        if version == 0:
            # One transaction: a crash leaves either no schema or the whole schema + version.
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(_SCHEMA.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"))
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._db.execute("COMMIT")
            log.info("created NPC store schema v%d in %s", SCHEMA_VERSION, self.data_dir)

    def _collect_garbage(self) -> None:
        """Remove what a crash left half-done: temp files and images no row references."""
        removed_tmp = self.images.remove_temporaries()
        referenced = self._referenced_images()
        orphans = [sha for sha in self.images if sha not in referenced]
        for sha in orphans:
            self.images.delete(sha)
        missing = [sha for sha in referenced if not self.images.exists(sha)]
        if removed_tmp or orphans:
            log.info("store cleanup: %d temporary files, %d unreferenced images removed",
                     removed_tmp, len(orphans))
        if missing:
            log.error("store: %d referenced images are missing: %s", len(missing), missing[:5])

    def _referenced_images(self) -> set[str]:
        rows = self._db.execute("SELECT references_json FROM npcs").fetchall()
        return {r["sha256"] for row in rows for r in json.loads(row[0])}

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self._lock_file.close()

    # --- records ---------------------------------------------------------------------------
    def get(self, npc_id: str) -> NpcRecord:
        with self._lock:
            row = self._db.execute("SELECT * FROM npcs WHERE npc_id = ?", (npc_id,)).fetchone()
        if row is None:
            raise NpcNotFoundError(npc_id)
        return _row_to_record(row)

    def list(self, after: str = "", limit: int = 100) -> list[NpcRecord]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM npcs WHERE npc_id > ? ORDER BY npc_id LIMIT ?",
                                    (after, limit)).fetchall()
        return [_row_to_record(r) for r in rows]

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM npcs").fetchone()[0]

    def create(self, record: NpcRecord, images: Sequence[bytes]) -> NpcRecord:
        """Store images, then the row; NpcExistsError (and nothing written) if the id is taken."""
        self._check_images(record, images)
        now = _now_ms()
        record = replace(record, revision=1, created_ms=now, updated_ms=now)
        with self._lock:
            if self._exists(record.npc_id):
                raise NpcExistsError(record.npc_id)
            for data in images:
                self.images.put(data)
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("INSERT INTO npcs VALUES (?,?,?,?,?,?,?,?,?)",
                                 self._row_values(record))
                self._db.execute("COMMIT")
            except sqlite3.IntegrityError:
                self._db.execute("ROLLBACK")
                raise NpcExistsError(record.npc_id) from None
        return record

    def update(self, npc_id: str, expected_revision: int = 0,
               images: Sequence[bytes] | None = None, **changes) -> NpcRecord:
        """Replace the given fields (and the images if given); bumps the revision."""
        with self._lock:
            row = self._db.execute("SELECT * FROM npcs WHERE npc_id = ?", (npc_id,)).fetchone()
            if row is None:
                raise NpcNotFoundError(npc_id)
            old = _row_to_record(row)
            if expected_revision and expected_revision != old.revision:
                raise RevisionMismatchError(f"NPC {npc_id!r} is at revision {old.revision}, "
                                            f"not {expected_revision}")
            new = replace(old, **changes, revision=old.revision + 1, updated_ms=_now_ms())
            if images is not None:
                self._check_images(new, images)
                for data in images:
                    self.images.put(data)
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("UPDATE npcs SET display_name=?, default_emotion=?, "
                             "default_intensity=?, presets_json=?, references_json=?, revision=?, "
                             "updated_ms=? WHERE npc_id=?", self._row_values(new)[1:7]
                             + (new.updated_ms, npc_id))
            self._db.execute("COMMIT")
            self._drop_unreferenced({r.sha256 for r in old.references})
        return new

    def delete(self, npc_id: str) -> None:
        with self._lock:
            row = self._db.execute("SELECT * FROM npcs WHERE npc_id = ?", (npc_id,)).fetchone()
            if row is None:
                raise NpcNotFoundError(npc_id)
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM npcs WHERE npc_id = ?", (npc_id,))
            self._db.execute("COMMIT")
            self._drop_unreferenced({r.sha256 for r in _row_to_record(row).references})

    def image_bytes(self, ref: ReferenceRecord) -> bytes:
        return self.images.get(ref.sha256)

    # --- identity cache --------------------------------------------------------------------
    def _identity_path(self, fingerprint: str, key: str) -> Path:
        for part in (fingerprint, key):
            if not part or not all(c.isalnum() or c in "-_." for c in part) or part.startswith("."):
                raise ValueError(f"bad identity cache key part {part!r}")
        return self._identity_dir / fingerprint / key

    def identity_get(self, fingerprint: str, key: str) -> bytes | None:
        path = self._identity_path(fingerprint, key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def identity_put(self, fingerprint: str, key: str, data: bytes) -> None:
        atomic_write(self._identity_path(fingerprint, key), data)

    # --- helpers ---------------------------------------------------------------------------
    def _exists(self, npc_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM npcs WHERE npc_id = ?", (npc_id,)).fetchone() is not None

    @staticmethod
    def _check_images(record: NpcRecord, images: Sequence[bytes]) -> None:
        if [sha256_hex(d) for d in images] != [r.sha256 for r in record.references]:
            raise ValueError("image bytes do not match the record's reference hashes")

    @staticmethod
    def _row_values(r: NpcRecord) -> tuple:
        refs = [asdict(x) for x in r.references]
        presets = {k: dict(v) for k, v in r.presets.items()}
        return (r.npc_id, r.display_name, r.default_emotion, float(r.default_intensity),
                json.dumps(presets, sort_keys=True), json.dumps(refs), r.revision, r.created_ms,
                r.updated_ms)

    def _drop_unreferenced(self, candidates: set[str]) -> None:
        """Delete images no NPC references any more (called after the commit, under the lock)."""
        still = self._referenced_images()
        for sha in candidates - still:
            self.images.delete(sha)
