"""Unbounded streaming: N chunks of the `tiny` Online LPM through one session, printing cache
pages, cache bytes and process RSS as it goes. Memory must stay flat: the KV cache holds the
identity sink plus a fixed window, and frame positions wrap exactly (periodic RoPE).

    .venv/bin/python benchmarks/bench_long_stream.py --chunks 10000

`--latents-only` skips the VAE decode (it allocates nothing persistent either) to save time.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from npc_runtime.config import preset
from npc_runtime.emotions import DEFAULT_VOCABULARY
from npc_runtime.pipeline import ChunkRequest, PerformanceModel


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=10_000)
    ap.add_argument("--every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=None, help="sampling steps (default: config)")
    ap.add_argument("--latents-only", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    model = PerformanceModel.from_config(preset("tiny"), max_sessions=1, steps=args.steps)
    refs = rng.integers(0, 256, (2, model.frame_size, model.frame_size, 3), dtype=np.uint8)
    sid = model.open_session(model.encode_identity(refs), seed=0)
    n, c = model.audio_window, model.chunk_frames
    emotions = [np.tile(DEFAULT_VOCABULARY.tag_vector(t, 0.7), (c, 1))
                for t in DEFAULT_VOCABULARY.tags]
    step = model.step_latents if args.latents_only else model.step
    print(f"model {model.describe()['name']} ({model.describe()['status']}), "
          f"{model.steps} steps + commit, decode={'no' if args.latents_only else 'yes'}")
    print("chunk   frames  cache_pages  cache_MB  rss_MB  chunk_ms")
    first = None
    t0 = time.perf_counter()
    for k in range(1, args.chunks + 1):
        speak = rng.standard_normal(n).astype(np.float32) * (0.2 if (k // 25) % 2 else 0.0)
        step([ChunkRequest(sid, speak, np.zeros(n, np.float32), emotions[(k // 50) % 7])])
        if k == 1 or k % args.every == 0:
            row = (model.cache.used_pages(), model.cache.pool.nbytes / 2**20, rss_mb())
            first = first or row
            ms = 1000 * (time.perf_counter() - t0) / k
            print(f"{k:6d} {k * c:8d} {row[0]:12d} {row[1]:9.1f} {row[2]:7.1f} {ms:9.1f}",
                  flush=True)
    last = (model.cache.used_pages(), model.cache.pool.nbytes / 2**20, rss_mb())
    print(f"cache pages {first[0]} -> {last[0]}, cache MB {first[1]:.1f} -> {last[1]:.1f}, "
          f"RSS MB {first[2]:.1f} -> {last[2]:.1f} over {args.chunks} chunks "
          f"({args.chunks * c / model.fps / 3600:.2f} h of video)")
    if last[:2] != first[:2]:
        raise SystemExit("cache memory grew")


if __name__ == "__main__":
    main()
