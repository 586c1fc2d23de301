"""How emotion decodings read the truth: NNLS (the bench's up to session 24) against the
single-emotion fit (the bench's since session 25).

    .venv/bin/python benchmarks/probe_emotion_decoding.py [CKPT ...] [--select 16 --seconds 40]
        [--threads 2]

The bench decodes a window's probe-read expression (metrics.EXPRESSION_INDEX, minus the probe's
reading of the neutral reference) into emotion weights and scores the dominant one: up to
session 24 by NNLS on the six base emotions' prototypes, since then by `metrics.decode_emotion`'s
single-emotion fit. This script scores the same strong windows (a base emotion tagged at
>= 0.5, `metrics.labelled_windows`'s rules) with three decoders, on three kinds of reading:
- decoders: `nnls` (the bench's up to session 24), `nnls_no_pitch` (the same without head
  pitch, which the world also drives with nods and speech), `single` (`metrics.decode_emotion`:
  each base emotion's prototype scaled to fit the reading alone, non-negative; the best fit
  wins; neutral under the same 0.2);
- readings: `inputs` (the world's performance track itself: no image, no probe), `truth` (the
  renderer's frames read by the probe) and each CKPT streamed by the bench's performer.
A decoder that misreads `inputs` or `truth` is measuring itself, not a model. Printed per
reading and decoder: strong windows read as tagged and the largest confusions
(docs/training.md, "Session 24"). Selection cases only (world indices 106..), never the
reported suites.
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
import torch
from scipy.optimize import nnls

from npc_runtime.bench import metrics as M
from npc_runtime.bench.performers import GroundTruthPerformer
from npc_runtime.bench.probes import Probe
from npc_runtime.emotions import DEFAULT_VOCABULARY
from npc_runtime.train.performers import OnlineLPMPerformer
from npc_runtime.world.performance import EXPRESSION_BASIS, EXPRESSION_INDEX

from sweep_emotion_gain import selection_cases, window_readings

PROTOTYPES = EXPRESSION_BASIS[1:, EXPRESSION_INDEX].astype(np.float64)  # (base emotions, 6)
NEUTRAL_BELOW = 0.2


def _label(k: int, weight: float) -> int:
    """Base emotion k's weight -> its vocabulary index, 0 (neutral) when weak."""
    return 0 if weight < NEUTRAL_BELOW else k + 1


def nnls_decode(read: np.ndarray, cols: slice = slice(None)) -> int:
    w, _ = nnls(PROTOTYPES[:, cols].T, read[cols])
    k = int(np.argmax(w))
    return _label(k, w[k])


def single_decode(read: np.ndarray) -> int:
    w = M.decode_emotion(read[None])[0]
    k = int(np.argmax(w[1:]))
    return _label(k, w[k + 1])


DECODERS = {"nnls": nnls_decode,
            "nnls_no_pitch": lambda r: nnls_decode(r, slice(0, PROTOTYPES.shape[1] - 1)),
            "single": single_decode}


def strong_windows(read: np.ndarray, want: np.ndarray):
    """Per-second readings (N, 6) and tagged weights (N, vocab) -> (reading, tag index) of the
    windows the bench's strong score counts (`metrics.emotion_scores`: the dominant base
    emotion tagged at >= 0.5)."""
    for r, w in zip(read, want):
        tag = int(np.argmax(w[1:])) + 1
        if w[tag] >= 0.5:
            yield r.astype(np.float64), tag


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="*")
    ap.add_argument("--select", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.select < 1:
        ap.error("--select: at least one selection case (the reported suites are never used)")
    torch.set_num_threads(args.threads)
    tags = DEFAULT_VOCABULARY.tags
    probe = Probe.load()
    performers = {"truth": GroundTruthPerformer(),
                  **{c: OnlineLPMPerformer(c) for c in args.checkpoints}}
    table = {(s, d): Counter() for s in ("inputs", *performers) for d in DECODERS}
    cases, _ = selection_cases("dev", args.select, args.seconds)
    for case in cases:
        want = M.per_second(np.asarray(case.emotion, np.float32), case.fps)
        readings = {"inputs": M.per_second(np.asarray(case.gt_perf)[:, EXPRESSION_INDEX],
                                           case.fps)}
        for name, performer in performers.items():
            frames = np.concatenate(list(performer.perform(case)))[:case.num_frames]
            readings[name] = window_readings(frames, case, probe, case.fps)[0]
        for source, read in readings.items():
            for r, tag in strong_windows(read, want):
                for name, decode in DECODERS.items():
                    table[(source, name)][(tags[tag], tags[decode(r)])] += 1
        print(f"case {case.name} done", flush=True)
    for (source, name), counts in table.items():
        n, right = sum(counts.values()), sum(v for k, v in counts.items() if k[0] == k[1])
        wrong = sorted(((k, v) for k, v in counts.items() if k[0] != k[1]), key=lambda kv: -kv[1])
        print(f"{source:28s} {name:14s} {right}/{n} = {right / max(n, 1):.3f}  "
              + ", ".join(f"{a}->{b} {v}" for (a, b), v in wrong[:6]))


if __name__ == "__main__":
    main()
