"""Serving metrics: per-stream and global QoS, kept once and shown two ways.

`ServerMetrics` owns a private Prometheus `CollectorRegistry` (so several servers can live in one
process, as in the tests) and bounded in-memory summaries from which the `GetStats` RPC reports
percentiles. Per stream, `SessionMetrics` records what the client notices:

* fps: frames sent over the last `FPS_WINDOW_S` seconds;
* time to first frame: stream open (StartPerformance received) to the first frame sent;
* audio-to-frame latency: frame sent minus arrival of the audio covering that frame's pts
  (frames over silence that never arrived are not counted);
* deadline misses: frames sent more than half a frame period after their pacing time;
* dropped / held / degraded: the scheduler's degradation, counted per frame or chunk.

Updated from the event loop (frames, audio) and the engine thread (steps); a lock guards the
in-memory summaries, the Prometheus objects are thread-safe themselves.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter as Tally
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

FPS_WINDOW_S = 5.0
RESERVOIR = 4096            # latency samples kept for percentiles (global and per stream)
_LAT_BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0)
_STEP_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0)
_BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)


def percentiles(samples) -> dict[str, float]:
    """p50/p99/max in milliseconds of samples in seconds."""
    if not samples:
        return {"p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0, "count": 0}
    a = np.fromiter(samples, np.float64) * 1e3
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
            "max_ms": float(a.max()), "count": int(len(a))}


@dataclass
class SessionMetrics:
    session_id: str
    npc_id: str
    priority: str
    opened_at: float
    first_frame_at: float | None = None
    frames_sent: int = 0
    deadline_misses: int = 0
    frames_dropped: int = 0
    frames_held: int = 0
    degraded_chunks: int = 0
    latencies: deque = field(default_factory=lambda: deque(maxlen=RESERVOIR))
    recent: deque = field(default_factory=lambda: deque(maxlen=2048))   # frame send times
    _audio: deque = field(default_factory=lambda: deque(maxlen=4096))   # (end_us, arrival)

    def fps(self, now: float) -> float:
        while self.recent and self.recent[0] < now - FPS_WINDOW_S:
            self.recent.popleft()
        span = min(FPS_WINDOW_S, now - (self.first_frame_at or now))
        return len(self.recent) / span if span > 0.5 else 0.0

    def audio_latency(self, frame_end_us: int, sent_at: float) -> float | None:
        """Latency of a frame whose span ends at frame_end_us; forgets audio before it."""
        while self._audio and self._audio[0][0] < frame_end_us:
            self._audio.popleft()
        if not self._audio:
            return None
        return sent_at - self._audio[0][1]


class ServerMetrics:
    """All metrics of one server: Prometheus collectors + summaries for GetStats."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.started_at = time.monotonic()
        r = self.registry
        self.p_frames = Counter("npc_runtime_frames_sent", "Frames sent to clients",
                                ["priority"], registry=r)
        self.p_misses = Counter("npc_runtime_deadline_misses",
                                "Frames sent more than half a frame period late", registry=r)
        self.p_dropped = Counter("npc_runtime_frames_dropped",
                                 "Frames skipped because the server fell behind", registry=r)
        self.p_held = Counter("npc_runtime_frames_held",
                              "Frames repeated instead of rendered (background degradation)",
                              registry=r)
        self.p_degraded = Counter("npc_runtime_degraded_chunks",
                                  "Chunks rendered with fewer sampling steps", registry=r)
        self.p_refused = Counter("npc_runtime_streams_refused",
                                 "Streams refused with RESOURCE_EXHAUSTED", registry=r)
        self.p_steps = Counter("npc_runtime_model_steps", "Batched model steps run", registry=r)
        self.p_chunks = Counter("npc_runtime_chunks", "Session chunks computed",
                                ["sampling_steps"], registry=r)
        self.p_batch = Histogram("npc_runtime_batch_size", "Sessions per model step",
                                 buckets=_BATCH_BUCKETS, registry=r)
        self.p_step = Histogram("npc_runtime_step_seconds", "Wall time of one batched step "
                                "(model + texture encoding)", buckets=_STEP_BUCKETS, registry=r)
        self.p_ttff = Histogram("npc_runtime_time_to_first_frame_seconds",
                                "Stream open to first frame sent", buckets=_LAT_BUCKETS,
                                registry=r)
        self.p_a2f = Histogram("npc_runtime_audio_to_frame_seconds",
                               "Audio arrival to the frame at its pts being sent",
                               buckets=_LAT_BUCKETS, registry=r)
        self.p_active = Gauge("npc_runtime_active_sessions", "Live Perform streams", registry=r)
        self.p_capacity = Gauge("npc_runtime_capacity", "Streams admitted at most now",
                                registry=r)
        self.p_level = Gauge("npc_runtime_degradation_level",
                             "0 full, 1 fewer steps, 2 background half fps", registry=r)
        self.p_fps = Gauge("npc_runtime_fps", "Frames sent per second, all streams", registry=r)
        self.p_session_fps = Gauge("npc_runtime_session_fps", "Frames sent per second",
                                   ["npc_id"], registry=r)
        self.p_pages_used = Gauge("npc_runtime_cache_pages_used", "KV-cache pages in use",
                                  registry=r)
        self.p_pages_total = Gauge("npc_runtime_cache_pages_total", "KV-cache pages in the pool",
                                   registry=r)
        self._lock = threading.Lock()
        self.sessions: dict[str, SessionMetrics] = {}
        self.totals = Tally()
        self.batch_sizes: Tally = Tally()
        self.step_times: deque = deque(maxlen=RESERVOIR)
        self.ttff: deque = deque(maxlen=RESERVOIR)
        self.a2f: deque = deque(maxlen=RESERVOIR)
        self.busy_s = 0.0
        self._http = None

    # --- streams (event loop) --------------------------------------------------------------
    def open_session(self, session_id: str, npc_id: str, priority: str,
                     opened_at: float) -> SessionMetrics:
        m = SessionMetrics(session_id, npc_id, priority, opened_at)
        with self._lock:
            self.sessions[session_id] = m
        return m

    def close_session(self, m: SessionMetrics) -> None:
        with self._lock:
            self.sessions.pop(m.session_id, None)
        try:
            self.p_session_fps.remove(m.npc_id)
        except KeyError:
            pass

    def audio_arrived(self, m: SessionMetrics, end_us: int, at: float) -> None:
        m._audio.append((end_us, at))

    def frame_sent(self, m: SessionMetrics, frame_end_us: int, due_at: float, sent_at: float,
                   late_after_s: float) -> None:
        late = sent_at - due_at > late_after_s
        latency = m.audio_latency(frame_end_us, sent_at)
        with self._lock:
            first = m.first_frame_at is None
            if first:
                m.first_frame_at = sent_at
                self.ttff.append(sent_at - m.opened_at)
            m.frames_sent += 1
            m.recent.append(sent_at)
            self.totals["frames"] += 1
            if late:
                m.deadline_misses += 1
                self.totals["misses"] += 1
            if latency is not None:
                m.latencies.append(latency)
                self.a2f.append(latency)
        self.p_frames.labels(m.priority).inc()
        if first:
            self.p_ttff.observe(sent_at - m.opened_at)
        if late:
            self.p_misses.inc()
        if latency is not None:
            self.p_a2f.observe(latency)

    def frames_dropped(self, m: SessionMetrics, n: int) -> None:
        with self._lock:
            m.frames_dropped += n
            self.totals["dropped"] += n
        self.p_dropped.inc(n)

    def refused(self) -> None:
        with self._lock:
            self.totals["refused"] += 1
        self.p_refused.inc()

    # --- engine thread ---------------------------------------------------------------------
    def step_done(self, batch: int, steps: int, seconds: float, degraded: bool) -> None:
        with self._lock:
            self.batch_sizes[batch] += 1
            self.step_times.append(seconds)
            self.totals["steps"] += 1
            self.totals["chunks"] += batch
            self.busy_s += seconds
            if degraded:
                self.totals["degraded"] += batch
        self.p_steps.inc()
        self.p_chunks.labels(str(steps)).inc(batch)
        self.p_batch.observe(batch)
        self.p_step.observe(seconds)
        if degraded:
            self.p_degraded.inc(batch)

    def chunk_degraded(self, m: SessionMetrics | None) -> None:
        if m is not None:
            m.degraded_chunks += 1

    def chunk_held(self, m: SessionMetrics | None, frames: int) -> None:
        with self._lock:
            self.totals["held"] += frames
            if m is not None:
                m.frames_held += frames
        self.p_held.inc(frames)

    # --- reading ---------------------------------------------------------------------------
    def refresh(self, now: float, active: int, capacity: int, level: int, pages_used: int,
                pages_total: int) -> float:
        """Update the gauges; returns the global fps."""
        with self._lock:
            per = {m.npc_id: m.fps(now) for m in self.sessions.values()}
        for npc_id, fps in per.items():
            self.p_session_fps.labels(npc_id).set(fps)
        total = float(sum(per.values()))
        self.p_fps.set(total)
        self.p_active.set(active)
        self.p_capacity.set(capacity)
        self.p_level.set(level)
        self.p_pages_used.set(pages_used)
        self.p_pages_total.set(pages_total)
        return total

    def snapshot(self) -> dict:
        with self._lock:
            return {"totals": dict(self.totals), "batch_sizes": dict(self.batch_sizes),
                    "step_time": percentiles(self.step_times), "ttff": percentiles(self.ttff),
                    "a2f": percentiles(self.a2f), "busy_s": self.busy_s,
                    "sessions": list(self.sessions.values())}

    # --- Prometheus endpoint ---------------------------------------------------------------
    def serve_http(self, address: str, port: int) -> int:
        """Serve /metrics on address:port (0 = any free port); returns the port."""
        self._http, _ = start_http_server(port, addr=address, registry=self.registry)
        bound = self._http.server_address[1]
        log.info("Prometheus metrics on http://%s:%d/metrics", address, bound)
        return bound

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
