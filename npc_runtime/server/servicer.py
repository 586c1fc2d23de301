"""The NpcRuntime servicer: ServerInfo, NPC CRUD, the Perform stream and GetStats.

Store calls run in worker threads (SQLite and fsync must not block the event loop); model work
runs on the engine thread. Every method validates the whole request before changing anything.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import AsyncIterable, AsyncIterator

import grpc

from npc_runtime import __version__
from npc_runtime._proto import emotion_pb2, npc_pb2, perform_pb2, runtime_pb2, runtime_pb2_grpc
from npc_runtime.emotions import EmotionVocabulary
from npc_runtime.server import npcs
from npc_runtime.server.config import ServerConfig
from npc_runtime.server.admission import Admission
from npc_runtime.server.engine import Engine
from npc_runtime.server.errors import RpcError, invalid, not_found, precondition, unary_errors
from npc_runtime.server.identity import IdentityProvider
from npc_runtime.server.metrics import ServerMetrics, percentiles
from npc_runtime.server.perform import PerformHandler
from npc_runtime.server.session import ModelTiming
from npc_runtime.store import (NpcExistsError, NpcNotFoundError, NpcRecord, NpcStore,
                               RevisionMismatchError)

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
CAPABILITIES = ("line_markers", "emotion_weights", "take_over", "bottom_up")


@dataclass
class Runtime:
    """Everything a request handler needs, built once by server.app."""
    config: ServerConfig
    model: object
    engine: Engine
    store: NpcStore
    vocabulary: EmotionVocabulary
    identities: IdentityProvider
    timing: ModelTiming
    max_sessions: int
    admission: Admission
    metrics: ServerMetrics

    @staticmethod
    def format_to_proto(fmt) -> int:
        return {"bc1": perform_pb2.TEXTURE_FORMAT_BC1,
                "rgba8": perform_pb2.TEXTURE_FORMAT_RGBA8}[fmt.value]


class NpcRuntimeServicer(runtime_pb2_grpc.NpcRuntimeServicer):
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.perform = PerformHandler(rt)

    # --- handshake -------------------------------------------------------------------------
    @unary_errors
    async def GetServerInfo(self, request, context) -> runtime_pb2.ServerInfo:
        return self.server_info()

    def server_info(self) -> runtime_pb2.ServerInfo:
        rt, lim = self.rt, self.rt.config.limits
        d = rt.model.describe()
        fmt_default = rt.config.stream.default_texture_format
        info = runtime_pb2.ServerInfo(
            protocol_version=PROTOCOL_VERSION, server_version=__version__,
            model=runtime_pb2.ModelInfo(
                name=str(d.get("name", "")), config=str(d.get("config", "")),
                trained=bool(d.get("trained", False)),
                parameter_count=int(d.get("parameters", 0)),
                fingerprint=str(rt.model.fingerprint), device=str(d.get("device", "")),
                status=str(d.get("status", "")),
                info={str(k): str(v) for k, v in (d.get("info") or {}).items()}),
            fps=rt.timing.fps,
            frame_sizes=[runtime_pb2.FrameSize(width=rt.model.frame_size,
                                               height=rt.model.frame_size)],
            chunk_frames=rt.timing.chunk_frames,
            texture_formats=[perform_pb2.TEXTURE_FORMAT_BC1, perform_pb2.TEXTURE_FORMAT_RGBA8],
            default_texture_format=(perform_pb2.TEXTURE_FORMAT_BC1 if fmt_default == "bc1"
                                    else perform_pb2.TEXTURE_FORMAT_RGBA8),
            emotions=emotion_pb2.EmotionVocabulary(version=rt.vocabulary.version,
                                                   tags=list(rt.vocabulary.tags)),
            limits=runtime_pb2.Limits(
                max_message_bytes=lim.max_message_bytes,
                min_reference_images=lim.min_reference_images,
                max_reference_images=lim.max_reference_images,
                max_image_bytes=lim.max_image_bytes, max_image_pixels=lim.max_image_pixels,
                max_sessions=rt.admission.capacity(), min_sample_rate=lim.min_sample_rate,
                max_sample_rate=lim.max_sample_rate, model_sample_rate=rt.timing.sample_rate,
                max_audio_chunk_us=int(lim.max_audio_chunk_s * 1e6),
                max_audio_ahead_us=int(lim.max_audio_ahead_s * 1e6),
                max_audio_gap_us=int(lim.max_audio_gap_s * 1e6),
                max_transition_s=lim.max_transition_s, max_presets=lim.max_presets,
                max_display_name_chars=lim.max_display_name_chars),
            latency_us=int(self.typical_latency_s() * 1e6),
            active_sessions=len(self.perform.live), capabilities=list(CAPABILITIES))
        for name, blend in sorted(rt.vocabulary.presets.items()):
            info.emotions.presets.add(name=name, blend=dict(blend))
        return info

    def typical_latency_s(self) -> float:
        t, cfg = self.rt.timing, self.rt.config.stream
        return (t.audio_span(0)[1] / t.sample_rate + cfg.compute_lead_chunks * t.chunk_s
                + cfg.jitter_margin_s)

    # --- NPCs ------------------------------------------------------------------------------
    def _streaming(self, npc_id: str) -> bool:
        return npc_id in self.perform.live

    @unary_errors
    async def RegisterNpc(self, request: npc_pb2.RegisterNpcRequest, context) -> npc_pb2.Npc:
        rt, lim = self.rt, self.rt.config.limits
        npc_id = npcs.check_npc_id(request.npc_id) if request.npc_id else _random_id()
        name = npcs.check_display_name(request.display_name, lim)
        presets = npcs.check_presets(request.presets, rt.vocabulary, lim)
        emotion, intensity = npcs.check_tag_emotion(request.default_emotion, rt.vocabulary,
                                                    presets, "default_emotion")
        images = list(request.reference_images)
        infos = await asyncio.to_thread(npcs.check_images, images, lim)
        record = NpcRecord(npc_id=npc_id, display_name=name,
                           references=npcs.references_from(infos), default_emotion=emotion,
                           default_intensity=intensity, presets=presets)
        try:
            record = await asyncio.to_thread(rt.store.create, record, images)
        except NpcExistsError:
            raise RpcError(grpc.StatusCode.ALREADY_EXISTS,
                           f"NPC {npc_id!r} already exists; use UpdateNpc to change it") from None
        log.info("registered NPC %s (%d reference image(s))", npc_id, len(images))
        return npcs.to_proto(record)

    @unary_errors
    async def GetNpc(self, request: npc_pb2.GetNpcRequest, context) -> npc_pb2.Npc:
        record = await self._get(request.npc_id)
        data = None
        if request.include_images:
            data = await asyncio.to_thread(
                lambda: [self.rt.store.image_bytes(r) for r in record.references])
        return npcs.to_proto(record, streaming=self._streaming(record.npc_id), image_data=data)

    @unary_errors
    async def ListNpcs(self, request: npc_pb2.ListNpcsRequest, context
                       ) -> npc_pb2.ListNpcsResponse:
        size = min(request.page_size or 100, 1000)
        if request.page_token:
            npcs.check_npc_id(request.page_token, "page_token")
        records = await asyncio.to_thread(self.rt.store.list, request.page_token, size + 1)
        more = len(records) > size
        records = records[:size]
        return npc_pb2.ListNpcsResponse(
            npcs=[npcs.to_proto(r, streaming=self._streaming(r.npc_id)) for r in records],
            next_page_token=records[-1].npc_id if more else "")

    @unary_errors
    async def UpdateNpc(self, request: npc_pb2.UpdateNpcRequest, context) -> npc_pb2.Npc:
        rt, lim = self.rt, self.rt.config.limits
        old = await self._get(request.npc_id)
        changes: dict = {}
        if request.HasField("display_name"):
            changes["display_name"] = npcs.check_display_name(request.display_name, lim)
        presets = old.presets
        if request.HasField("presets"):
            presets = changes["presets"] = npcs.check_presets(request.presets.presets,
                                                              rt.vocabulary, lim)
        if request.HasField("default_emotion"):
            emotion, intensity = npcs.check_tag_emotion(request.default_emotion, rt.vocabulary,
                                                        presets, "default_emotion")
            changes.update(default_emotion=emotion, default_intensity=intensity)
        elif old.default_emotion and "presets" in changes:
            # the default may name a preset the update removes
            npcs.check_tag_emotion(emotion_pb2.TagEmotion(name=old.default_emotion), rt.vocabulary,
                                   presets, "default_emotion (unchanged)")
        images = None
        if request.HasField("reference_images"):
            images = list(request.reference_images.images)
            infos = await asyncio.to_thread(npcs.check_images, images, lim,
                                            "reference_images.images")
            changes["references"] = npcs.references_from(infos)
        try:
            record = await asyncio.to_thread(rt.store.update, old.npc_id,
                                             request.expected_revision, images, **changes)
        except NpcNotFoundError:
            raise not_found(f"no NPC {request.npc_id[:80]!r} is registered") from None
        except RevisionMismatchError as e:
            raise RpcError(grpc.StatusCode.ABORTED, str(e)) from None
        log.info("updated NPC %s to revision %d (%s)", record.npc_id, record.revision,
                 ", ".join(sorted(changes)) or "no fields")
        return npcs.to_proto(record, streaming=self._streaming(record.npc_id))

    @unary_errors
    async def DeleteNpc(self, request: npc_pb2.DeleteNpcRequest, context
                        ) -> npc_pb2.DeleteNpcResponse:
        record = await self._get(request.npc_id)
        if self._streaming(record.npc_id):
            raise precondition(f"NPC {record.npc_id!r} is streaming; stop its stream first")
        try:
            await asyncio.to_thread(self.rt.store.delete, record.npc_id)
        except NpcNotFoundError:
            raise not_found(f"no NPC {request.npc_id[:80]!r} is registered") from None
        log.info("deleted NPC %s", record.npc_id)
        return npc_pb2.DeleteNpcResponse()

    async def _get(self, npc_id: str) -> NpcRecord:
        if not npc_id:
            raise invalid("npc_id is required")
        try:
            return await asyncio.to_thread(self.rt.store.get, npc_id)
        except NpcNotFoundError:
            raise not_found(f"no NPC {npc_id[:80]!r} is registered") from None

    # --- stats -----------------------------------------------------------------------------
    @unary_errors
    async def GetStats(self, request: runtime_pb2.GetStatsRequest, context
                       ) -> runtime_pb2.ServerStats:
        return self.stats(request.include_sessions)

    def stats(self, include_sessions: bool = False) -> runtime_pb2.ServerStats:
        rt = self.rt
        now = time.monotonic()
        engine = rt.engine
        level = getattr(engine.scheduler, "level", 0)
        pages_used, pages_total = _cache_pages(rt.model)
        fps = rt.metrics.refresh(now, len(self.perform.live), rt.admission.capacity(), level,
                                 pages_used, pages_total)
        snap = rt.metrics.snapshot()
        tot = snap["totals"]
        out = runtime_pb2.ServerStats(
            uptime_s=now - rt.metrics.started_at, active_sessions=len(self.perform.live),
            capacity=rt.admission.capacity(), capacity_reason=rt.admission.explain(), fps=fps,
            frames_sent=tot.get("frames", 0), deadline_misses=tot.get("misses", 0),
            frames_dropped=tot.get("dropped", 0), frames_held=tot.get("held", 0),
            degraded_chunks=tot.get("degraded", 0),
            time_to_first_frame=runtime_pb2.LatencyStats(**snap["ttff"]),
            audio_to_frame=runtime_pb2.LatencyStats(**snap["a2f"]),
            steps=tot.get("steps", 0), chunks=tot.get("chunks", 0),
            batch_sizes=[runtime_pb2.BatchSizeCount(batch_size=b, steps=n)
                         for b, n in sorted(snap["batch_sizes"].items())],
            step_time=runtime_pb2.LatencyStats(**snap["step_time"]), engine_busy_s=snap["busy_s"],
            cache_pages_used=pages_used, cache_pages_total=pages_total, degradation_level=level,
            streams_refused=tot.get("refused", 0), sampling_steps=engine.full_steps,
            degraded_sampling_steps=min(rt.config.scheduler.degraded_steps, engine.full_steps))
        if include_sessions:
            for m in snap["sessions"]:
                out.sessions.add(
                    session_id=m.session_id, npc_id=m.npc_id,
                    priority=runtime_pb2.StreamPriority.Value(
                        f"STREAM_PRIORITY_{m.priority.upper()}"),
                    age_s=now - m.opened_at, frames_sent=m.frames_sent, fps=m.fps(now),
                    time_to_first_frame_ms=((m.first_frame_at - m.opened_at) * 1e3
                                            if m.first_frame_at else 0.0),
                    audio_to_frame=runtime_pb2.LatencyStats(**percentiles(list(m.latencies))),
                    deadline_misses=m.deadline_misses, frames_dropped=m.frames_dropped,
                    frames_held=m.frames_held, degraded_chunks=m.degraded_chunks)
        return out

    # --- Perform ---------------------------------------------------------------------------
    async def Perform(self, request_iterator: AsyncIterable[perform_pb2.PerformRequest],
                      context: grpc.aio.ServicerContext
                      ) -> AsyncIterator[perform_pb2.PerformResponse]:
        try:
            async for msg in self.perform.run(request_iterator, context):
                yield msg
        except RpcError as e:
            await context.abort(e.code, e.message)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception:
            log.exception("Perform failed")
            await context.abort(grpc.StatusCode.INTERNAL, "Perform: internal error (see server log)")


def _cache_pages(model) -> tuple[int, int]:
    cache = getattr(model, "cache", None)
    if cache is None:
        return 0, 0
    return int(cache.used_pages()), int(cache.pool.num_pages)


def _random_id() -> str:
    import uuid
    return "npc-" + uuid.uuid4().hex[:12]
