"""A game-like Perform client for load tools: real-time audio in, paced frames out, timed.

`run_stream` plays one `Script` into one NPC's stream over grpc.aio: line markers and emotion
cues up front, then SPEAK (continuous) and LISTEN (only while the player talks, placed by pts)
audio in 40 ms messages on an absolute real-time schedule, then a stop. It records every
frame's arrival time and pts, the events, and the final status. `cancel_after_s` drops the
connection abruptly instead (a crashed game), which is how the soak tests reconnects.

Like a game, the client starts its audio clock (and sends audio) when PerformanceStarted
arrives: pts p is "played" at audio_t0 + p, so arrival − (audio_t0 + p) is the audio-to-frame
latency the player experiences (a game delays its own audio playback by the announced latency).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field

import grpc
import numpy as np

from npc_runtime._proto import emotion_pb2, perform_pb2
from npc_runtime.perf.workload import SAMPLE_RATE, Script

log = logging.getLogger(__name__)

MESSAGE_S = 0.04
_SPEAK, _LISTEN = perform_pb2.AUDIO_CHANNEL_SPEAK, perform_pb2.AUDIO_CHANNEL_LISTEN


@dataclass
class StreamResult:
    npc_id: str
    status: str = "OK"
    details: str = ""
    open_t: float = 0.0
    audio_t0: float | None = None
    end_t: float = 0.0
    fps: int = 25
    latency_s: float = 0.0                    # announced by the server
    cancelled_at: float | None = None
    arrivals: list[float] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)
    pts_us: list[int] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)   # kept only when asked
    width: int = 0
    texture_format: int = 0
    events: Counter = field(default_factory=Counter)
    dropped_frames: int = 0
    audio_s: float = 0.0
    started_event: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False                      # the call is over: the request writer stops

    @property
    def started(self) -> bool:
        return self.audio_t0 is not None and not self.closed

    def delivered_frames(self) -> int:
        """Frames received, counting at most the expected ones (the last chunk is whole, so
        a stream may end with a few frames past its audio; they must not hide a shortfall)."""
        return min(len(self.indices), self.expected_frames())

    def expected_frames(self) -> int:
        """Frames the stream owed: all of the audio, or those due before a cancel."""
        if not self.started:
            return 0
        if self.cancelled_at is None:
            return math.ceil(self.audio_s * self.fps)
        shown = self.cancelled_at - (self.audio_t0 + self.latency_s)
        return max(0, min(math.ceil(self.audio_s * self.fps), int(shown * self.fps)))

    def summary(self) -> dict:
        n = len(self.indices)
        t = np.asarray(self.arrivals)
        pts = np.asarray(self.pts_us, np.float64) / 1e6
        out = {"npc_id": self.npc_id, "status": self.status, "frames": self.delivered_frames(),
               "expected_frames": self.expected_frames(), "dropped_frames": self.dropped_frames,
               "events": dict(self.events)}
        if n >= 2 and self.audio_t0 is not None:
            lat = t - (self.audio_t0 + pts)
            # Frames later than their pacing time (announced latency) by over half a period.
            late = t - (self.audio_t0 + self.latency_s + pts) > 0.5 / self.fps
            out.update(
                fps=float((n - 1) / (t[-1] - t[0])) if t[-1] > t[0] else 0.0,
                time_to_first_frame_s=float(t[0] - self.open_t),
                latency_p50_ms=float(np.percentile(lat, 50) * 1e3),
                latency_p99_ms=float(np.percentile(lat, 99) * 1e3),
                announced_latency_ms=self.latency_s * 1e3,
                late_frames=int(late.sum()))
        return out


def _audio_messages(script: Script):
    """(send offset s, PerformRequest) for both channels, in send order."""
    speak, listen = script.track("speak"), script.track("listen")
    n = int(round(MESSAGE_S * SAMPLE_RATE))
    out = []
    for i in range(math.ceil(len(speak) / n)):
        lo, hi = i * n, min(len(speak), (i + 1) * n)
        pts = lo * 1_000_000 // SAMPLE_RATE
        out.append((i * MESSAGE_S, perform_pb2.PerformRequest(audio=perform_pb2.AudioChunk(
            channel=_SPEAK, pcm16=speak[lo:hi].tobytes(), sample_rate=SAMPLE_RATE,
            pts_us=pts))))
        piece = listen[lo:hi]
        if np.any(piece):        # the player's mic sends only while they talk (pts gaps)
            out.append((i * MESSAGE_S, perform_pb2.PerformRequest(audio=perform_pb2.AudioChunk(
                channel=_LISTEN, pcm16=piece.tobytes(), sample_rate=SAMPLE_RATE,
                pts_us=pts))))
    return out


async def _requests(npc_id: str, script: Script, rx: StreamResult, seed: int,
                    texture_format: int, take_over: bool, client_name: str):
    yield perform_pb2.PerformRequest(start=perform_pb2.StartPerformance(
        npc_id=npc_id, texture_format=texture_format, seed=seed, take_over=take_over,
        client_name=client_name))
    for k, (start, line) in enumerate(script.speak):
        yield perform_pb2.PerformRequest(line=perform_pb2.LineMarker(
            line_id=f"line-{k}", start_pts_us=int(start * 1e6),
            end_pts_us=int((start + line.duration_s) * 1e6), text=line.text))
    for c in script.cues:
        yield perform_pb2.PerformRequest(emotion=perform_pb2.EmotionCue(
            emotion=emotion_pb2.Emotion(tag=emotion_pb2.TagEmotion(name=c.tag,
                                                                   intensity=c.intensity)),
            transition_s=c.transition_s, pts_us=int(c.at_s * 1e6)))
    await rx.started_event.wait()
    if rx.closed:                 # refused or failed before it started
        return
    rx.audio_t0 = time.monotonic()
    for offset, msg in _audio_messages(script):
        delay = rx.audio_t0 + offset - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        yield msg
    yield perform_pb2.PerformRequest(stop=perform_pb2.StopPerformance())


async def run_stream(stub, npc_id: str, script: Script, *, seed: int = 0,
                     texture_format: int = perform_pb2.TEXTURE_FORMAT_BC1,
                     priority: str | None = None, cancel_after_s: float | None = None,
                     take_over: bool = False, keep_payloads: bool = False,
                     client_name: str = "npc-runtime perf", timeout_s: float | None = None
                     ) -> StreamResult:
    """Play `script` into `npc_id`'s stream; never raises for RPC errors (see .status)."""
    rx = StreamResult(npc_id, audio_s=script.duration_s)
    metadata = (("npc-priority", priority),) if priority else None
    rx.open_t = time.monotonic()
    call = stub.Perform(_requests(npc_id, script, rx, seed, texture_format, take_over,
                                  client_name),
                        metadata=metadata, timeout=timeout_s)
    canceller = None
    if cancel_after_s is not None:
        async def cancel() -> None:
            await asyncio.sleep(cancel_after_s)
            rx.cancelled_at = time.monotonic()
            call.cancel()
        canceller = asyncio.create_task(cancel())
    try:
        async for msg in call:
            now = time.monotonic()
            kind = msg.WhichOneof("message")
            if kind == "frame":
                f = msg.frame
                rx.arrivals.append(now)
                rx.indices.append(f.index)
                rx.pts_us.append(f.pts_us)
                if keep_payloads:
                    rx.payloads.append(f.payload)
                    rx.width, rx.texture_format = f.width, f.format
            elif kind == "started":
                rx.fps, rx.latency_s = msg.started.fps, msg.started.latency_us / 1e6
                rx.started_event.set()
            elif kind == "event":
                name = perform_pb2.PerformanceEvent.Kind.Name(msg.event.kind)
                rx.events[name] += 1
                if name == "FRAMES_DROPPED":
                    rx.dropped_frames += msg.event.frame_count
    except grpc.aio.AioRpcError as e:
        rx.status, rx.details = e.code().name, e.details() or ""
    except asyncio.CancelledError:
        if rx.cancelled_at is None:
            raise
        rx.status = "CANCELLED"
    finally:
        if canceller is not None:
            canceller.cancel()
        rx.end_t = time.monotonic()
        if not rx.started_event.is_set():
            rx.closed = True
            rx.started_event.set()    # release the request writer so it finishes
    if rx.cancelled_at is not None:
        rx.status = "CANCELLED"
    return rx
