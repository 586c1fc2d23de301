"""Sweep the Online LPM's stream.emotion_gain on a bench suite: one report, one performer a gain.

    .venv/bin/python benchmarks/sweep_emotion_gain.py [CKPT] --gains 1 1.5 2 \
        [--suite dev | --select N [--seconds 40]] [--out out/gain_dev] [--threads 2]

Every gain streams the same cases through the real streaming path (`OnlineLPMPerformer`, the
performer `npc-runtime train bench` uses, same seed and probe); only the emotion condition's
distance from neutral differs (config.py, StreamConfig.emotion_gain). Prints, per gain, what
the gain is meant to move (emotion accuracy at the issue's definition, its windows, the
dominant-emotion confusions) beside what it must not break (lip sync, identity, nods in
listening vs silence, quiet mouth, FPD, fps). Choose a gain on `dev` (the suite kept for model
selection) or on `--select N`: N more cases of the same kind (eval identities, lines and voices;
world indices 106.., which no suite uses), for more windows than dev's 30; report the choice
with `train bench` on `full`. docs/training.md, "Session 18".
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from npc_runtime.bench import metrics as M
from npc_runtime.bench.cases import build_suite, world_case
from npc_runtime.bench.probes import Probe
from npc_runtime.bench.report import run_quality
from npc_runtime.emotions import DEFAULT_VOCABULARY
from npc_runtime.train.performers import OnlineLPMPerformer
from npc_runtime.world.performance import EXPRESSION_INDEX

SHOWN = ("emotion_accuracy_strong", "emotion_accuracy", "emotion_corr", "lip_sync_corr",
         "identity_csim", "nod_rate_listen_per_min", "nod_rate_silence_per_min",
         "listen_nod_contrast", "quiet_mouth_open", "fpd", "fps")


class _Recording:
    """Wraps a performer and keeps its frames per case (for the confusion table)."""

    def __init__(self, inner: OnlineLPMPerformer) -> None:
        self.inner, self.name, self.settings = inner, inner.name, inner.settings
        self.frames: dict[str, list[np.ndarray]] = {}

    def perform(self, case):
        kept = self.frames.setdefault(case.name, [])
        for chunk in self.inner.perform(case):
            kept.append(chunk)
            yield chunk


def window_readings(frames: np.ndarray, case, probe: Probe, fps: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """-> per-second (probe-read expression minus the reference's reading (N, 6), tagged
    weights (N, vocab)), as `emotion_scores` sees them (the frames are read by the probe again:
    the bench keeps no readings)."""
    perf, _ = probe.read(frames)
    ref = probe.read(case.references[:1])[0][0]
    return (M.per_second((perf - ref)[:, EXPRESSION_INDEX], fps),
            M.per_second(np.asarray(case.emotion, np.float32), fps))


def confusions(frames: np.ndarray, case, probe: Probe, fps: float) -> Counter:
    """(tag, read) pairs over the case's strong windows, as `emotion_scores` scores them."""
    read, want = window_readings(frames, case, probe, fps)
    tags = DEFAULT_VOCABULARY.tags
    return Counter((tags[tag], tags[pred]) for _, w, tag, pred in M.labelled_windows(read, want)
                   if tag and w[tag] >= 0.5)


def confusion_line(name: str, frames_of, cases, probe: Probe) -> str:
    """One performer's strong windows and misreads over `cases`; `frames_of(case)` -> frames."""
    table: Counter = Counter()
    for case in cases:
        table += confusions(frames_of(case), case, probe, case.fps)
    wrong = {k: v for k, v in sorted(table.items()) if k[0] != k[1]}
    return (f"{name}: strong windows {sum(table.values())}, misread {sum(wrong.values())}: "
            + ", ".join(f"{a}->{b} {n}" for (a, b), n in wrong.items()))


def selection_cases(suite: str, select: int, seconds: float) -> tuple[list, str]:
    """-> (cases, their name): `select` selection cases of `seconds` (world indices 106..: past
    dev's 100..105; quick/full use 0..7 and the long stream 500), or the suite's short cases."""
    if select:
        return ([world_case(i, seconds, name=f"select-{i:03d}") for i in range(106, 106 + select)],
                f"select ({select} x {seconds:g} s)")
    return [c for c in build_suite(suite) if not c.name.startswith("long-")], suite


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", nargs="?", default="npc_runtime/weights/tiny")
    ap.add_argument("--gains", type=float, nargs="+", default=[1.0, 1.5, 2.0])
    ap.add_argument("--suite", default="dev")
    ap.add_argument("--select", type=int, default=0,
                    help="instead of a suite: N selection cases (world indices 106..)")
    ap.add_argument("--seconds", type=float, default=40.0, help="length of a selection case")
    ap.add_argument("--out", default="out/gain_sweep")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    cases, args.suite = selection_cases(args.suite, args.select, args.seconds)
    probe = Probe.load()
    performers = [_Recording(OnlineLPMPerformer(args.checkpoint, name=f"gain_{g:g}",
                                                emotion_gain=g)) for g in args.gains]
    report = run_quality(performers, cases, Path(args.out), probe, suite=args.suite,
                         videos=False)
    print(f"suite {args.suite} ({len(cases)} cases), checkpoint {args.checkpoint}")
    print("gain  " + "  ".join(SHOWN))
    for p in performers:
        agg = report["performers"][p.name]["aggregate"]
        print(p.name[5:].ljust(6) + "  ".join(f"{agg[k]:.3f}" for k in SHOWN))
    for p in performers:
        print(confusion_line(p.name, lambda case: np.concatenate(p.frames[case.name]), cases,
                             probe))


if __name__ == "__main__":
    main()
