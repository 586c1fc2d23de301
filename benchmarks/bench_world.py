"""Speed of the synthetic world on this machine: renderer fps, speech, dataset hours per minute.

    .venv/bin/python benchmarks/bench_world.py [--threads 1] [--no-compile] [--minutes 1.0]

Prints one line per figure. "Dataset hours per minute" is measured end to end by `make_dataset`
(script, espeak-ng speech, behaviour, rendering, references, writing shards): how many hours of
25 fps footage one process makes per minute of wall time.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from npc_runtime.bench.probes import Probe
from npc_runtime.world.dataset import DatasetSpec, make_dataset
from npc_runtime.world.identity import sample_identity
from npc_runtime.world.performance import random_performance
from npc_runtime.world.render import render_frames
from npc_runtime.world.session import generate_session
from npc_runtime.world.speech import Voice, speak


def _fps(size: int, frames: int, compile: bool) -> float:
    rng = np.random.default_rng(size)
    ident = sample_identity(1)
    perf = random_performance(rng, frames)
    render_frames(ident, perf[:64], size, compile=compile)  # warm-up (compiles when asked)
    t0 = time.perf_counter()
    render_frames(ident, perf, size, compile=compile)
    return frames / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile figures")
    ap.add_argument("--minutes", type=float, default=1.0,
                    help="footage (minutes) generated for the dataset figure")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}")

    for size, n in ((128, 512), (256, 192), (512, 48)):
        print(f"renderer eager    {size:4d} px: {_fps(size, n, False):8.1f} frames/s")
    if not args.no_compile:
        for size, n in ((128, 1024), (256, 256)):
            t0 = time.perf_counter()
            fps = _fps(size, n, True)
            print(f"renderer compiled {size:4d} px: {fps:8.1f} frames/s "
                  f"(compile + warm-up {time.perf_counter() - t0 - n / fps:.0f} s)")

    texts = ["Welcome to the village, traveler. The inn is just past the well.",
             "Der Wald ist nachts nicht sicher."]
    t0, audio_s = time.perf_counter(), 0.0
    for i in range(6):
        u = speak(texts[i % 2] + " " * i, Voice("en-us" if i % 2 == 0 else "de", 150 + 10 * i))
        audio_s += u.duration_s
    print(f"espeak-ng speech: {audio_s / (time.perf_counter() - t0):8.1f} s of audio per s")

    t0 = time.perf_counter()
    s = generate_session(123, 60.0, render=False)
    print(f"behaviour only (no render): {s.num_frames / (time.perf_counter() - t0):8.0f} frames/s")

    for compile in ((False,) if args.no_compile else (False, True)):
        sessions = max(1, int(round(args.minutes * 2)))
        with tempfile.TemporaryDirectory() as tmp:
            stats = make_dataset(tmp, DatasetSpec(sessions=sessions, duration_s=30.0,
                                                  sessions_per_shard=2, compile=compile),
                                 progress=False)
        label = "compiled" if compile else "eager"
        print(f"dataset ({label}, 128 px, {sessions} x 30 s): {stats['frames_per_s']:8.1f} "
              f"frames/s = {stats['dataset_hours_per_min']:.3f} dataset hours per minute "
              f"({stats['dataset_hours_per_min'] * 60:.1f} h per hour of CPU time)")

    try:
        probe = Probe.load()
        frames = render_frames(sample_identity(2), random_performance(np.random.default_rng(0),
                                                                      256))
        probe.read(frames[:32])
        t0 = time.perf_counter()
        probe.read(frames)
        print(f"probe read 128 px: {256 / (time.perf_counter() - t0):8.1f} frames/s")
    except FileNotFoundError:
        print("probe: no shipped weights (run `npc-runtime world probes train`)")


if __name__ == "__main__":
    main()
