"""The engine thread: all model compute, off the gRPC event loop, batched across sessions.

Every chunk period (more precisely: whenever some session's next chunk falls due) the engine
collects every session that is due, runs one batched `PerformanceModel.step`, encodes the frames
to each session's texture format, and hands them back. Other model work (identity encoding,
opening and closing model sessions) is submitted with `call` and runs between steps, because
the model is not meant to be driven from two threads at once.

The interface is deliberately small (`attach`, `detach`, `call`, `start`, `stop`): the later
scheduler (admission control, priorities) replaces the policy inside `_run`, not the callers.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np

from npc_runtime import texture
from npc_runtime.server.errors import RpcError

import grpc

log = logging.getLogger(__name__)


class ChunkSource(Protocol):
    """What the engine needs from a session (implemented by server.session.Session)."""
    session_id: str
    texture_format: Any
    bottom_up: bool

    def due_time(self) -> float | None: ...
    def make_request(self, now: float) -> Any: ...
    def deliver(self, payloads: list[bytes]) -> None: ...
    def fail(self, error: RpcError) -> None: ...


@dataclass
class EngineStats:
    steps: int = 0
    chunks: int = 0
    busy_s: float = 0.0
    max_batch: int = 0


class Engine:
    def __init__(self, model, clock: Callable[[], float] = time.monotonic,
                 idle_wait_s: float = 0.5) -> None:
        self.model = model
        self.clock = clock
        self.idle_wait_s = idle_wait_s
        self.stats = EngineStats()
        self._sources: list[ChunkSource] = []
        self._jobs: deque[tuple[Callable[[], Any], concurrent.futures.Future]] = deque()
        self._wake = threading.Condition()
        self._running = False
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._running = True
        self._thread = threading.Thread(target=self._run, name="npc-engine", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._wake:
            self._running = False
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        while self._jobs:                                   # nobody will run them now
            _, fut = self._jobs.popleft()
            fut.cancel()

    # --- interface -------------------------------------------------------------------------
    def call(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future:
        """Run fn(*args) on the engine thread, between steps; returns a Future."""
        fut: concurrent.futures.Future = concurrent.futures.Future()
        with self._wake:
            if not self._running:
                fut.set_exception(RuntimeError("engine is stopped"))
                return fut
            self._jobs.append((lambda: fn(*args), fut))
            self._wake.notify_all()
        return fut

    def attach(self, source: ChunkSource) -> None:
        with self._wake:
            self._sources.append(source)
            self._wake.notify_all()

    def detach(self, source: ChunkSource) -> None:
        with self._wake:
            if source in self._sources:
                self._sources.remove(source)

    @property
    def active(self) -> int:
        return len(self._sources)

    def poke(self) -> None:
        """Something changed (e.g. a stop): re-evaluate due times now."""
        with self._wake:
            self._wake.notify_all()

    # --- the loop --------------------------------------------------------------------------
    def _run(self) -> None:
        log.info("engine thread started")
        while True:
            with self._wake:
                if not self._running:
                    break
                jobs = list(self._jobs)
                self._jobs.clear()
            for fn, fut in jobs:
                if fut.set_running_or_notify_cancel():
                    try:
                        fut.set_result(fn())
                    except BaseException as e:  # handed to the waiting coroutine
                        fut.set_exception(e)
            now = self.clock()
            due, next_time = self._due(now)
            if due:
                self._step(due, now)
                continue
            with self._wake:
                if self._running and not self._jobs:
                    wait = self.idle_wait_s if next_time is None else max(0.0, next_time - now)
                    self._wake.wait(min(wait, self.idle_wait_s))
        log.info("engine thread stopped")

    def _due(self, now: float) -> tuple[list[ChunkSource], float | None]:
        with self._wake:
            sources = list(self._sources)
        due, next_time = [], None
        for s in sources:
            t = s.due_time()
            if t is None:
                continue
            if t <= now:
                due.append(s)
            elif next_time is None or t < next_time:
                next_time = t
        return due, next_time

    def _step(self, sources: list[ChunkSource], now: float) -> None:
        t_start = time.perf_counter()
        requests = []
        for s in sources:
            requests.append(s.make_request(now))
        try:
            outputs = self.model.step(requests)
        except Exception:
            # One bad session must not take the others down: retry them one by one.
            log.exception("batched step of %d sessions failed; isolating", len(sources))
            outputs = None
        if outputs is None:
            for s, r in zip(sources, requests):
                try:
                    self._finish(s, self.model.step([r])[0])
                except Exception as e:
                    log.exception("session %s: model step failed", s.session_id)
                    s.fail(RpcError(grpc.StatusCode.INTERNAL, f"model step failed: {e}"))
        else:
            for s, frames in zip(sources, outputs):
                self._finish(s, frames)
        self.stats.steps += 1
        self.stats.chunks += len(sources)
        self.stats.max_batch = max(self.stats.max_batch, len(sources))
        elapsed = time.perf_counter() - t_start
        self.stats.busy_s += elapsed
        log.debug("step: %d session(s) in %.1f ms", len(sources), elapsed * 1e3)

    @staticmethod
    def _finish(source: ChunkSource, frames: np.ndarray) -> None:
        try:
            if source.bottom_up:
                frames = frames[:, ::-1]
            source.deliver(texture.encode(np.ascontiguousarray(frames), source.texture_format))
        except Exception as e:
            log.exception("session %s: texture encoding failed", source.session_id)
            source.fail(RpcError(grpc.StatusCode.INTERNAL, f"texture encoding failed: {e}"))
