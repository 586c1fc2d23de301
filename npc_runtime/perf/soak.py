"""`npc-runtime soak`: N NPCs for M minutes of game-like churn, judged against budgets.

Each of the N NPC slots loops until the time is up: a stream of random length plays random
espeak-ng dialogue with the player answering (LISTEN audio) and emotion cues; with probability
`disconnect_prob` the client drops the connection mid-stream (a crashed game) and reconnects at
once (`take_over` if the server has not noticed yet), and with probability `churn_prob` the
NPC is deleted and a new one (new identity) registered after the stream. A churn task also
registers and deletes idle NPCs. Every `sample_s` the server's RSS, KV-cache pages, fps and
deadline misses are sampled. About one frame per second per stream is decoded and read by the
LPM-Bench-mini probe (`npc_runtime.bench.Probe`) for identity similarity to the NPC's reference
over elapsed time (identity drift = first window minus last window).

Budgets (any broken one -> exit status 1): no errors or server crash; frames delivered >=
`min_delivered` of those due; RSS growth after warm-up <= `max_rss_growth`; every reconnect
resumed (started and delivered frames); deadline misses <= `max_late_fraction` of frames;
identity drift <= `max_identity_drift`. Writes `soak.json` and `soak.png` into `out`.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc
import numpy as np

from npc_runtime._proto import npc_pb2, runtime_pb2, runtime_pb2_grpc
from npc_runtime.perf.bench import EMOTIONS, machine
from npc_runtime.perf.client import StreamResult, run_stream
from npc_runtime.perf.sidecar import Sidecar
from npc_runtime.perf.workload import identity_png, random_script, speech_corpus

log = logging.getLogger(__name__)


@dataclass
class SoakConfig:
    out: str
    npcs: int = 4
    minutes: float = 10.0
    model: str = ""
    steps: int = 0
    threads: int = 0
    device: str = "cpu"
    texture: str = "bc1"
    segment_s: tuple[float, float] = (10.0, 40.0)
    disconnect_prob: float = 0.2
    churn_prob: float = 0.2
    idle_churn_s: float = 7.0          # register + delete an idle NPC this often
    sample_s: float = 5.0
    warmup_s: float = 60.0             # RSS growth is measured from here (capped at 1/3 of run)
    probe_fps: float = 2.0             # frames per second per stream read by the probe
    seed: int = 0
    corpus_lines: int = 16
    # budgets
    min_delivered: float = 0.99
    max_rss_growth: float = 0.05
    max_late_fraction: float = 0.05
    max_identity_drift: float = 0.15
    server: dict = field(default_factory=dict)   # extra ServerConfig keys


@dataclass
class _Tally:
    segments: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    reconnects: int = 0
    reconnects_resumed: int = 0
    churned: int = 0
    idle_churned: int = 0
    identity: list[tuple[float, float]] = field(default_factory=list)   # (elapsed s, csim)
    stream_drift: list[float] = field(default_factory=list)   # per stream: first - last third


class _Judge:
    """Identity similarity of sampled frames to their NPC's reference, via the bench probe."""

    def __init__(self, frame_size: int) -> None:
        from npc_runtime.bench.probes import Probe
        from npc_runtime.world.performance import NUM_PERF
        self.probe = Probe.load()
        self.z_mean = self.probe.net.mean.numpy()[NUM_PERF:]
        self.z_std = self.probe.net.std.numpy()[NUM_PERF:]
        self.frame_size = frame_size
        self._refs: dict[str, np.ndarray] = {}

    def _z(self, frames: np.ndarray) -> np.ndarray:
        _, ident = self.probe.read(frames)
        return (ident - self.z_mean) / self.z_std

    def reference(self, npc_id: str, png: bytes) -> None:
        from PIL import Image
        img = np.array(Image.open(io.BytesIO(png)).convert("RGB"))   # writable for torch
        self._refs[npc_id] = self._z(img[None])[0]

    def csim(self, npc_id: str, result: StreamResult, every: int) -> list[tuple[float, float]]:
        from npc_runtime.bench.metrics import cosine_rows
        from npc_runtime.texture import TextureFormat, decode
        if not result.payloads or npc_id not in self._refs:
            return []
        fmt = TextureFormat.BC1 if result.texture_format == 1 else TextureFormat.RGBA8
        picks = list(range(0, len(result.payloads), max(1, every)))
        frames = np.stack([decode(result.payloads[i], fmt, result.width, result.width)
                           for i in picks])
        sims = cosine_rows(self._z(frames), self._refs[npc_id])
        return [(result.arrivals[i], float(s)) for i, s in zip(picks, sims)]


class Soak:
    def __init__(self, cfg: SoakConfig) -> None:
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.rng = np.random.default_rng(cfg.seed)
        self.tally = _Tally()
        self.samples: list[dict] = []
        self._identity_seed = 1000

    def _server_config(self) -> dict:
        base = {"model": self.cfg.model, "model_steps": self.cfg.steps,
                "torch_threads": self.cfg.threads, "device": self.cfg.device,
                "warmup_chunks": 2, "shutdown_grace_s": 5.0,
                # Capacity is not under test here (bench perf and the overload test cover it):
                # the soak's N streams plus a reconnect overlap must always be admitted.
                "limits": {"max_sessions": self.cfg.npcs + 2},
                "admission": {"measured": False},
                "stream": {"default_texture_format": self.cfg.texture}}
        base.update(self.cfg.server)
        return base

    async def _register(self, stub, npc_id: str) -> bytes:
        self._identity_seed += 1
        png = identity_png(self._identity_seed, self.frame_size)
        await stub.RegisterNpc(npc_pb2.RegisterNpcRequest(
            npc_id=npc_id, display_name=npc_id, reference_images=[png]), timeout=120)
        return png

    async def _slot(self, stub, slot: int, end: float) -> None:
        cfg, t = self.cfg, self.tally
        gen = 0
        npc_id = f"soak-{slot}-{gen}"
        self.judge.reference(npc_id, await self._register(stub, npc_id))
        every = max(1, int(round(25 / cfg.probe_fps)))
        while True:
            remaining = end - time.monotonic()
            seg = min(float(self.rng.uniform(*cfg.segment_s)), remaining)
            if seg < 3.0:
                break
            script = random_script(self.rng, self.corpus, seg, True, EMOTIONS)
            cancel = (float(self.rng.uniform(1.5, seg - 1.0))
                      if self.rng.random() < cfg.disconnect_prob else None)
            r = await run_stream(stub, npc_id, script, seed=slot, cancel_after_s=cancel,
                                 keep_payloads=True, timeout_s=seg * 4 + 60,
                                 client_name=f"soak slot {slot}")
            self._record(r, npc_id, "stream", every)
            if cancel is not None:
                await self._reconnect(stub, npc_id, end, slot, every)
            if self.rng.random() < cfg.churn_prob and end - time.monotonic() > 5:
                await stub.DeleteNpc(npc_pb2.DeleteNpcRequest(npc_id=npc_id), timeout=60)
                gen += 1
                npc_id = f"soak-{slot}-{gen}"
                self.judge.reference(npc_id, await self._register(stub, npc_id))
                t.churned += 1

    async def _reconnect(self, stub, npc_id: str, end: float, slot: int, every: int) -> None:
        t = self.tally
        t.reconnects += 1
        seg = max(3.0, min(float(self.rng.uniform(*self.cfg.segment_s)), end - time.monotonic()))
        script = random_script(self.rng, self.corpus, seg, True, EMOTIONS)
        r = await run_stream(stub, npc_id, script, seed=slot, keep_payloads=True,
                             timeout_s=seg * 4 + 60, client_name=f"soak slot {slot} reconnect")
        if r.status == "FAILED_PRECONDITION":
            # The server has not yet seen the old connection die: take the stream over.
            r = await run_stream(stub, npc_id, script, seed=slot, take_over=True,
                                 keep_payloads=True, timeout_s=seg * 4 + 60,
                                 client_name=f"soak slot {slot} take-over")
        self._record(r, npc_id, "reconnect", every)
        if r.status == "OK" and r.indices:
            t.reconnects_resumed += 1

    def _record(self, r: StreamResult, npc_id: str, kind: str, every: int) -> None:
        s = r.summary()
        s.update(kind=kind, start_s=r.open_t - self.t0, details=r.details)
        s.pop("events", None)
        self.tally.segments.append(s)
        if r.status not in ("OK", "CANCELLED"):
            self.tally.errors.append(f"{npc_id} {kind}: {r.status} {r.details}")
        sims = self.judge.csim(npc_id, r, every)
        self.tally.identity += [(at - self.t0, c) for at, c in sims]
        if len(sims) >= 6:
            third = len(sims) // 3
            c = np.array([x for _, x in sims])
            self.tally.stream_drift.append(float(c[:third].mean() - c[-third:].mean()))
        r.payloads.clear()

    async def _idle_churn(self, stub, end: float) -> None:
        k = 0
        while time.monotonic() + self.cfg.idle_churn_s < end:
            await asyncio.sleep(self.cfg.idle_churn_s)
            npc_id = f"soak-idle-{k}"
            k += 1
            try:
                await self._register(stub, npc_id)
                await stub.GetNpc(npc_pb2.GetNpcRequest(npc_id=npc_id), timeout=60)
                await stub.DeleteNpc(npc_pb2.DeleteNpcRequest(npc_id=npc_id), timeout=60)
                self.tally.idle_churned += 1
            except grpc.aio.AioRpcError as e:
                self.tally.errors.append(f"idle churn {npc_id}: {e.code().name} {e.details()}")

    async def _sampler(self, stub, end: float) -> None:
        while time.monotonic() < end:
            try:
                st = await stub.GetStats(runtime_pb2.GetStatsRequest(), timeout=30)
                self.samples.append({
                    "t_s": time.monotonic() - self.t0, "rss_mb": self.sidecar.rss_bytes() / 2**20,
                    "cache_pages_used": st.cache_pages_used,
                    "cache_pages_total": st.cache_pages_total, "active": st.active_sessions,
                    "fps": st.fps, "frames_sent": st.frames_sent,
                    "deadline_misses": st.deadline_misses, "level": st.degradation_level,
                    "load_average": round(os.getloadavg()[0], 2)})
            except grpc.aio.AioRpcError as e:
                self.tally.errors.append(f"GetStats: {e.code().name} {e.details()}")
            await asyncio.sleep(self.cfg.sample_s)

    async def run(self) -> dict:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        # This process is the load, not the system under test: one torch thread for the probe
        # and the identity renders, so it takes as little CPU from the sidecar as it can.
        import torch
        torch.set_num_threads(1)
        self.corpus = speech_corpus(cfg.corpus_lines, cfg.seed)
        report: dict = {"config": asdict(cfg), "machine_start": machine()}
        with Sidecar(self.out, self._server_config(), name="soak") as sc:
            self.sidecar = sc
            async with grpc.aio.insecure_channel(sc.target) as ch:
                stub = runtime_pb2_grpc.NpcRuntimeStub(ch)
                info = await stub.GetServerInfo(runtime_pb2.GetServerInfoRequest(), timeout=30)
                self.frame_size = info.frame_sizes[0].width
                self.judge = _Judge(self.frame_size)
                self.t0 = time.monotonic()
                end = self.t0 + cfg.minutes * 60
                tasks = [self._slot(stub, i, end) for i in range(cfg.npcs)]
                tasks += [self._idle_churn(stub, end), self._sampler(stub, end)]
                results = await asyncio.gather(*tasks, return_exceptions=True)
                for r in results:
                    if isinstance(r, BaseException):
                        self.tally.errors.append(f"client task failed: {r!r}")
                final = await stub.GetStats(runtime_pb2.GetStatsRequest(), timeout=30)
            crashed = not sc.alive()
            report["server_final"] = {
                "frames_sent": final.frames_sent, "deadline_misses": final.deadline_misses,
                "frames_dropped": final.frames_dropped, "frames_held": final.frames_held,
                "degraded_chunks": final.degraded_chunks, "streams_refused": final.streams_refused,
                "audio_to_frame_p50_ms": final.audio_to_frame.p50_ms,
                "audio_to_frame_p99_ms": final.audio_to_frame.p99_ms,
                "time_to_first_frame_p50_ms": final.time_to_first_frame.p50_ms,
                "mean_batch": final.chunks / max(1, final.steps)}
            exit_code = sc.stop()
        report["server_exit_code"] = exit_code
        report.update(self._verdict(crashed, final))
        report["machine_end"] = machine()
        (self.out / "soak.json").write_text(json.dumps(report, indent=1))
        self._plot(report)
        return report

    def _verdict(self, crashed: bool, final) -> dict:
        cfg, t = self.cfg, self.tally
        frames = sum(s["frames"] for s in t.segments)
        expected = max(1, sum(s["expected_frames"] for s in t.segments))
        warm = min(cfg.warmup_s, cfg.minutes * 60 / 3)
        rss = [(s["t_s"], s["rss_mb"]) for s in self.samples if s["rss_mb"] > 0]
        after = [r for ts, r in rss if ts >= warm]
        growth = ((float(np.median(after[-3:])) - after[0]) / after[0]
                  if len(after) >= 2 else 0.0)
        ident = np.array(t.identity) if t.identity else np.zeros((0, 2))
        # Drift is judged within streams (a reconnect starts a fresh KV cache, and churn
        # changes identities, so only a live stream can drift): mean over streams of identity
        # similarity in its first third minus its last third.
        drift = float(np.mean(t.stream_drift)) if t.stream_drift else None
        per_minute = [float(ident[(ident[:, 0] >= 60 * m) & (ident[:, 0] < 60 * (m + 1)), 1]
                            .mean()) for m in range(int(np.ceil(cfg.minutes)))
                      if np.any((ident[:, 0] >= 60 * m) & (ident[:, 0] < 60 * (m + 1)))]
        late = final.deadline_misses / max(1, final.frames_sent)
        checks = {
            "no_errors": not t.errors and not crashed,
            "delivered": frames / expected >= cfg.min_delivered,
            "rss_growth": growth <= cfg.max_rss_growth,
            "reconnects_resumed": t.reconnects_resumed == t.reconnects,
            "deadline_misses": late <= cfg.max_late_fraction,
            "identity_drift": drift is None or abs(drift) <= cfg.max_identity_drift,
        }
        return {"passed": all(checks.values()), "checks": checks,
                "frames_delivered": frames, "frames_expected": expected,
                "delivered_ratio": frames / expected, "late_fraction": late,
                "rss_growth_after_warmup": growth, "rss_warmup_s": warm,
                "identity_csim_mean": float(ident[:, 1].mean()) if len(ident) else None,
                "identity_drift": drift, "identity_drift_streams": len(t.stream_drift),
                "identity_csim_per_minute": per_minute, "reconnects": t.reconnects,
                "reconnects_resumed": t.reconnects_resumed, "npc_churn": t.churned,
                "idle_npc_churn": t.idle_churned, "streams": len(t.segments),
                "errors": t.errors, "crashed": crashed, "samples": self.samples,
                "segments": t.segments}

    def _plot(self, report: dict) -> None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        s = self.samples
        if not s:
            return
        ts = [x["t_s"] / 60 for x in s]
        fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
        axes[0].plot(ts, [x["rss_mb"] for x in s])
        axes[0].set_title(f"server RSS (MB); growth {report['rss_growth_after_warmup']:+.1%}")
        axes[1].plot(ts, [x["cache_pages_used"] for x in s], label="used")
        axes[1].plot(ts, [x["cache_pages_total"] for x in s], ":", label="pool")
        axes[1].set_title("KV-cache pages")
        axes[1].legend()
        axes[2].plot(ts, [x["fps"] for x in s], label="fps (all streams)")
        axes[2].plot(ts, [x["load_average"] for x in s], ":", label="load average")
        axes[2].set_title(f"delivered {report['delivered_ratio']:.2%} of expected")
        axes[2].legend()
        for a in axes:
            a.set_xlabel("minutes")
        fig.tight_layout()
        fig.savefig(self.out / "soak.png", dpi=100)
        plt.close(fig)


def run_soak(cfg: SoakConfig) -> dict:
    return asyncio.run(Soak(cfg).run())
