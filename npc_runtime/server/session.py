"""One live Perform stream: audio tracks, emotion and line tracks, and the frame clock.

Timing model. The stream starts at monotonic time t0. Frame i (pts = i / fps) is sent at
t0 + latency + pts, where latency = the model's audio lookahead + one compute lead + a jitter
margin: by the time chunk k is computed (one lead before its first frame is due), a client
sending in real time has delivered all the audio that chunk needs, lookahead included. Chunk k is
computed whether or not its audio came: missing audio is silence, so the stream never stalls.

Buffers. Audio further than `max_audio_ahead_s` past the frame clock is not accepted yet: the
reader waits (HTTP/2 flow control then slows the client). Audio for time already rendered is
kept only as history and reported as AUDIO_LATE. If the engine falls behind real time by more
than `max_lag_s`, the session skips ahead to the current time (FRAMES_DROPPED) so latency stays
bounded.

Overload. Under the scheduler's level-2 degradation a background session's chunk can be *held*
(`hold`): its frames advance the clock with exact pts and events but repeat the last rendered
frame, so the stream keeps its pace without a model step.

Threads. Client messages arrive on the event loop; the engine thread calls `make_request`,
`hold` and `deliver`. A lock guards the shared state; `deliver` hands results to the loop's queue.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from npc_runtime.server.audio import AudioTrack
from npc_runtime.server.config import Limits, StreamConfig
from npc_runtime.server.errors import RpcError
from npc_runtime.server.timeline import EmotionTrack, LineMarker, LineTrack

log = logging.getLogger(__name__)

SPEAK, LISTEN = "SPEAK", "LISTEN"


@dataclass(frozen=True)
class ModelTiming:
    """What the session needs to know about the model (read once from PerformanceModel)."""
    fps: int
    chunk_frames: int
    sample_rate: int
    emotion_dim: int
    audio_span: Callable[[int], tuple[int, int]]

    @property
    def chunk_s(self) -> float:
        return self.chunk_frames / self.fps

    def pts_us(self, frame_index: int) -> int:
        return frame_index * 1_000_000 // self.fps

    def sample_at_us(self, t_us: int) -> int:
        return t_us * self.sample_rate // 1_000_000


@dataclass
class OutEvent:
    kind: str                     # PerformanceEvent.Kind name
    pts_us: int = 0
    line_id: str = ""
    message: str = ""
    duration_us: int = 0
    frame_count: int = 0


@dataclass
class OutFrame:
    index: int
    pts_us: int
    speaking: bool
    listening: bool
    emotion: np.ndarray
    line_id: str
    payload: bytes = b""
    events: list[OutEvent] = field(default_factory=list)   # sent just before this frame


@dataclass
class PendingChunk:
    chunk_index: int
    frames: list[OutFrame]


class EndOfStream:
    """Queue item: all frames are out; close the stream."""


class Session:
    def __init__(self, session_id: str, npc_id: str, timing: ModelTiming, limits: Limits,
                 stream_cfg: StreamConfig, initial_emotion: np.ndarray,
                 loop: asyncio.AbstractEventLoop, texture_format, bottom_up: bool = False,
                 clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.session_id, self.npc_id = session_id, npc_id
        self.timing, self.limits, self.cfg = timing, limits, stream_cfg
        self.loop, self.clock = loop, clock
        self.texture_format, self.bottom_up = texture_format, bottom_up
        self.queue: asyncio.Queue = asyncio.Queue()
        self.tracks = {name: AudioTrack(name, timing.sample_rate, limits.min_sample_rate,
                                        limits.max_sample_rate, limits.max_audio_chunk_s,
                                        limits.max_audio_gap_s) for name in (SPEAK, LISTEN)}
        self.emotions = EmotionTrack(initial_emotion, limits.max_pending_cues)
        self.lines = LineTrack(limits.max_pending_cues)
        lookahead_s = timing.audio_span(0)[1] / timing.sample_rate   # audio end of chunk 0
        self.lead_s = stream_cfg.compute_lead_chunks * timing.chunk_s
        self.latency_s = lookahead_s + self.lead_s + stream_cfg.jitter_margin_s
        self.vad_level = 10.0 ** (stream_cfg.vad_threshold_dbfs / 20.0)
        self.t0 = clock()
        self.model_session: int | None = None       # set by the engine when attached
        self.failure: RpcError | None = None         # ends the stream with this status
        self._lock = threading.Lock()
        self._next_chunk = 0
        self._in_flight = False
        self._end_frame: int | None = None           # set by stop(): frames [0, end) are rendered
        self._ended = False
        self._cue_starts: list[tuple[int, str]] = []  # (pts, description) for EMOTION_APPLIED
        self._last_line: str = ""
        self._pending: PendingChunk | None = None
        self._last_payload: bytes | None = None      # repeated when a chunk is held
        self.metrics = None                           # metrics.SessionMetrics, set by perform

    # --- clock -----------------------------------------------------------------------------
    def frame_send_time(self, index: int) -> float:
        return self.t0 + self.latency_s + self.timing.pts_us(index) / 1e6

    def clock_us(self) -> int:
        """The frame clock: pts of the frame being shown now (may be negative at the start)."""
        return int((self.clock() - self.t0 - self.latency_s) * 1e6)

    def frontier_us(self) -> int:
        """pts of the first frame not yet computed (earlier times can no longer change)."""
        return self.timing.pts_us(self._next_chunk * self.timing.chunk_frames)

    # --- client messages (event loop) ------------------------------------------------------
    def audio_wait_s(self, channel: str, end_us: int) -> float:
        """How long the reader must wait before audio ending at end_us fits the buffer."""
        ahead_us = end_us - max(self.clock_us(), 0)
        excess = ahead_us - self.limits.max_audio_ahead_s * 1e6
        return max(0.0, excess / 1e6)

    def add_audio(self, channel: str, pcm16: bytes, sample_rate: int, pts_us: int | None
                  ) -> tuple[np.ndarray, int]:
        """Validate a chunk (raises RpcError, nothing changes); returns (samples, start pts)."""
        return self.tracks[channel].check(pcm16, sample_rate, pts_us)

    def commit_audio(self, channel: str, samples: np.ndarray, sample_rate: int, start_us: int
                     ) -> OutEvent | None:
        track = self.tracks[channel]
        with self._lock:
            track.frontier = self.timing.sample_at_us(self.frontier_us())
            res = track.write(samples, sample_rate, start_us)
        lost = res.late_samples + res.dropped_samples
        if lost:
            return OutEvent("AUDIO_LATE", pts_us=start_us,
                            duration_us=lost * 1_000_000 // self.timing.sample_rate,
                            message=f"{channel} audio arrived after its frames were rendered")
        return None

    def check_emotion(self, pts_us: int | None, transition_s: float) -> None:
        with self._lock:
            self.emotions.check_cue(pts_us, transition_s, self.limits.max_transition_s)

    def add_emotion(self, weights: np.ndarray, pts_us: int | None, transition_s: float,
                    description: str) -> None:
        with self._lock:
            start = self.emotions.add_cue(weights, pts_us, transition_s, self.frontier_us())
            self._cue_starts.append((start, description))

    def check_line(self, marker: LineMarker) -> None:
        with self._lock:
            self.lines.check(marker.line_id, marker.start_us, marker.end_us, marker.text)

    def add_line(self, marker: LineMarker) -> None:
        with self._lock:
            self.lines.add(marker)

    def stop(self, immediate: bool = False, deadline_s: float | None = None) -> None:
        """Render up to the end of the audio received (or nothing more), then end."""
        with self._lock:
            for track in self.tracks.values():
                track.flush()
            if immediate:
                end_frame = self._next_chunk * self.timing.chunk_frames
            else:
                end_us = max(t.end_us for t in self.tracks.values())
                end_frame = math.ceil(end_us * self.timing.fps / 1e6)
            if deadline_s is not None:        # shutdown: whatever is due before the deadline
                by_deadline = int((deadline_s - self.t0 - self.latency_s) * self.timing.fps)
                end_frame = min(end_frame, max(by_deadline, 0))
            self._end_frame = end_frame if self._end_frame is None else min(end_frame,
                                                                            self._end_frame)
            self._maybe_end_locked()

    def fail(self, error: RpcError) -> None:
        """End the stream with an error status (from any thread)."""
        if self.failure is None:
            self.failure = error
        self._post(EndOfStream())

    # --- engine side (engine thread) -------------------------------------------------------
    def due_time(self) -> float | None:
        """Monotonic time the next chunk should be computed; None if nothing is left to do."""
        with self._lock:
            if self._ended or self._in_flight or self._done_locked():
                return None
            first = self._next_chunk * self.timing.chunk_frames
            return self.frame_send_time(first) - self.lead_s

    def make_request(self, now: float):
        """The model inputs of the next chunk (and its frames' metadata, kept until deliver)."""
        from npc_runtime.pipeline import ChunkRequest   # heavy import, engine side only
        with self._lock:
            speak, listen, emotion = self._next_chunk_locked(now)
            self._in_flight = True
        return ChunkRequest(self.model_session, speak, listen, emotion)

    def can_hold(self) -> bool:
        """A chunk can be held (not rendered) once one has been rendered to repeat."""
        return self._last_payload is not None

    def hold(self, now: float) -> int:
        """Overload degradation: advance one chunk without the model, repeating the last
        rendered frame (pts, events and speaking flags stay exact). Returns frames held."""
        with self._lock:
            self._next_chunk_locked(now)
            pending, self._pending = self._pending, None
            for frame in pending.frames:
                frame.payload = self._last_payload
            self._post(pending)
            self._maybe_end_locked()
            return len(pending.frames)

    def _next_chunk_locked(self, now: float):
        skipped = self._skip_if_behind(now)
        k = self._next_chunk
        c, t = self.timing.chunk_frames, self.timing
        start, end = t.audio_span(k)
        speak = self.tracks[SPEAK].read(start, end)
        listen = self.tracks[LISTEN].read(start, end)
        pts = [t.pts_us(k * c + i) for i in range(c)]
        emotion = self.emotions.frames(pts)
        frames = [self._frame_meta(k * c + i, pts[i], speak, listen, start, emotion[i])
                  for i in range(c)]
        if skipped:
            frames[0].events.insert(0, skipped)
        self._pending = PendingChunk(k, frames)
        self._next_chunk = k + 1
        self._release_history()
        return speak, listen, emotion

    def deliver(self, payloads: list[bytes]) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
            self._in_flight = False
            for frame, payload in zip(pending.frames, payloads):
                frame.payload = payload
            if payloads:
                self._last_payload = payloads[-1]
            self._post(pending)
            self._maybe_end_locked()

    # --- internals -------------------------------------------------------------------------
    def _post(self, item) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:          # loop closed: the stream is gone already
            pass

    def _done_locked(self) -> bool:
        return (self._end_frame is not None
                and self._next_chunk * self.timing.chunk_frames >= self._end_frame)

    def _maybe_end_locked(self) -> None:
        if not self._ended and not self._in_flight and self._done_locked():
            self._ended = True
            self._post(EndOfStream())

    def _skip_if_behind(self, now: float) -> OutEvent | None:
        c = self.timing.chunk_frames
        due = self.frame_send_time(self._next_chunk * c) - self.lead_s
        if now - due <= self.cfg.max_lag_s:
            return None
        behind = int((now - due) / self.timing.chunk_s)
        old = self._next_chunk
        self._next_chunk += behind
        log.warning("session %s: %.2f s behind real time, skipping %d frames",
                    self.session_id, now - due, behind * c)
        return OutEvent("FRAMES_DROPPED", pts_us=self.timing.pts_us(old * c),
                        frame_count=behind * c, message="server fell behind real time")

    def _frame_meta(self, index: int, pts: int, speak: np.ndarray, listen: np.ndarray,
                    span_start: int, emotion: np.ndarray) -> OutFrame:
        t = self.timing
        a = t.sample_at_us(pts) - span_start
        b = t.sample_at_us(t.pts_us(index + 1)) - span_start
        rms = lambda x: float(np.sqrt(np.mean(np.square(x[a:b])))) if b > a else 0.0  # noqa: E731
        events: list[OutEvent] = []
        line = self.lines.line_at(pts)
        line_id = line.line_id if line else ""
        if line_id != self._last_line:
            if self._last_line:
                events.append(OutEvent("LINE_FINISHED", pts_us=pts, line_id=self._last_line))
            if line:
                events.append(OutEvent("LINE_STARTED", pts_us=pts, line_id=line_id,
                                       message=line.text))
            self._last_line = line_id
        while self._cue_starts and self._cue_starts[0][0] <= pts:
            events.append(OutEvent("EMOTION_APPLIED", pts_us=pts,
                                   message=self._cue_starts.pop(0)[1]))
        return OutFrame(index, pts, rms(speak) > self.vad_level, rms(listen) > self.vad_level,
                        emotion, line_id, events=events)

    def _release_history(self) -> None:
        keep_from = self.timing.audio_span(self._next_chunk)[0]
        for track in self.tracks.values():
            track.release_before(keep_from)
        frontier = self.frontier_us()
        self.emotions.release_before(frontier)
        self.lines.release_before(frontier)
