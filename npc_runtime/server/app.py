"""Building and running the sidecar: model, engine, store, gRPC server, health, reflection.

`start_server` returns a running server (tests use it in-process); `serve` runs one until
SIGTERM/SIGINT and then shuts down gracefully: health turns NOT_SERVING, new RPCs are refused,
live streams get SERVER_SHUTDOWN and render what falls due within `shutdown_grace_s`, then close
with UNAVAILABLE; the engine stops and the store closes.

At startup the engine times a few real model steps (admission.calibrate) so the admission
capacity comes from this machine's measured step cost; it keeps learning from every step.
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
from npc_runtime.server.admission import Admission, CostModel, calibrate
from npc_runtime.server.config import ServerConfig
from npc_runtime.server.engine import Engine
from npc_runtime.server.metrics import ServerMetrics
from npc_runtime.server.identity import IdentityProvider
from npc_runtime.server.servicer import NpcRuntimeServicer, Runtime
from npc_runtime.server.session import ModelTiming
from npc_runtime.store import NpcStore, atomic_write

log = logging.getLogger(__name__)

SERVICE_NAME = runtime_pb2.DESCRIPTOR.services_by_name["NpcRuntime"].full_name


def load_model(config: ServerConfig):
    """The model named by `config.model` (see ServerConfig.model)."""
    from npc_runtime.config import PRESETS, load_config, preset
    from npc_runtime.pipeline import PerformanceModel
    kwargs = {"max_sessions": config.limits.max_sessions, "device": config.device}
    if config.model_steps:
        kwargs["steps"] = config.model_steps
    if config.model_emotion_gain:
        kwargs["emotion_gain"] = config.model_emotion_gain
    name = config.model
    if not name:
        return PerformanceModel.load_default(**kwargs)
    if name in PRESETS:
        log.warning("model: UNTRAINED seeded '%s' (for speed measurements only)", name)
        return PerformanceModel.from_config(preset(name), seed=0, **kwargs)
    path = Path(name)
    if path.is_dir():
        return PerformanceModel.from_checkpoint(path, **kwargs)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        log.warning("model: UNTRAINED seeded config %s (for speed measurements only)", path)
        return PerformanceModel.from_config(load_config(path), seed=0, **kwargs)
    raise ValueError(f"model {name!r}: not a preset ({', '.join(PRESETS)}), a checkpoint "
                     "directory or a model config YAML")


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
    metrics_port: int = 0
    _refresher: asyncio.Task | None = None

    async def stop(self, grace_s: float) -> None:
        log.info("shutting down (grace %.1f s)", grace_s)
        if self._refresher is not None:
            self._refresher.cancel()
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        self.servicer.perform.shutdown(grace_s)
        await self.server.stop(grace_s)
        self.runtime.engine.stop()
        self.runtime.store.close()
        self.runtime.metrics.close()
        log.info("stopped")


async def start_server(config: ServerConfig, model=None) -> RunningServer:
    config.validate()
    model = model if model is not None else load_model(config)
    vocab = DEFAULT_VOCABULARY
    if model.emotion_dim != vocab.size:
        raise RuntimeError(f"model conditions on {model.emotion_dim} emotions, the vocabulary "
                           f"has {vocab.size}")
    if config.torch_threads:
        import torch
        torch.set_num_threads(config.torch_threads)
    store = NpcStore(config.data_dir)
    metrics = ServerMetrics()
    cost = CostModel(config.admission.window)
    engine = Engine(model, cost=cost, metrics=metrics, scheduler_cfg=config.scheduler)
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
        adm = config.admission
        if adm.calibrate:
            steps = tuple(sorted({engine.full_steps,
                                  min(config.scheduler.degraded_steps, engine.full_steps)}))
            await asyncio.wrap_future(engine.call(
                calibrate, model, cost, steps, min(adm.calibration_batch, max_sessions),
                adm.calibration_repeats))
        admission = Admission(adm, cost, timing.chunk_s, engine.full_steps, max_sessions)
        log.info("admission capacity %d (%s)", admission.capacity(), admission.explain())
        rt = Runtime(config, model, engine, store, vocab, IdentityProvider(store, engine, model),
                     timing, max_sessions, admission, metrics)
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
        metrics_port = (metrics.serve_http(config.address, config.metrics_port)
                        if config.metrics_port >= 0 else 0)
    except BaseException:
        engine.stop()
        store.close()
        metrics.close()
        raise
    log.info("npc-runtime serving on %s:%d (data dir %s, %d NPCs)", config.address, port,
             store.data_dir, store.count())
    running = RunningServer(server, port, servicer, health_servicer, rt, metrics_port)
    running._refresher = asyncio.create_task(_refresh_gauges(servicer))
    return running


async def _refresh_gauges(servicer: NpcRuntimeServicer, period_s: float = 1.0) -> None:
    """Keep the Prometheus gauges (fps, capacity, cache pages, level) current between scrapes."""
    while True:
        await asyncio.sleep(period_s)
        try:
            servicer.stats()
        except Exception:          # never let metrics take the server down
            log.exception("refreshing metrics failed")


async def serve(config: ServerConfig, ready_file: str | None = None, model=None) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    running = await start_server(config, model)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready_file:
        atomic_write(Path(ready_file), json.dumps(
            {"address": config.address, "port": running.port, "pid": os.getpid(),
             "metrics_port": running.metrics_port}).encode())
    try:
        await stop.wait()
    finally:
        await running.stop(config.shutdown_grace_s)
