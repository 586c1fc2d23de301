"""The sidecar process is SIGKILLed while NPCs are being registered and a stream is running;
after a restart every NPC whose RegisterNpc returned OK is intact, images byte-identical.
Then SIGTERM shuts the restarted server down cleanly (exit code 0)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc

from npc_runtime._proto import npc_pb2, perform_pb2, runtime_pb2_grpc

from .helpers import audio_msg, image_bytes, start_msg, tone_pcm16

REPO = Path(__file__).resolve().parents[2]


def _start(data_dir: Path, tmp: Path, tag: str) -> tuple[subprocess.Popen, str]:
    ready = tmp / f"ready-{tag}.json"
    config = tmp / "server.yaml"
    config.write_text("warmup_chunks: 0\nmodel_steps: 1\nshutdown_grace_s: 2.0\n"
                      "limits: {max_sessions: 2}\n")
    log = open(tmp / f"server-{tag}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "npc_runtime", "serve", "--port", "0",
                             "--data-dir", str(data_dir), "--config", str(config),
                             "--ready-file", str(ready)], cwd=REPO, stdout=log, stderr=log)
    deadline = time.monotonic() + 90
    while not ready.exists():
        assert proc.poll() is None, (tmp / f"server-{tag}.log").read_text()
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.1)
    return proc, f"127.0.0.1:{json.loads(ready.read_text())['port']}"


def test_sigkill_while_registering_and_streaming(tmp_path):
    data = tmp_path / "data"
    proc, target = _start(data, tmp_path, "a")
    confirmed: dict[str, list[bytes]] = {}
    attempted: dict[str, list[bytes]] = {}
    stop = threading.Event()

    def register_loop() -> None:
        with grpc.insecure_channel(target) as ch:
            stub = runtime_pb2_grpc.NpcRuntimeStub(ch)
            i = 0
            while not stop.is_set():
                npc_id = f"npc{i:04d}"
                images = [image_bytes(64 + i % 7, 64, seed=i), image_bytes(40, 48, i + 1, "JPEG")]
                attempted[npc_id] = images
                try:
                    stub.RegisterNpc(npc_pb2.RegisterNpcRequest(
                        npc_id=npc_id, display_name=f"N{i}", reference_images=images), timeout=10)
                    confirmed[npc_id] = images
                except grpc.RpcError:
                    return                                  # the server died under us
                i += 1

    def stream_loop() -> None:
        with grpc.insecure_channel(target) as ch:
            stub = runtime_pb2_grpc.NpcRuntimeStub(ch)
            while "npc0000" not in confirmed and not stop.is_set():
                time.sleep(0.01)

            def requests():
                yield start_msg("npc0000")
                for k in range(200):
                    if stop.is_set():
                        return
                    yield audio_msg(tone_pcm16(0.04, seed=k))
                    time.sleep(0.04)
            try:
                for _ in stub.Perform(requests(), timeout=30):
                    pass
            except grpc.RpcError:
                pass

    threads = [threading.Thread(target=register_loop), threading.Thread(target=stream_loop)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(confirmed) < 15 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)                        # mid-registration, mid-stream
    proc.wait(10)
    stop.set()
    for t in threads:
        t.join(30)
    assert len(confirmed) >= 15

    proc, target = _start(data, tmp_path, "b")
    try:
        with grpc.insecure_channel(target) as ch:
            stub = runtime_pb2_grpc.NpcRuntimeStub(ch)
            for npc_id, images in confirmed.items():
                npc = stub.GetNpc(npc_pb2.GetNpcRequest(npc_id=npc_id, include_images=True),
                                  timeout=10)
                assert [r.data for r in npc.references] == images, npc_id
            # one registration may have been in flight: present and whole, or absent
            listed = {n.npc_id for n in stub.ListNpcs(npc_pb2.ListNpcsRequest(page_size=1000),
                                                      timeout=10).npcs}
            assert set(confirmed) <= listed <= set(attempted)
            for npc_id in listed - set(confirmed):
                npc = stub.GetNpc(npc_pb2.GetNpcRequest(npc_id=npc_id, include_images=True),
                                  timeout=10)
                assert [r.data for r in npc.references] == attempted[npc_id]
            # no orphaned image files survive the restart's cleanup
            on_disk = {p.name for p in (data / "images").rglob("*") if p.is_file()}
            referenced = {r.sha256 for n in stub.ListNpcs(npc_pb2.ListNpcsRequest(
                page_size=1000), timeout=10).npcs for r in n.references}
            assert on_disk == referenced
            # and it still works
            stub.RegisterNpc(npc_pb2.RegisterNpcRequest(npc_id="after", reference_images=[
                image_bytes(seed=99)]), timeout=10)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, (tmp_path / "server-b.log").read_text()[-2000:]
