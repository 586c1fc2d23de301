"""The engine thread: all model compute, off the gRPC event loop, batched across sessions.

Each tick the engine asks the scheduler (server.scheduler) what is due, runs one batched
`PerformanceModel.step` per batch it returns (at the batch's sampling-step count), encodes the
textures of the whole batch in one call per texture format, hands every session its frames,
holds the chunks the scheduler chose to hold, and reports the measured durations back. Other
model work (identity encoding, opening and closing model sessions, calibration) is submitted
with `call` and runs between ticks, because the model is driven from this one thread only.

Callers see `attach`, `detach`, `call`, `poke`, `align`, `start`, `stop`: the policy lives in
the scheduler, the measurement in admission.CostModel, the counters in metrics.ServerMetrics.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

import grpc
import numpy as np

from npc_runtime import texture
from npc_runtime.server.admission import CostModel, set_sampling_steps
from npc_runtime.server.config import SchedulerConfig
from npc_runtime.server.errors import RpcError
from npc_runtime.server.metrics import ServerMetrics
from npc_runtime.server.scheduler import (Batch, ChunkSource, DeadlineScheduler, Priority,
                                          Scheduler)

log = logging.getLogger(__name__)


@dataclass
class EngineStats:
    steps: int = 0
    chunks: int = 0
    held_chunks: int = 0
    busy_s: float = 0.0
    max_batch: int = 0


class Engine:
    def __init__(self, model, clock: Callable[[], float] = time.monotonic,
                 idle_wait_s: float = 0.5, scheduler: Scheduler | None = None,
                 cost: CostModel | None = None, metrics: ServerMetrics | None = None,
                 scheduler_cfg: SchedulerConfig | None = None) -> None:
        self.model = model
        self.clock = clock
        self.idle_wait_s = idle_wait_s
        self.stats = EngineStats()
        self.cost = cost or CostModel()
        self.full_steps = int(getattr(model, "steps", 1))
        self.scheduler_cfg = scheduler_cfg or SchedulerConfig()
        self.scheduler = scheduler or DeadlineScheduler(self.scheduler_cfg, self.cost,
                                                        self.full_steps)
        self.metrics = metrics or ServerMetrics()
        self.tick_origin = clock()        # the tick grid streams are aligned to
        self._pending: deque[tuple[str, ChunkSource, Priority]] = deque()
        self._jobs: deque[tuple[Callable[[], Any], concurrent.futures.Future]] = deque()
        self._wake = threading.Condition()
        self._members: set[int] = set()
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
        """Run fn(*args) on the engine thread, between ticks; returns a Future."""
        fut: concurrent.futures.Future = concurrent.futures.Future()
        with self._wake:
            if not self._running:
                fut.set_exception(RuntimeError("engine is stopped"))
                return fut
            self._jobs.append((lambda: fn(*args), fut))
            self._wake.notify_all()
        return fut

    def attach(self, source: ChunkSource, priority: Priority = Priority.NORMAL) -> None:
        """The session joins the scheduler at the next tick (a chunk boundary)."""
        with self._wake:
            self._pending.append(("add", source, priority))
            self._members.add(id(source))
            self._wake.notify_all()

    def detach(self, source: ChunkSource) -> None:
        with self._wake:
            self._pending.append(("finish", source, Priority.NORMAL))
            self._members.discard(id(source))
            self._wake.notify_all()

    @property
    def active(self) -> int:
        with self._wake:
            return len(self._members)

    def poke(self) -> None:
        """Something changed (e.g. a stop): re-evaluate due times now."""
        with self._wake:
            self._wake.notify_all()

    def align(self, first_due: float, period: float) -> float:
        """Delay (s, in [0, period)) that moves `first_due` onto the engine's tick grid, so
        streams started at any moment fall due together and share model steps."""
        if not self.scheduler_cfg.align_to_tick or period <= 0:
            return 0.0
        return (self.tick_origin - first_due) % period

    # --- the loop --------------------------------------------------------------------------
    def _run(self) -> None:
        log.info("engine thread started")
        while True:
            with self._wake:
                if not self._running:
                    break
                jobs = list(self._jobs)
                self._jobs.clear()
                changes = list(self._pending)
                self._pending.clear()
            for op, source, priority in changes:
                if op == "add":
                    self.scheduler.add_session(source, priority)
                else:
                    self.scheduler.finish(source)
            for fn, fut in jobs:
                if fut.set_running_or_notify_cancel():
                    try:
                        fut.set_result(fn())
                    except BaseException as e:  # handed to the waiting coroutine
                        fut.set_exception(e)
            now = self.clock()
            out = self.scheduler.schedule(now)
            if not out.empty:
                self._tick(out, now)
                continue
            with self._wake:
                if self._running and not self._jobs and not self._pending:
                    wait = (self.idle_wait_s if out.next_due is None
                            else max(0.0, out.next_due - now))
                    self._wake.wait(min(wait, self.idle_wait_s))
        log.info("engine thread stopped")

    def _tick(self, out, now: float) -> None:
        for source in out.held:
            t0 = time.perf_counter()
            frames = source.hold(now)
            self.stats.held_chunks += 1
            self.stats.busy_s += time.perf_counter() - t0
            self.metrics.chunk_held(getattr(source, "metrics", None), frames)
        durations = [self._step(batch, now) for batch in out.batches]
        self.scheduler.update_from_output(out, durations, self.clock())

    def _step(self, batch: Batch, now: float) -> float:
        t_start = time.perf_counter()
        sources = batch.sources
        requests = [s.make_request(now) for s in sources]
        set_sampling_steps(self.model, batch.steps)
        try:
            outputs = self.model.step(requests)
        except Exception:
            # One bad session must not take the others down: retry them one by one.
            log.exception("batched step of %d sessions failed; isolating", len(sources))
            outputs = None
        finally:
            set_sampling_steps(self.model, self.full_steps)
        if outputs is None:
            outputs = []
            for s, r in zip(sources, requests):
                try:
                    outputs.append(self.model.step([r])[0])
                except Exception as e:
                    log.exception("session %s: model step failed", s.session_id)
                    s.fail(RpcError(grpc.StatusCode.INTERNAL, f"model step failed: {e}"))
                    outputs.append(None)
        self._encode_and_deliver(sources, outputs)
        if batch.degraded:
            for s in sources:
                self.metrics.chunk_degraded(getattr(s, "metrics", None))
        elapsed = time.perf_counter() - t_start
        self.stats.steps += 1
        self.stats.chunks += len(sources)
        self.stats.max_batch = max(self.stats.max_batch, len(sources))
        self.stats.busy_s += elapsed
        self.metrics.step_done(len(sources), batch.steps, elapsed, batch.degraded)
        log.debug("step: %d session(s) at %d step(s) in %.1f ms", len(sources), batch.steps,
                  elapsed * 1e3)
        return elapsed

    @staticmethod
    def _encode_and_deliver(sources: list[ChunkSource], outputs: list) -> None:
        """Encode the textures of the whole batch in one call per (format, orientation)."""
        groups: dict[tuple[Any, bool], list[int]] = {}
        for i, (s, frames) in enumerate(zip(sources, outputs)):
            if frames is not None:
                groups.setdefault((s.texture_format, bool(s.bottom_up)), []).append(i)
        for (fmt, bottom_up), idx in groups.items():
            frames = np.concatenate([outputs[i] for i in idx])           # (n*C, H, W, 3)
            if bottom_up:
                frames = frames[:, ::-1]
            try:
                payloads = texture.encode(np.ascontiguousarray(frames), fmt)
            except Exception as e:
                log.exception("texture encoding of %d session(s) failed", len(idx))
                for i in idx:
                    sources[i].fail(RpcError(grpc.StatusCode.INTERNAL,
                                             f"texture encoding failed: {e}"))
                continue
            c = len(outputs[idx[0]])
            for j, i in enumerate(idx):
                sources[i].deliver(payloads[j * c:(j + 1) * c])
