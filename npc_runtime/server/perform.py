"""The Perform stream handler: admission, the reader task, and paced frame output.

Second stream policy: one live stream per NPC. A second StartPerformance for an NPC that is
streaming is refused with FAILED_PRECONDITION, unless it sets `take_over`, in which case the old
stream ends with ABORTED ("taken over") and the new one starts. Taking over is how an engine
recovers after it lost a stream without the server noticing yet (a crashed game, a dead TCP
peer that has not timed out).

A client that vanishes (cancel, disconnect) ends its stream at once: the reader stops, the
engine forgets the session, the model session and its KV pages are released.

Admission: a new stream beyond the measured capacity (server.admission) is refused with
RESOURCE_EXHAUSTED. Priority: call metadata `npc-priority: hero|normal|background`, else the
config's hero/background NPC lists, else normal (server.scheduler). Every frame sent, audio
chunk received and FRAMES_DROPPED event is recorded in server.metrics.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import AsyncIterable, AsyncIterator

import grpc
import numpy as np

from npc_runtime._proto import perform_pb2
from npc_runtime.emotions import EmotionVocabulary, UnknownEmotionError
from npc_runtime.server.errors import RpcError, invalid, not_found, precondition
from npc_runtime.server.scheduler import Priority
from npc_runtime.server.session import (LISTEN, SPEAK, EndOfStream, ModelTiming, OutEvent,
                                        OutFrame, PendingChunk, Session)
from npc_runtime.server.timeline import LineMarker
from npc_runtime.store import NpcNotFoundError, NpcRecord

log = logging.getLogger(__name__)

_CHANNELS = {perform_pb2.AUDIO_CHANNEL_SPEAK: SPEAK, perform_pb2.AUDIO_CHANNEL_LISTEN: LISTEN}
START_TIMEOUT_S = 30.0       # a stream that sends no StartPerformance is closed after this
PRIORITY_METADATA = "npc-priority"


@dataclass
class LiveStream:
    session: Session
    shutting_down: bool = False


def emotion_vector(msg: perform_pb2.EmotionCue | object, vocab: EmotionVocabulary,
                   presets, field: str) -> tuple[np.ndarray, str]:
    """An Emotion message -> (weights, description)."""
    which = msg.WhichOneof("value")
    if which == "tag":
        intensity = msg.tag.intensity if msg.tag.HasField("intensity") else 1.0
        try:
            return (vocab.tag_vector(msg.tag.name, intensity, presets),
                    f"{msg.tag.name}:{intensity:g}")
        except UnknownEmotionError as e:
            raise invalid(f"{field}: {e}") from None
        except ValueError as e:
            raise invalid(f"{field}: {e}") from None
    if which == "weights":
        try:
            w = vocab.check_vector(np.asarray(msg.weights.values, dtype=np.float32))
        except ValueError as e:
            raise invalid(f"{field}.weights: {e}") from None
        return w, "weights"
    raise invalid(f"{field}: set either tag or weights")


class PerformHandler:
    """Owns the live streams of one server (one per NPC)."""

    def __init__(self, runtime) -> None:
        self.rt = runtime                       # servicer.Runtime: model, engine, store, ...
        self.live: dict[str, LiveStream] = {}
        self.draining = False

    # --- admission -------------------------------------------------------------------------
    async def _admit(self, start: perform_pb2.StartPerformance
                     ) -> tuple[NpcRecord, LiveStream | None]:
        if self.draining:
            raise RpcError(grpc.StatusCode.UNAVAILABLE, "server is shutting down")
        if not start.npc_id:
            raise invalid("start.npc_id is required")
        try:
            record = await asyncio.to_thread(self.rt.store.get, start.npc_id)
        except NpcNotFoundError:
            raise not_found(f"no NPC {start.npc_id[:80]!r} is registered") from None
        old = self.live.get(record.npc_id)
        if old is not None and not start.take_over:
            raise precondition(f"NPC {record.npc_id!r} already has a live stream "
                               f"({old.session.session_id}); set start.take_over to replace it")
        if old is None:
            try:
                self.rt.admission.check(len(self.live))
            except RpcError:
                self.rt.metrics.refused()
                log.info("refused a stream for NPC %s: %d live, capacity %d", record.npc_id,
                         len(self.live), self.rt.admission.capacity())
                raise
        return record, old

    def _priority(self, npc_id: str, context) -> Priority:
        for key, value in (context.invocation_metadata() or ()) if context else ():
            if key == PRIORITY_METADATA:
                try:
                    return Priority.parse(value)
                except ValueError as e:
                    raise invalid(f"metadata {PRIORITY_METADATA}: {e}") from None
        sched = self.rt.config.scheduler
        if npc_id in sched.hero_npcs:
            return Priority.HERO
        if npc_id in sched.background_npcs:
            return Priority.BACKGROUND
        return Priority.NORMAL

    def _texture_format(self, value: int):
        from npc_runtime.texture import TextureFormat
        if value == perform_pb2.TEXTURE_FORMAT_UNSPECIFIED:
            return TextureFormat(self.rt.config.stream.default_texture_format)
        if value == perform_pb2.TEXTURE_FORMAT_BC1:
            return TextureFormat.BC1
        if value == perform_pb2.TEXTURE_FORMAT_RGBA8:
            return TextureFormat.RGBA8
        raise invalid(f"start.texture_format {value} is not a known TextureFormat")

    # --- the stream ------------------------------------------------------------------------
    async def run(self, requests: AsyncIterable[perform_pb2.PerformRequest],
                  context: grpc.aio.ServicerContext) -> AsyncIterator[perform_pb2.PerformResponse]:
        it = requests.__aiter__()
        try:
            first = await asyncio.wait_for(it.__anext__(), START_TIMEOUT_S)
        except StopAsyncIteration:
            raise invalid("the stream ended before StartPerformance") from None
        except asyncio.TimeoutError:
            raise RpcError(grpc.StatusCode.DEADLINE_EXCEEDED,
                           f"no StartPerformance within {START_TIMEOUT_S:g} s") from None
        if first.WhichOneof("message") != "start":
            raise invalid(f"the first message must be start, got {first.WhichOneof('message')}")
        start = first.start
        opened_at = time.monotonic()
        fmt = self._texture_format(start.texture_format)
        record, old = await self._admit(start)
        priority = self._priority(record.npc_id, context)
        initial = self._initial_emotion(start, record)
        session_id = uuid.uuid4().hex[:12]
        if old is not None:
            old.session.fail(RpcError(grpc.StatusCode.ABORTED,
                                      f"taken over by stream {session_id} "
                                      f"({start.client_name or 'unnamed client'})"))
        live = LiveStream(Session(session_id, record.npc_id, self.rt.timing, self.rt.config.limits,
                                  self.rt.config.stream, initial, asyncio.get_running_loop(),
                                  fmt, start.bottom_up))
        self.live[record.npc_id] = live            # reserved before any await below
        reader = None
        model_session = None
        try:
            identity = await self.rt.identities.get(record)
            opening = self.rt.engine.call(self.rt.model.open_session, identity, int(start.seed))
            try:
                model_session = await asyncio.wrap_future(opening)
            except asyncio.CancelledError:
                # The client went away while the engine thread was already opening the session:
                # close it once it exists, or its KV-cache pages would leak.
                opening.add_done_callback(self._close_orphan)
                raise
            session = live.session
            session.model_session = model_session
            session.t0 = time.monotonic()             # the timeline starts now
            session.latency_s += self.rt.engine.align(
                session.t0 + session.latency_s - session.lead_s, self.rt.timing.chunk_s)
            session.metrics = self.rt.metrics.open_session(session_id, record.npc_id,
                                                           priority.name.lower(), opened_at)
            log.info("stream %s: NPC %s started (%s, %s)", session_id, record.npc_id,
                     fmt.value, start.client_name or "unnamed client")
            yield self._started(session, record, fmt, start, old is not None)
            self.rt.engine.attach(session, priority)
            reader = asyncio.create_task(self._read(it, session, record))
            async for msg in self._emit(session, live):
                yield msg
        finally:
            if reader is not None:
                reader.cancel()
            if model_session is not None:
                self.rt.engine.detach(live.session)
                self.rt.engine.call(self.rt.model.close_session, model_session)
            if self.live.get(record.npc_id) is live:
                del self.live[record.npc_id]
            if live.session.metrics is not None:
                self.rt.metrics.close_session(live.session.metrics)
            log.info("stream %s: NPC %s ended", session_id, record.npc_id)

    def _close_orphan(self, opening) -> None:
        if not opening.cancelled() and opening.exception() is None:
            self.rt.engine.call(self.rt.model.close_session, opening.result())

    def _initial_emotion(self, start, record: NpcRecord) -> np.ndarray:
        vocab = self.rt.vocabulary
        if start.HasField("initial_emotion"):
            return emotion_vector(start.initial_emotion, vocab, record.presets,
                                  "start.initial_emotion")[0]
        if record.default_emotion:
            return vocab.tag_vector(record.default_emotion, record.default_intensity,
                                    record.presets)
        return vocab.neutral()

    def _started(self, s: Session, record, fmt, start, took_over: bool):
        from npc_runtime.texture import payload_size
        size = self.rt.model.frame_size
        return perform_pb2.PerformResponse(started=perform_pb2.PerformanceStarted(
            session_id=s.session_id, npc_id=record.npc_id,
            texture_format=self.rt.format_to_proto(fmt), width=size, height=size,
            fps=self.rt.timing.fps, chunk_frames=self.rt.timing.chunk_frames,
            payload_bytes=payload_size(fmt, size, size), latency_us=int(s.latency_s * 1e6),
            max_audio_ahead_us=int(self.rt.config.limits.max_audio_ahead_s * 1e6),
            emotion_tags=list(self.rt.vocabulary.tags), bottom_up=start.bottom_up,
            took_over=took_over))

    async def _emit(self, s: Session, live: LiveStream) -> AsyncIterator[perform_pb2.PerformResponse]:
        fmt = None
        m = s.metrics
        late_after_s = 0.5 / self.rt.timing.fps
        frame_us = 1_000_000 // self.rt.timing.fps
        while True:
            item = await s.queue.get()
            if s.failure is not None:
                raise s.failure
            if isinstance(item, EndOfStream):
                break
            if isinstance(item, OutEvent):
                yield _event(item)
                continue
            assert isinstance(item, PendingChunk)
            for frame in item.frames:
                for ev in frame.events:
                    if ev.kind == "FRAMES_DROPPED":
                        self.rt.metrics.frames_dropped(m, ev.frame_count)
                    yield _event(ev)
                due = s.frame_send_time(frame.index)
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if s.failure is not None:
                    raise s.failure
                fmt = fmt or self.rt.format_to_proto(s.texture_format)
                self.rt.metrics.frame_sent(m, frame.pts_us + frame_us, due, time.monotonic(),
                                           late_after_s)
                yield _frame(frame, fmt, self.rt.model.frame_size)
        if live.shutting_down:
            raise RpcError(grpc.StatusCode.UNAVAILABLE,
                           "server is shutting down; reconnect to another replica or later")
        yield _event(OutEvent("STOPPED", pts_us=s.frontier_us()))

    async def _read(self, it, s: Session, record: NpcRecord) -> None:
        """Apply client messages until stop / half-close; a bad one fails the stream."""
        try:
            async for msg in it:
                kind = msg.WhichOneof("message")
                if kind == "stop":
                    s.stop(immediate=msg.stop.immediate)
                    break
                if live_shutdown(self, s):
                    continue                          # draining: new input is ignored
                if kind == "audio":
                    await self._audio(msg.audio, s)
                elif kind == "emotion":
                    self._emotion(msg.emotion, s, record)
                elif kind == "line":
                    self._line(msg.line, s)
                elif kind == "start":
                    raise invalid("start may only be the first message")
                else:
                    raise invalid("empty PerformRequest (no message set)")
            else:
                s.stop()                              # half-close = stop after the audio
            self.rt.engine.poke()
        except RpcError as e:
            log.info("stream %s: %s", s.session_id, e)
            s.fail(e)
        except asyncio.CancelledError:
            raise
        except Exception as e:                       # the client vanished, or a bug
            if isinstance(e, grpc.aio.AioRpcError) or "cancel" in type(e).__name__.lower():
                log.info("stream %s: request stream broke: %s", s.session_id, e)
            else:
                log.exception("stream %s: reader failed", s.session_id)
            s.fail(RpcError(grpc.StatusCode.INTERNAL, f"reading the request stream failed: {e}"))

    async def _audio(self, a: perform_pb2.AudioChunk, s: Session) -> None:
        arrived = time.monotonic()
        channel = _CHANNELS.get(a.channel)
        if channel is None:
            raise invalid(f"audio.channel must be SPEAK or LISTEN, got {a.channel}")
        pts = a.pts_us if a.HasField("pts_us") else None
        samples, start_us = s.add_audio(channel, a.pcm16, a.sample_rate, pts)
        end_us = start_us + len(samples) * 1_000_000 // a.sample_rate
        while (wait := s.audio_wait_s(channel, end_us)) > 0:   # back-pressure
            await asyncio.sleep(min(wait, 0.25))
            if s.failure is not None:
                return
        late = s.commit_audio(channel, samples, a.sample_rate, start_us)
        if channel == SPEAK and s.metrics is not None:
            self.rt.metrics.audio_arrived(s.metrics, end_us, arrived)
        if late is not None:
            s.queue.put_nowait(late)

    def _emotion(self, cue: perform_pb2.EmotionCue, s: Session, record: NpcRecord) -> None:
        pts = cue.pts_us if cue.HasField("pts_us") else None
        s.check_emotion(pts, cue.transition_s)
        weights, desc = emotion_vector(cue.emotion, self.rt.vocabulary, record.presets,
                                       "emotion.emotion")
        s.add_emotion(weights, pts, cue.transition_s, desc)

    def _line(self, line: perform_pb2.LineMarker, s: Session) -> None:
        marker = LineMarker(line.line_id, line.start_pts_us,
                            line.end_pts_us if line.HasField("end_pts_us") else None, line.text)
        s.check_line(marker)
        s.add_line(marker)

    # --- shutdown --------------------------------------------------------------------------
    def shutdown(self, grace_s: float) -> None:
        """SIGTERM: refuse new streams; live ones render what is due within the grace period."""
        self.draining = True
        deadline = time.monotonic() + max(0.0, grace_s - 0.5)
        for live in list(self.live.values()):
            live.shutting_down = True
            live.session.queue.put_nowait(OutEvent(
                "SERVER_SHUTDOWN", message=f"server shutting down within {grace_s:g} s"))
            live.session.stop(deadline_s=deadline)
        self.rt.engine.poke()


def live_shutdown(handler: PerformHandler, s: Session) -> bool:
    live = handler.live.get(s.npc_id)
    return live is not None and live.session is s and live.shutting_down


def _event(ev: OutEvent) -> perform_pb2.PerformResponse:
    return perform_pb2.PerformResponse(event=perform_pb2.PerformanceEvent(
        kind=perform_pb2.PerformanceEvent.Kind.Value(ev.kind), pts_us=ev.pts_us,
        line_id=ev.line_id, message=ev.message, duration_us=ev.duration_us,
        frame_count=ev.frame_count))


def _frame(f: OutFrame, fmt: int, size: int) -> perform_pb2.PerformResponse:
    return perform_pb2.PerformResponse(frame=perform_pb2.Frame(
        index=f.index, pts_us=f.pts_us, format=fmt, width=size, height=size, payload=f.payload,
        speaking=f.speaking, listening=f.listening, emotion=[float(x) for x in f.emotion],
        line_id=f.line_id))
