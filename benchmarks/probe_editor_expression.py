"""Does a checkpoint's mouth editor keep the rest of the face? Probe reads on unseen identities.

    .venv/bin/python benchmarks/probe_editor_expression.py CKPT [--sessions 8] [--noise 0 0.15]

Held-out counterfactual renders (`train/editor.py` `editor_data`, evaluation-split sessions:
identities and voices never trained on): every ordered pair (i, j) of a frame's mouth variants,
i == j included, the editor given z_i (plus Gaussian noise of each --noise level, the stand-in
for a DiT latent) and mouth j, scored against z_j, the same frame with that mouth. The bench's
probe reads the decoded frames; per parameter it prints the mean |edited - target| beside
|input - target| (what not editing costs) and r(edited, target). The mouth parameters should
move to the target; the expression parameters (smile and sneer sit at the mouth; brows and head
pitch outside the window) should stay. docs/training.md, "Session 14". About a minute.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from npc_runtime.bench.metrics import pearson
from npc_runtime.bench.probes import Probe
from npc_runtime.train.editor import (TEST_FIRST_SEED, EditorTrainConfig, edit, editor_data,
                                      probe_read)
from npc_runtime.train.flow import load_lpm
from npc_runtime.world.performance import P

PARAMS = ("jaw_open", "lip_width", "smile", "sneer", "brow_raise", "eye_wide", "head_pitch")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.15])
    args = ap.parse_args()
    lpm, _ = load_lpm(args.checkpoint, causal=True)
    if lpm.mouth_edit is None:
        raise SystemExit(f"{args.checkpoint} has no mouth editor (`npc-runtime train editor`)")
    z, m, emotion, _ = editor_data(lpm, "eval", range(TEST_FIRST_SEED, TEST_FIRST_SEED + args.sessions),
                          EditorTrainConfig(test_sessions=args.sessions))
    n, k = z.shape[:2]
    f = torch.arange(n).repeat_interleave(k * k)
    i = torch.arange(k).repeat_interleave(k).repeat(n)
    j = torch.arange(k).repeat(k * n)
    probe = Probe.load()
    target = probe_read(lpm, probe, z[f, j])
    gen = torch.Generator().manual_seed(0)
    for noise in args.noise:
        src = z[f, i] + noise * torch.randn(z[f, i].shape, generator=gen)
        edited = edit(lpm, src, m[f, j], emotion[f])
        e, s = probe_read(lpm, probe, edited), probe_read(lpm, probe, src)
        print(f"input noise {noise}  ({len(src)} pairs, {n} frames of {args.sessions} sessions)")
        print(f"  {'parameter':11s} {'|edited-target|':>16s} {'|input-target|':>15s} "
              f"{'target std':>11s} {'r(edited, target)':>18s}")
        for name in PARAMS:
            c = P[name]
            print(f"  {name:11s} {np.abs(e[:, c] - target[:, c]).mean():16.3f} "
                  f"{np.abs(s[:, c] - target[:, c]).mean():15.3f} {target[:, c].std():11.3f} "
                  f"{pearson(e[:, c], target[:, c]):18.3f}")


if __name__ == "__main__":
    main()
