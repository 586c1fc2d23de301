"""Content-addressed files written atomically (tmp + fsync + rename + directory fsync).

A blob's name is the SHA-256 of its bytes, so a client never chooses a path and two NPCs that
share an image share one file. A write is either absent or complete after a crash at any moment:
the bytes go to a temporary file that is fsynced and then renamed over the final name, and the
directory is fsynced so the rename itself is durable.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Iterator

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
TMP_SUFFIX = ".tmp"


class BlobCorruptError(IOError):
    """A stored blob is missing or its bytes no longer match its hash."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves either the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}{TMP_SUFFIX}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    """Files under `root/<first two hex digits>/<sha256>`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha: str) -> Path:
        if not _SHA256_HEX.match(sha):
            raise ValueError(f"not a lower-case hex SHA-256: {sha!r}")
        return self.root / sha[:2] / sha

    def put(self, data: bytes) -> str:
        sha = sha256_hex(data)
        path = self.path_for(sha)
        # An existing file of the right size was written by the same atomic path; rewriting it
        # would only cost an fsync. A wrong size means damage: replace it.
        if not (path.exists() and path.stat().st_size == len(data)):
            atomic_write(path, data)
        return sha

    def get(self, sha: str) -> bytes:
        path = self.path_for(sha)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BlobCorruptError(f"blob {sha} is missing from {self.root}") from None
        if sha256_hex(data) != sha:
            raise BlobCorruptError(f"blob {sha} in {self.root} does not match its hash")
        return data

    def exists(self, sha: str) -> bool:
        return self.path_for(sha).exists()

    def delete(self, sha: str) -> None:
        path = self.path_for(sha)
        if path.exists():
            path.unlink()
            _fsync_dir(path.parent)

    def __iter__(self) -> Iterator[str]:
        for sub in sorted(self.root.iterdir()):
            if sub.is_dir():
                for f in sorted(sub.iterdir()):
                    if _SHA256_HEX.match(f.name):
                        yield f.name

    def remove_temporaries(self) -> int:
        """Delete temporary files a crash left behind; returns how many."""
        n = 0
        for f in self.root.rglob(f"*{TMP_SUFFIX}"):
            f.unlink()
            n += 1
        return n
