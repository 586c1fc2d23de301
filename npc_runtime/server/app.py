"""Building and running the sidecar: model, engine, store, gRPC server, health, reflection.

`start_server` returns a running server (tests use it in-process); `serve` runs one until
SIGTERM/SIGINT and then shuts down gracefully: health turns NOT_SERVING, new RPCs are refused,
live streams get SERVER_SHUTDOWN and render what falls due within `shutdown_grace_s`, then close
with UNAVAILABLE; the engine stops and the store closes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from npc_runtime._proto import runtime_pb2, runtime_pb2_grpc
from npc_runtime.emotions import DEFAULT_VOCABULARY
from npc_runtime.server.config import ServerConfig
from npc_runtime.server.engine import Engine
from npc_runtime.server.identity import IdentityProvider
from npc_runtime.server.servicer import NpcRuntimeServicer, Runtime
from npc_runtime.server.session import ModelTiming
from npc_runtime.store import NpcStore, atomic_write

log = logging.getLogger(__name__)

SERVICE_NAME = runtime_pb2.DESCRIPTOR.services_by_name["NpcRuntime"].full_name


def load_model(config: ServerConfig):
    from npc_runtime.pipeline import PerformanceModel
    kwargs = {"max_sessions": config.limits.max_sessions}
    if config.model_steps:
        kwargs["steps"] = config.model_steps
    return PerformanceModel.load_default(device=config.device, **kwargs)


def warm_up(model, chunks: int) -> None:
    """Run a throwaway session so one-time costs (allocation, kernel selection) are paid now."""
    if chunks <= 0:
        return
    from npc_runtime.pipeline import ChunkRequest
    s = model.frame_size
    refs = np.full((1, s, s, 3), 128, np.uint8)
    sid = model.open_session(model.encode_identity(refs))
    try:
        for k in range(chunks):
            start, end = model.audio_span(k)
            quiet = np.zeros(end - start, np.float32)
            emotion = np.zeros((model.chunk_frames, model.emotion_dim), np.float32)
            emotion[:, 0] = 1.0
            model.step([ChunkRequest(sid, quiet, quiet, emotion)])
    finally:
        model.close_session(sid)


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    servicer: NpcRuntimeServicer
    health: health.aio.HealthServicer
    runtime: Runtime

    async def stop(self, grace_s: float) -> None:
        log.info("shutting down (grace %.1f s)", grace_s)
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        self.servicer.perform.shutdown(grace_s)
        await self.server.stop(grace_s)
        self.runtime.engine.stop()
        self.runtime.store.close()
        log.info("stopped")


async def start_server(config: ServerConfig, model=None) -> RunningServer:
    config.validate()
    model = model if model is not None else load_model(config)
    vocab = DEFAULT_VOCABULARY
    if model.emotion_dim != vocab.size:
        raise RuntimeError(f"model conditions on {model.emotion_dim} emotions, the vocabulary "
                           f"has {vocab.size}")
    store = NpcStore(config.data_dir)
    engine = Engine(model)
    engine.start()
    try:
        desc = model.describe()
        log.info("model %s (%s, %s parameters, %s); warming up", desc.get("name"),
                 "trained" if desc.get("trained") else "UNTRAINED", desc.get("parameters"),
                 desc.get("device"))
        await asyncio.wrap_future(engine.call(warm_up, model, config.warmup_chunks))
        timing = ModelTiming(model.fps, model.chunk_frames, model.sample_rate, model.emotion_dim,
                             model.audio_span)
        max_sessions = min(config.limits.max_sessions,
                           int(getattr(model, "max_sessions", config.limits.max_sessions)))
        rt = Runtime(config, model, engine, store, vocab, IdentityProvider(store, engine, model),
                     timing, max_sessions)
        servicer = NpcRuntimeServicer(rt)
        limit = config.limits.max_message_bytes
        server = grpc.aio.server(options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            ("grpc.so_reuseport", 0),      # a taken port must fail, not be shared
        ])
        runtime_pb2_grpc.add_NpcRuntimeServicer_to_server(servicer, server)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        port = server.add_insecure_port(f"{config.address}:{config.port}")
        if port == 0:
            raise RuntimeError(f"cannot listen on {config.address}:{config.port}")
        await server.start()
        for name in ("", SERVICE_NAME):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    except BaseException:
        engine.stop()
        store.close()
        raise
    log.info("npc-runtime serving on %s:%d (data dir %s, %d NPCs)", config.address, port,
             store.data_dir, store.count())
    return RunningServer(server, port, servicer, health_servicer, rt)


async def serve(config: ServerConfig, ready_file: str | None = None, model=None) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    running = await start_server(config, model)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready_file:
        atomic_write(Path(ready_file), json.dumps(
            {"address": config.address, "port": running.port, "pid": os.getpid()}).encode())
    try:
        await stop.wait()
    finally:
        await running.stop(config.shutdown_grace_s)
