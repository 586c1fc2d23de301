"""`npc-runtime bench perf` and `npc-runtime soak`: the load tools (see docs/scaling.md).

`bench perf` hangs under the `bench` command that cli/bench.py defines (LPM-Bench-mini); the
CLI registers modules in name order, so `bench` exists when this module registers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging

log = logging.getLogger(__name__)


def _server_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="", help="sidecar model: preset (tiny|small|base, "
                   "untrained: speed only), model config YAML or checkpoint dir "
                   "(default: the shipped checkpoint)")
    p.add_argument("--steps", type=int, default=0, help="sampling steps (default: the model's)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads of the sidecar (default: torch's own)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--texture", choices=("bc1", "rgba8"), default="bc1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output directory")


def _bench_perf(args: argparse.Namespace) -> int:
    from npc_runtime.perf.bench import PerfConfig, run_bench
    cfg = PerfConfig(out=args.out, model=args.model, steps=args.steps, threads=args.threads,
                     device=args.device, texture=args.texture, max_n=args.max_n,
                     ramp=[int(x) for x in args.ramp.split(",")] if args.ramp else [],
                     stream_s=args.stream_s, compare_n=args.compare_n,
                     compare=not args.no_compare, seed=args.seed)
    report = asyncio.run(run_bench(cfg))
    m = report["machine_start"]
    print(f"machine: {m.get('cpu', '?')} x{m['cpu_count']} {m.get('gpu', '')}; load average "
          f"{m['load_average']} at start, {report['machine_end']['load_average']} at end")
    print(f"model {cfg.model or 'shipped checkpoint'}, "
          f"{report['server']['sampling_steps']} sampling step(s), threads "
          f"{cfg.threads or 'default'}")
    for r in report["ramp"]:
        print(f"  N={r['n']:>2}: fps mean {r['fps_mean']:5.2f} min {r['fps_min']:5.2f}  "
              f"delivered {r['delivered_ratio']:6.1%}  late {r['late_fraction']:6.2%}  "
              f"latency p50 {r['latency_p50_ms'] or 0:5.0f} p99 {r['latency_p99_ms'] or 0:5.0f} "
              f"ms  batch {r['mean_batch']:.2f}  {'ok' if r['sustained'] else 'SLIPPED'}")
    print(f"sustained NPCs at 25 fps: {report['sustained_npcs']}")
    c = report.get("compare")
    if c:
        print(f"batched vs one-at-a-time, {c['n']} NPCs: "
              f"{c['throughput_batched_fps'] or 0:.1f} vs "
              f"{c['throughput_one_at_a_time_fps'] or 0:.1f} frames per engine-busy second "
              f"({c['speedup'] or 0:.2f}x); delivered fps per NPC "
              f"{c['batched']['fps_mean']:.2f} vs {c['one_at_a_time']['fps_mean']:.2f}")
    print(f"wrote {args.out}/perf.json and {args.out}/perf.png")
    return 0


def _soak(args: argparse.Namespace) -> int:
    from npc_runtime.perf.soak import SoakConfig, run_soak
    cfg = SoakConfig(out=args.out, npcs=args.npcs, minutes=args.minutes, model=args.model,
                     steps=args.steps, threads=args.threads, device=args.device,
                     texture=args.texture, seed=args.seed,
                     disconnect_prob=args.disconnect_prob, churn_prob=args.churn_prob,
                     segment_s=(args.segment_min_s, args.segment_max_s),
                     warmup_s=args.warmup_s, min_delivered=args.min_delivered,
                     max_rss_growth=args.max_rss_growth, max_late_fraction=args.max_late,
                     max_identity_drift=args.max_identity_drift)
    r = run_soak(cfg)
    print(json.dumps({k: r[k] for k in (
        "passed", "checks", "frames_delivered", "frames_expected", "delivered_ratio",
        "late_fraction", "rss_growth_after_warmup", "identity_csim_mean", "identity_drift",
        "reconnects", "reconnects_resumed", "npc_churn", "idle_npc_churn", "streams", "errors",
        "crashed")}, indent=1))
    print(f"server: {json.dumps(r['server_final'])}")
    print(f"load average {r['machine_start']['load_average']} at start, "
          f"{r['machine_end']['load_average']} at end; wrote {args.out}/soak.json, soak.png")
    return 0 if r["passed"] else 1


def _bench_subparsers(subparsers) -> argparse._SubParsersAction:
    """The `bench` command's sub-command table (created here if cli/bench.py is absent)."""
    bench = subparsers.choices.get("bench")
    if bench is None:
        bench = subparsers.add_parser("bench", help="benchmarks")
        return bench.add_subparsers(dest="bench_command", required=True)
    for action in bench._actions:       # argparse has no public getter for it
        if isinstance(action, argparse._SubParsersAction):
            return action
    return bench.add_subparsers(dest="bench_command", required=True)


def register(subparsers) -> None:
    p = _bench_subparsers(subparsers).add_parser(
        "perf", help="sustained NPCs at 25 fps; batched vs one-at-a-time",
        description="Ramp concurrent NPC streams against a local sidecar until deadlines slip.")
    _server_args(p)
    p.add_argument("--max-n", type=int, default=8, help="largest N of the ramp")
    p.add_argument("--ramp", help="explicit N values, e.g. 1,2,4,6,8 (default 1..max-n)")
    p.add_argument("--stream-s", type=float, default=10.0, help="seconds per level")
    p.add_argument("--compare-n", type=int, default=4,
                   help="N for batched vs one-at-a-time")
    p.add_argument("--no-compare", action="store_true")
    p.set_defaults(func=_bench_perf)

    s = subparsers.add_parser("soak", help="N NPCs x M minutes of churn, judged by budgets",
                              description=__doc__.splitlines()[0])
    _server_args(s)
    s.add_argument("--npcs", type=int, default=4)
    s.add_argument("--minutes", type=float, default=10.0)
    s.add_argument("--disconnect-prob", type=float, default=0.2)
    s.add_argument("--churn-prob", type=float, default=0.2)
    s.add_argument("--segment-min-s", type=float, default=10.0)
    s.add_argument("--segment-max-s", type=float, default=40.0)
    s.add_argument("--warmup-s", type=float, default=60.0)
    s.add_argument("--min-delivered", type=float, default=0.99)
    s.add_argument("--max-rss-growth", type=float, default=0.05)
    s.add_argument("--max-late", type=float, default=0.05,
                   help="budget: fraction of frames sent over half a period late")
    s.add_argument("--max-identity-drift", type=float, default=0.15)
    s.set_defaults(func=_soak)
