"""Test helpers: an in-process grpc.aio server on its own thread, images and audio."""

from __future__ import annotations

import asyncio
import io
import threading
from pathlib import Path

import grpc
import numpy as np
from PIL import Image

from npc_runtime._proto import npc_pb2, perform_pb2, runtime_pb2_grpc
from npc_runtime.server.app import RunningServer, start_server
from npc_runtime.server.config import ServerConfig


class ServerThread:
    """A real grpc.aio server on 127.0.0.1:<OS-chosen port>, driven by its own event loop."""

    def __init__(self, data_dir: Path, model, **overrides) -> None:
        self.config = ServerConfig(address="127.0.0.1", port=0, data_dir=str(data_dir),
                                   warmup_chunks=0, shutdown_grace_s=2.0)
        # A fixed capacity (limits.max_sessions): these tests are about the protocol, not about
        # how many streams this shared CPU sustains (tests/server/test_scheduler*.py are).
        self.config.admission.measured = False
        self.config.admission.calibrate = False
        for key, value in overrides.items():
            obj = self.config
            *path, last = key.split("__")
            for p in path:
                obj = getattr(obj, p)
            setattr(obj, last, value)
        self.model = model
        self.loop = asyncio.new_event_loop()
        self.running: RunningServer | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def boot() -> None:
            try:
                self.running = await start_server(self.config, self.model)
            except BaseException as e:
                self._error = e
            finally:
                self._ready.set()

        self.loop.run_until_complete(boot())
        if self.running is not None:
            self.loop.run_forever()
        self.loop.close()

    def __enter__(self) -> "ServerThread":
        self._thread.start()
        self._ready.wait(120)
        if self._error is not None:
            raise self._error
        self.target = f"127.0.0.1:{self.running.port}"
        return self

    def call(self, coro_fn, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coro_fn(), self.loop).result(timeout)

    def stop(self, grace_s: float = 2.0) -> None:
        if self.running is not None and self.loop.is_running():
            self.call(lambda: self.running.stop(grace_s), timeout=grace_s + 30)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)

    def __exit__(self, *exc) -> None:
        self.stop()

    def stub(self) -> tuple[grpc.Channel, runtime_pb2_grpc.NpcRuntimeStub]:
        limit = self.config.limits.max_message_bytes * 2
        channel = grpc.insecure_channel(self.target, options=[
            ("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit)])
        return channel, runtime_pb2_grpc.NpcRuntimeStub(channel)


def image_bytes(width: int = 96, height: int = 80, seed: int = 0, fmt: str = "PNG") -> bytes:
    """A smooth synthetic face-ish picture (gradients and a disc), deterministic per seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 200, 3)
    img = np.stack([base[c] + 40 * np.sin(x / (9 + 3 * c) + y / 13) for c in range(3)], -1)
    disc = (x - width / 2) ** 2 + (y - height / 2) ** 2 < (min(width, height) / 3) ** 2
    img[disc] = rng.uniform(120, 240, 3)
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, fmt)
    return buf.getvalue()


def tone_pcm16(seconds: float, rate: int = 16000, freq: float = 220.0, amp: float = 0.3,
               seed: int = 0) -> bytes:
    """A voiced-sounding tone with syllable-like amplitude modulation, as PCM16 bytes."""
    t = np.arange(int(seconds * rate)) / rate
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * t + seed)
    x = amp * env * np.sin(2 * np.pi * freq * t)
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


def register(stub, npc_id: str = "blacksmith", **kwargs) -> npc_pb2.Npc:
    kwargs.setdefault("reference_images", [image_bytes()])
    kwargs.setdefault("display_name", "Blacksmith")
    return stub.RegisterNpc(npc_pb2.RegisterNpcRequest(npc_id=npc_id, **kwargs), timeout=30)


def start_msg(npc_id: str, **kwargs) -> perform_pb2.PerformRequest:
    return perform_pb2.PerformRequest(start=perform_pb2.StartPerformance(npc_id=npc_id, **kwargs))


def audio_msg(pcm: bytes, channel: int = perform_pb2.AUDIO_CHANNEL_SPEAK, rate: int = 16000,
              pts_us: int | None = None) -> perform_pb2.PerformRequest:
    a = perform_pb2.AudioChunk(channel=channel, pcm16=pcm, sample_rate=rate)
    if pts_us is not None:
        a.pts_us = pts_us
    return perform_pb2.PerformRequest(audio=a)
