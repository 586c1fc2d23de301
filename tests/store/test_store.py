"""The durable store: round trips, atomicity, crash safety under SIGKILL, schema version."""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import sqlite3
import time

import pytest

from npc_runtime.store import (NpcExistsError, NpcNotFoundError, NpcRecord, NpcStore,
                               ReferenceRecord, RevisionMismatchError, StoreLockedError,
                               inspect_image)
from tests.server.helpers import image_bytes


def _record(npc_id: str, images: list[bytes], **kw) -> NpcRecord:
    refs = tuple(ReferenceRecord.from_info(inspect_image(d, max_bytes=1 << 24,
                                                         max_pixels=1 << 24, min_side=1))
                 for d in images)
    return NpcRecord(npc_id=npc_id, display_name=npc_id.title(), references=refs, **kw)


def test_round_trip_update_delete_and_restart(tmp_path):
    a, b = image_bytes(seed=1), image_bytes(50, 40, 2, "JPEG")
    store = NpcStore(tmp_path)
    store.create(_record("smith", [a, b], presets={"smug": {"happy": 0.6}},
                         default_emotion="smug", default_intensity=0.5), [a, b])
    store.create(_record("twin", [a], ), [a])                     # shares image a
    with pytest.raises(NpcExistsError):
        store.create(_record("smith", [a]), [a])
    with pytest.raises(StoreLockedError):
        NpcStore(tmp_path)                                        # one owner per data dir
    new = store.update("smith", expected_revision=1, display_name="Old Smith")
    assert new.revision == 2
    with pytest.raises(RevisionMismatchError):
        store.update("smith", expected_revision=1, display_name="x")
    store.close()

    store = NpcStore(tmp_path)
    got = store.get("smith")
    assert got.display_name == "Old Smith" and got.presets == {"smug": {"happy": 0.6}}
    assert [store.image_bytes(r) for r in got.references] == [a, b]
    store.delete("smith")
    with pytest.raises(NpcNotFoundError):
        store.get("smith")
    assert store.images.exists(got.references[0].sha256)          # still used by twin
    assert not store.images.exists(got.references[1].sha256)
    assert [r.npc_id for r in store.list()] == ["twin"]
    store.close()


def test_newer_schema_is_refused(tmp_path):
    NpcStore(tmp_path).close()
    db = sqlite3.connect(tmp_path / "npcs.sqlite3")
    db.execute("PRAGMA user_version=99")
    db.commit()
    db.close()
    with pytest.raises(RuntimeError, match="schema 99"):
        NpcStore(tmp_path)


def _writer(path: str, conn) -> None:
    store = NpcStore(path)
    i = 0
    while True:
        imgs = [image_bytes(30 + i % 5, 30, seed=1000 * os.getpid() + i)]
        npc_id = f"p{os.getpid()}_{i}"
        store.create(_record(npc_id, imgs), imgs)
        conn.send(("ok", npc_id, imgs))           # only after create returned
        if i % 3 == 0 and i:
            target = f"p{os.getpid()}_{i - 1}"
            conn.send(("try", target, imgs))      # an update in flight may land or not
            store.update(target, images=imgs, references=_record("x", imgs).references)
            conn.send(("ok", target, imgs))
        i += 1


def test_sigkill_at_random_moments_loses_nothing_confirmed(tmp_path):
    ctx = mp.get_context("fork")
    confirmed: dict[str, list[bytes]] = {}
    in_flight: dict[str, list[bytes]] = {}
    rng = random.Random(0)
    for _ in range(6):
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_writer, args=(str(tmp_path), send))
        proc.start()
        time.sleep(rng.uniform(0.15, 0.6))
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        send.close()
        while recv.poll():
            try:
                state, npc_id, imgs = recv.recv()
            except EOFError:
                break
            if state == "ok":
                confirmed[npc_id] = imgs
                in_flight.pop(npc_id, None)
            else:
                in_flight[npc_id] = imgs
        store = NpcStore(tmp_path)                # reopening cleans up half-done writes
        for npc_id, imgs in confirmed.items():
            rec = store.get(npc_id)
            got = [store.image_bytes(r) for r in rec.references]
            assert got == imgs or got == in_flight.get(npc_id), npc_id
            confirmed[npc_id] = got           # whichever landed is now the state
        referenced = {r.sha256 for rec in store.list(limit=10**6) for r in rec.references}
        assert set(store.images) == referenced
        assert not list(tmp_path.rglob("*.tmp"))
        store.close()
    assert len(confirmed) > 6
