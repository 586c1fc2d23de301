"""`npc-runtime bench perf`: how many NPCs one sidecar sustains at 25 fps, and what batching buys.

1. Start the sidecar in its own process on 127.0.0.1 (`Sidecar`), register `max_n` NPCs
   (evaluation identities), and ramp N = 1, 2, ...: each level opens N concurrent Perform
   streams through real gRPC clients playing espeak-ng speech (NPC lines, player replies,
   emotion cues) at real-time pace for `stream_s` seconds.
2. A level is *sustained* when every stream ends OK, delivers >= `min_delivered` of its frames,
   at >= `min_fps`, with no FRAMES_DROPPED, at most `max_late_fraction` frames past their
   pacing time (the server's deadline-miss counter), and no degradation (the scheduler's
   degradation is off here so every figure is at full quality). The ramp stops at the first
   level that is not sustained (`stop_after_slips` in a row).
3. Batched vs one-at-a-time: the same `compare_n` streams against the batching sidecar and
   against a second sidecar with `scheduler.max_batch: 1`, in the same run. Throughput is the
   frames the engine computed per second of engine busy time (GetStats.engine_busy_s), which is
   what batching changes; delivered fps is reported beside it.

Writes `perf.json` and `perf.png` (fps and latency vs N) into `out`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc
import numpy as np

from npc_runtime._proto import npc_pb2, runtime_pb2, runtime_pb2_grpc
from npc_runtime.perf.client import StreamResult, run_stream
from npc_runtime.perf.sidecar import Sidecar
from npc_runtime.perf.workload import identity_png, random_script, speech_corpus

log = logging.getLogger(__name__)

EMOTIONS = ("happy", "sad", "angry", "surprised", "neutral")


@dataclass
class PerfConfig:
    out: str
    model: str = ""                 # ServerConfig.model ("" = shipped checkpoint)
    steps: int = 0                  # sampling steps; 0 = the model's own
    threads: int = 0                # torch threads of the sidecar; 0 = torch's default
    device: str = "cpu"
    texture: str = "bc1"
    max_n: int = 8
    ramp: list[int] = field(default_factory=list)   # empty: 1..max_n
    stream_s: float = 10.0
    compare_n: int = 4
    compare: bool = True
    min_fps: float = 24.5
    min_delivered: float = 0.99
    max_late_fraction: float = 0.01
    stop_after_slips: int = 1
    seed: int = 0
    corpus_lines: int = 12


def machine() -> dict:
    load = os.getloadavg()
    info = {"platform": platform.platform(), "cpu_count": os.cpu_count(),
            "load_average": [round(x, 2) for x in load]}
    try:
        import torch
        info["torch_threads_default"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except Exception:          # torch is optional for describing the machine
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


def _batch_delta(before: runtime_pb2.ServerStats, after: runtime_pb2.ServerStats) -> dict:
    b = {x.batch_size: x.steps for x in before.batch_sizes}
    return {int(x.batch_size): int(x.steps - b.get(x.batch_size, 0)) for x in after.batch_sizes
            if x.steps - b.get(x.batch_size, 0) > 0}


def level_summary(n: int, results: list[StreamResult], before, after, chunk_frames: int,
                  cfg: PerfConfig) -> dict:
    """Judge one level from the clients' recordings and the server's counters."""
    per = [r.summary() for r in results]
    frames = sum(p["frames"] for p in per)
    expected = max(1, sum(p["expected_frames"] for p in per))
    lat = np.concatenate([np.asarray(r.arrivals) - (r.audio_t0 + np.asarray(r.pts_us) / 1e6)
                          for r in results if r.started and r.arrivals] or [np.zeros(0)])
    d = lambda name: getattr(after, name) - getattr(before, name)  # noqa: E731
    sent = max(1, d("frames_sent"))
    busy = d("engine_busy_s")
    chunks = d("chunks")
    fps = [p.get("fps", 0.0) for p in per]
    out = {
        "n": n,
        "statuses": sorted({p["status"] for p in per}),
        "fps_mean": float(np.mean(fps)), "fps_min": float(np.min(fps)),
        "delivered_ratio": frames / expected,
        "frames": frames, "expected_frames": expected,
        "dropped_frames": int(sum(p["dropped_frames"] for p in per)),
        "late_fraction": d("deadline_misses") / sent,
        "degraded_chunks": int(d("degraded_chunks")), "held_frames": int(d("frames_held")),
        "latency_p50_ms": float(np.percentile(lat, 50) * 1e3) if len(lat) else None,
        "latency_p99_ms": float(np.percentile(lat, 99) * 1e3) if len(lat) else None,
        "time_to_first_frame_s": float(np.mean([p.get("time_to_first_frame_s", np.nan)
                                                for p in per])),
        "server_steps": int(d("steps")), "server_chunks": int(chunks),
        "mean_batch": chunks / max(1, d("steps")),
        "batch_sizes": _batch_delta(before, after),
        "engine_busy_s": busy,
        "throughput_fps": chunks * chunk_frames / busy if busy > 0 else None,
        "server_step_p50_ms": after.step_time.p50_ms, "server_step_p99_ms": after.step_time.p99_ms,
        "streams": per,
    }
    out["sustained"] = bool(
        out["statuses"] == ["OK"] and out["delivered_ratio"] >= cfg.min_delivered
        and out["fps_min"] >= cfg.min_fps and out["dropped_frames"] == 0
        and out["late_fraction"] <= cfg.max_late_fraction
        and out["degraded_chunks"] == 0 and out["held_frames"] == 0)
    return out


class _Load:
    """NPCs registered on one sidecar and the streams run against it."""

    def __init__(self, sidecar: Sidecar, cfg: PerfConfig, corpus) -> None:
        self.sidecar, self.cfg, self.corpus = sidecar, cfg, corpus
        self.npcs: list[str] = []

    async def register(self, n: int) -> None:
        async with grpc.aio.insecure_channel(self.sidecar.target) as ch:
            stub = runtime_pb2_grpc.NpcRuntimeStub(ch)
            info = await stub.GetServerInfo(runtime_pb2.GetServerInfoRequest(), timeout=30)
            self.frame_size = info.frame_sizes[0].width
            self.chunk_frames = info.chunk_frames
            for i in range(n):
                npc_id = f"perf-npc-{i}"
                await stub.RegisterNpc(npc_pb2.RegisterNpcRequest(
                    npc_id=npc_id, display_name=f"Perf NPC {i}",
                    reference_images=[identity_png(self.cfg.seed + i, self.frame_size)]),
                    timeout=120)
                self.npcs.append(npc_id)

    async def level(self, n: int) -> dict:
        rng = np.random.default_rng([self.cfg.seed, n])
        fmt = {"bc1": 1, "rgba8": 2}[self.cfg.texture]
        async with grpc.aio.insecure_channel(self.sidecar.target) as ch:
            stub = runtime_pb2_grpc.NpcRuntimeStub(ch)
            before = await stub.GetStats(runtime_pb2.GetStatsRequest(), timeout=30)
            scripts = [random_script(rng, self.corpus, self.cfg.stream_s, True, EMOTIONS)
                       for _ in range(n)]
            results = await asyncio.gather(*(
                run_stream(stub, self.npcs[i], scripts[i], seed=i, texture_format=fmt,
                           timeout_s=self.cfg.stream_s * 6 + 60)
                for i in range(n)))
            after = await stub.GetStats(runtime_pb2.GetStatsRequest(), timeout=30)
        s = level_summary(n, list(results), before, after, self.chunk_frames, self.cfg)
        s["capacity_reason"] = after.capacity_reason
        s["load_average"] = [round(x, 2) for x in os.getloadavg()]
        log.info("N=%d: fps mean %.2f min %.2f, delivered %.1f%%, late %.2f%%, latency p50 %s "
                 "p99 %s ms, mean batch %.2f, throughput %.1f frames/busy-s -> %s", n,
                 s["fps_mean"], s["fps_min"], 100 * s["delivered_ratio"],
                 100 * s["late_fraction"], _ms(s["latency_p50_ms"]), _ms(s["latency_p99_ms"]),
                 s["mean_batch"], s["throughput_fps"] or 0.0,
                 "sustained" if s["sustained"] else "SLIPPED")
        return s


def _ms(x) -> str:
    return "-" if x is None else f"{x:.0f}"


def _server_config(cfg: PerfConfig, max_batch: int, max_sessions: int) -> dict:
    return {"model": cfg.model, "model_steps": cfg.steps, "torch_threads": cfg.threads,
            "device": cfg.device, "warmup_chunks": 2,
            "limits": {"max_sessions": max_sessions},
            # The ramp goes past the admission capacity on purpose (it measures it); the
            # server's own verdict is recorded from GetStats.capacity_reason.
            "admission": {"measured": False},
            "scheduler": {"max_batch": max_batch, "degrade": False},
            "stream": {"default_texture_format": cfg.texture}}


async def _run_sidecar(cfg: PerfConfig, name: str, max_batch: int, levels: list[int],
                       corpus, stop_on_slip: bool) -> tuple[list[dict], dict]:
    out = Path(cfg.out)
    max_n = max(levels)
    with Sidecar(out, _server_config(cfg, max_batch, max_n), name=name) as sc:
        load = _Load(sc, cfg, corpus)
        await load.register(max_n)
        stats = sc.stats()
        results, slips = [], 0
        for n in levels:
            r = await load.level(n)
            results.append(r)
            slips = 0 if r["sustained"] else slips + 1
            if stop_on_slip and slips >= cfg.stop_after_slips:
                break
        return results, {"capacity_reason": stats.capacity_reason,
                         "sampling_steps": stats.sampling_steps}


async def run_bench(cfg: PerfConfig) -> dict:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    import torch
    torch.set_num_threads(1)      # this process is the load: leave the CPU to the sidecar
    t0 = time.monotonic()
    report = {"config": asdict(cfg), "machine_start": machine()}
    corpus = speech_corpus(cfg.corpus_lines, cfg.seed)
    ramp = cfg.ramp or list(range(1, cfg.max_n + 1))
    levels, info = await _run_sidecar(cfg, "batched", 64, ramp, corpus, stop_on_slip=True)
    report["server"] = info
    report["ramp"] = levels
    sustained = [r["n"] for r in levels if r["sustained"]]
    # The largest N such that every level up to it held 25 fps.
    report["sustained_npcs"] = max((n for n in sustained
                                    if all(r["sustained"] for r in levels if r["n"] <= n)),
                                   default=0)
    if cfg.compare:
        n = cfg.compare_n
        batched = next((r for r in levels if r["n"] == n), None)
        if batched is None:
            batched = (await _run_sidecar(cfg, "batched-compare", 64, [n], corpus, False))[0][0]
        single = (await _run_sidecar(cfg, "one-at-a-time", 1, [n], corpus, False))[0][0]
        tb, ts = batched["throughput_fps"], single["throughput_fps"]
        report["compare"] = {"n": n, "batched": batched, "one_at_a_time": single,
                             "throughput_batched_fps": tb, "throughput_one_at_a_time_fps": ts,
                             "speedup": (tb / ts) if tb and ts else None}
    report["machine_end"] = machine()
    report["wall_s"] = time.monotonic() - t0
    (out / "perf.json").write_text(json.dumps(report, indent=1))
    plot(report, out / "perf.png")
    return report


def plot(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = report["ramp"]
    n = [r["n"] for r in levels]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.plot(n, [r["fps_mean"] for r in levels], "o-", label="mean fps per NPC")
    a.plot(n, [r["fps_min"] for r in levels], "s--", label="min fps per NPC")
    a.axhline(25, color="grey", lw=0.8, ls=":", label="25 fps")
    c = report.get("compare")
    if c:
        a.plot([c["n"]], [c["batched"]["fps_mean"]], "g^", label=f"batched (N={c['n']})")
        a.plot([c["n"]], [c["one_at_a_time"]["fps_mean"]], "rv",
               label=f"one at a time (N={c['n']})")
    a.set_xlabel("concurrent NPC streams")
    a.set_ylabel("delivered fps")
    a.set_title(f"sustained at 25 fps: {report['sustained_npcs']} NPC(s)")
    a.legend()
    b.plot(n, [r["latency_p50_ms"] or np.nan for r in levels], "o-", label="p50")
    b.plot(n, [r["latency_p99_ms"] or np.nan for r in levels], "s--", label="p99")
    b.set_xlabel("concurrent NPC streams")
    b.set_ylabel("audio-to-frame latency (ms)")
    title = "latency"
    if report.get("compare", {}).get("speedup"):
        c = report["compare"]
        title += (f"; batched vs one-at-a-time at N={c['n']}: {c['throughput_batched_fps']:.0f} "
                  f"vs {c['throughput_one_at_a_time_fps']:.0f} fps ({c['speedup']:.2f}x)")
    b.set_title(title, fontsize=9)
    b.legend()
    m = report["machine_start"]
    fig.suptitle(f"{m.get('cpu', '')} x{m.get('cpu_count')} {m.get('gpu', '')} "
                 f"load {m['load_average']}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
