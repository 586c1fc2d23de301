"""`npc-runtime bench quality`: LPM-Bench-mini on performers, frame folders or custom cases."""

from __future__ import annotations

import argparse
import json
import logging

log = logging.getLogger(__name__)


def _cases(args: argparse.Namespace):
    from npc_runtime.bench.cases import build_suite, load_cases_yaml

    if args.cases:
        return load_cases_yaml(args.cases, size=args.size or 128), "custom"
    return build_suite(args.suite, long_stream_s=args.long_stream_s, size=args.size), args.suite


def _quality(args: argparse.Namespace) -> int:
    from npc_runtime.bench.performers import PERFORMERS, FolderPerformer
    from npc_runtime.bench.probes import Probe
    from npc_runtime.bench.report import run_quality

    cases, suite = _cases(args)
    performers = []
    for name in [n for n in args.performers.split(",") if n]:
        if name not in PERFORMERS:
            log.error("unknown performer %r; known: %s", name, ", ".join(PERFORMERS))
            return 2
        performers.append(PERFORMERS[name]())
    performers += [FolderPerformer(f) for f in args.frames]
    if args.cases:  # custom cases have no ground-truth performance to render
        performers = [p for p in performers if p.name != "ground_truth"]
    probe = Probe.load(args.probe) if args.probe else Probe.load()
    report = run_quality(performers, cases, args.out, probe, suite=suite,
                         videos=not args.no_video)
    summary = {name: r["aggregate"] for name, r in report["performers"].items()}
    log.info("report written to %s/report.json\n%s", args.out, json.dumps(summary, indent=1))
    return 0


def _export(args: argparse.Namespace) -> int:
    from npc_runtime.bench.performers import export_case

    cases, _ = _cases(args)
    for case in cases:
        log.info("wrote %s", export_case(case, args.out))
    return 0


def register(subparsers) -> None:
    bench = subparsers.add_parser("bench", help="LPM-Bench-mini")
    sub = bench.add_subparsers(dest="bench_command", required=True)
    for name, func, helptext in (("quality", _quality, "score performers on a suite"),
                                 ("export-cases", _export, "write case inputs for outside tools")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--suite", default="quick", help="quick | full | dev (model selection, not reported)")
        p.add_argument("--cases", help="custom cases YAML (instead of a suite)")
        p.add_argument("--long-stream-s", type=float, default=None,
                       help="override the length of the suite's long streams (s)")
        p.add_argument("--size", type=int, default=None, help="frame size (default 128)")
        p.add_argument("--out", required=True, help="output directory")
        p.set_defaults(func=func)
        if name == "quality":
            p.add_argument("--performers", default="ground_truth,reference_still,noise",
                           help="comma-separated shipped performers")
            p.add_argument("--frames", action="append", default=[],
                           help="folder of frames made elsewhere (ROOT/<case>/*.png or "
                                "ROOT/<case>.npy); repeatable")
            p.add_argument("--probe", help="probe weights (default: shipped)")
            p.add_argument("--no-video", action="store_true")
