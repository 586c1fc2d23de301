"""Online LPM speed: fps for 1 and B batched NPCs through the full chunk step (all sampling
steps + commit pass + VAE decode), time to first frame, and FLOPs per frame per config.

    .venv/bin/python benchmarks/bench_model.py                 # tiny on this CPU
    .venv/bin/python benchmarks/bench_model.py --config base --device cuda

Prints a table; figures go into docs/benchmarks.md with the machine they came from.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from npc_runtime.config import PRESETS, preset
from npc_runtime.emotions import DEFAULT_VOCABULARY
from npc_runtime.model.lpm import CachedAttend
from npc_runtime.pipeline import ChunkRequest, PerformanceModel


def requests(model: PerformanceModel, sids: list[int], rng: np.random.Generator):
    n, c = model.audio_window, model.chunk_frames
    emo = np.tile(DEFAULT_VOCABULARY.tag_vector("happy", 0.5), (c, 1))
    return [ChunkRequest(s, rng.standard_normal(n).astype(np.float32) * 0.1,
                         rng.standard_normal(n).astype(np.float32) * 0.05, emo) for s in sids]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(model: PerformanceModel, batch: int, chunks: int, rng) -> dict[str, float]:
    refs = rng.integers(0, 256, (1, model.frame_size, model.frame_size, 3), dtype=np.uint8)
    t0 = time.perf_counter()
    identity = model.encode_identity(refs)
    sync(model.device)
    t_identity = time.perf_counter() - t0
    sids = [model.open_session(identity, seed=i) for i in range(batch)]
    t0 = time.perf_counter()
    model.step(requests(model, sids, rng))          # first chunk: the cache holds only the sink
    sync(model.device)
    ttff = time.perf_counter() - t0
    for _ in range(model.cfg.stream.window_chunks + 2):   # warm up to a full window
        model.step(requests(model, sids, rng))
    sync(model.device)
    t0 = time.perf_counter()
    for _ in range(chunks):
        model.step(requests(model, sids, rng))
    sync(model.device)
    dt = time.perf_counter() - t0
    for s in sids:
        model.close_session(s)
    frames = chunks * model.chunk_frames
    return {"identity_s": t_identity, "ttff_s": ttff, "fps_per_npc": frames / dt,
            "fps_total": frames * batch / dt, "chunk_ms": 1000 * dt / chunks}


def flops_per_frame(name: str) -> float:
    """FLOPs of one steady-state chunk step (steps + commit + decode) / frames, on meta."""
    cfg = preset(name)
    with torch.device("meta"):
        model = PerformanceModel.from_config(cfg, device="meta", max_sessions=1)
    lpm = model.lpm
    c = cfg.stream.chunk_frames
    shape = (1, c, cfg.vae.latent_channels, cfg.latent_size, cfg.latent_size)
    with torch.device("meta"):
        sink_tokens = cfg.tokens_per_frame                       # one reference image
        sid = 1
        model.cache.add_session(sid, 1)
        model.cache.sessions[sid].sink_tokens = sink_tokens
        model.cache.sessions[sid].count = cfg.stream.window_chunks   # a full window
        view = model.cache.view([sid])
        counter = FlopCounterMode(display=False)
        with counter, torch.inference_mode():
            win = torch.zeros(1, 1, model.audio_window)
            ctx = lpm.context(win, win, torch.zeros(1, c, cfg.emotion_dim),
                              torch.zeros(1, c, dtype=torch.long))
            z = model.denoise_chunk(torch.zeros(shape), ctx, view)
            lpm.vae.decode(z.flatten(0, 1))
            # The commit pass (writes are copies, no FLOPs; meta tensors cannot index by mask).
            lpm.dit(z, torch.zeros(1, c), ctx, CachedAttend(model.cache.pool, view, False),
                    output=False)
    return counter.get_total_flops() / c


def matmul_peak_gflops(device: torch.device, n: int = 1024, repeats: int = 20) -> float:
    """Dense fp32 matmul throughput on this device: what compute-bound batching can reach."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    for _ in range(3):
        a @ b
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * n ** 3 * repeats / (time.perf_counter() - t0) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="tiny", choices=list(PRESETS))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--chunks", type=int, default=40)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--no-flops", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"torch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    rng = np.random.default_rng(0)
    model = PerformanceModel.from_config(preset(args.config), device=device,
                                         max_sessions=max(args.batch, 1))
    d = model.describe()
    print(f"model: {d['name']} ({d['status']}), {d['parameters'] / 1e6:.2f}M params, "
          f"{d['sampling_steps']} steps + commit, chunk {d['chunk_frames']} frames, "
          f"{d['frame_size']}px")
    flops = flops_per_frame(args.config)
    peak = matmul_peak_gflops(device)
    print(f"dense fp32 matmul (1024^3) on this device: {peak:.1f} GFLOP/s")
    achieved = {}
    for batch in (1, args.batch):
        r = measure(model, batch, args.chunks, rng)
        achieved[batch] = flops * r["fps_total"] / 1e9
        print(f"B={batch}: {r['fps_per_npc']:.1f} fps per NPC, {r['fps_total']:.1f} fps total, "
              f"{r['chunk_ms']:.1f} ms per chunk step, time to first frame "
              f"{1000 * r['ttff_s']:.0f} ms (+ identity encode {1000 * r['identity_s']:.0f} ms "
              f"once per NPC)")
        print(f"     {achieved[batch]:.1f} GFLOP/s achieved = {achieved[batch] / peak:.0%} of the "
              f"dense matmul rate")
    # Batching can only fill idle compute: if B=1 already runs near the matmul rate, no batch
    # size can multiply throughput (the bound a CPU sidecar's batching speedup obeys).
    print(f"batching: B={args.batch} / B=1 throughput = {achieved[args.batch] / achieved[1]:.2f}x; "
          f"upper bound from the matmul rate = {peak / achieved[1]:.2f}x")
    if not args.no_flops:
        for name in PRESETS:
            print(f"FLOPs per frame [{name}]: {flops_per_frame(name) / 1e9:.2f} GFLOP")


if __name__ == "__main__":
    main()
