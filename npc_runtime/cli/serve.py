"""`npc-runtime serve`: run the sidecar (local only by default) until SIGTERM / Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import logging

from npc_runtime.server.config import ServerConfig

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="run the gRPC sidecar",
                              description=__doc__.splitlines()[0])
    p.add_argument("--config", help="server config YAML (see docs/serving.md)")
    p.add_argument("--address", help="listen address (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, help="listen port (default 50051; 0 = any free port)")
    p.add_argument("--data-dir", help="where NPCs are stored (default ./npc_data)")
    p.add_argument("--device", help="torch device for the model (default cpu)")
    p.add_argument("--ready-file", help="write {address, port, pid, metrics_port} JSON here "
                   "once serving")
    p.add_argument("--metrics-port", type=int,
                   help="serve Prometheus /metrics on this port (0 = any free port; default off)")
    p.add_argument("--threads", type=int, dest="torch_threads",
                   help="torch intra-op threads of the engine (default: torch's own)")
    p.add_argument("--model", help="preset (tiny|small|base, untrained: speed only), model "
                   "config YAML, or checkpoint directory (default: the shipped checkpoint)")
    p.add_argument("--steps", type=int, dest="model_steps",
                   help="sampling steps per chunk (default: the checkpoint's own)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = ServerConfig.from_yaml(args.config) if args.config else ServerConfig()
    for name in ("address", "port", "data_dir", "device", "metrics_port", "torch_threads",
                 "model", "model_steps"):
        value = getattr(args, name)
        if value is not None:
            setattr(config, name, value)
    config.validate()
    from npc_runtime.server.app import serve   # imports torch: only when actually serving
    asyncio.run(serve(config, ready_file=args.ready_file))
    return 0
