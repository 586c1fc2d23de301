"""`npc-runtime world ...`: build synthetic-world datasets and train the evaluator probes."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def _make(args: argparse.Namespace) -> int:
    from npc_runtime.world.dataset import DatasetSpec, make_dataset

    spec = DatasetSpec(sessions=args.sessions, duration_s=args.duration,
                       sessions_per_shard=args.per_shard, first_seed=args.first_seed,
                       split=args.split, size=args.size, compress=args.compress,
                       compile=args.compile)
    stats = make_dataset(args.out, spec)
    log.info("%s", json.dumps(stats))
    return 0


def _probes_train(args: argparse.Namespace) -> int:
    import torch

    from npc_runtime.bench.probes import ProbeTrainConfig, train_probes

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = ProbeTrainConfig(train_frames=args.frames, test_frames=args.test_frames,
                           epochs=args.epochs, seed=args.seed)
    probe, report = train_probes(cfg)
    probe.save(args.out, report)
    Path(args.out).with_suffix(".json").write_text(json.dumps(report, indent=1))
    log.info("saved %s", args.out)
    return 0


def register(subparsers) -> None:
    world = subparsers.add_parser("world", help="synthetic performance world")
    sub = world.add_subparsers(dest="world_command", required=True)

    make = sub.add_parser("make", help="render dyadic sessions into dataset shards")
    make.add_argument("out", help="output directory (shard-*.npz + index.json)")
    make.add_argument("--sessions", type=int, default=8)
    make.add_argument("--duration", type=float, default=30.0, help="seconds per session")
    make.add_argument("--per-shard", type=int, default=4, help="sessions per shard file")
    make.add_argument("--first-seed", type=int, default=0)
    make.add_argument("--split", choices=("train", "eval"), default="train")
    make.add_argument("--size", type=int, default=128, help="frame size in pixels")
    make.add_argument("--compress", action="store_true", help="zip-deflate the shards")
    make.add_argument("--compile", action="store_true",
                      help="torch.compile the renderer (~4x faster after ~1 min warm-up)")
    make.set_defaults(func=_make)

    probes = sub.add_parser("probes", help="evaluator probes")
    psub = probes.add_subparsers(dest="probes_command", required=True)
    train = psub.add_parser("train", help="train the probes on renders (minutes on a CPU)")
    from npc_runtime.bench.probes import ProbeTrainConfig
    d = ProbeTrainConfig()
    default_out = Path(__file__).resolve().parents[1] / "bench" / "probes.safetensors"
    train.add_argument("--out", default=str(default_out),
                       help="weights file (default: the one shipped in the package)")
    train.add_argument("--frames", type=int, default=d.train_frames)
    train.add_argument("--test-frames", type=int, default=d.test_frames)
    train.add_argument("--epochs", type=int, default=d.epochs)
    train.add_argument("--seed", type=int, default=d.seed)
    train.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    train.set_defaults(func=_probes_train)
