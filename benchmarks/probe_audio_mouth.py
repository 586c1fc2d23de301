"""How much of the mouth can a checkpoint's audio pathway tell? Linear reads on unseen voices.

    .venv/bin/python benchmarks/probe_audio_mouth.py CKPT [--train 30] [--test 16]

Ridge regressions from (a) the log-mel frames of a frame and 2 either side, (b) the audio
encoder's token of the frame, (c) its token and 2 either side (what the DiT cross-attends to)
onto the ground-truth jaw opening, fitted on training-split sessions and scored (Pearson r over
speech, the lip-sync metric's span) on evaluation-split sessions: unseen lines and voices, seeds
away from the bench's suites. With a mouth track, its own jaw estimate is scored beside them.
The figures bound what a DiT reading those tokens linearly could reach; docs/training.md,
"Session 12". Audio only (no rendering): seconds.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from npc_runtime.bench.metrics import pearson
from npc_runtime.train.flow import load_lpm
from npc_runtime.train.mouth import TEST_FIRST_SEED, mouth_data


def features(lpm, windows: torch.Tensor) -> dict[str, np.ndarray]:
    cfg = lpm.cfg
    h, c, r = cfg.audio.history_frames, cfg.stream.chunk_frames, 2
    mpf = cfg.mels_per_frame
    with torch.no_grad():
        tokens = lpm.audio(windows)                                      # (N, Fw, d)
        mel = lpm.audio.in_norm(lpm.audio.logmel(windows))               # (N, M, n_mels)
        out = {
            "log-mel, frame +-2": torch.stack(
                [mel[:, (h + j - r) * mpf:(h + j + r + 1) * mpf].flatten(1) for j in range(c)], 1),
            "audio token, frame": tokens[:, h:h + c],
            "audio tokens, frame +-2": torch.cat(
                [tokens[:, h + k:h + k + c] for k in range(-r, r + 1)], -1)}
        if lpm.mouth is not None:
            out["mouth track (jaw, no fit)"] = lpm.mouth(windows)[..., :1]
    return {k: v.reshape(-1, v.shape[-1]).numpy() for k, v in out.items()}


def ridge(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, lam: float) -> np.ndarray:
    mu, sd = x.mean(0), x.std(0) + 1e-6
    a = np.c_[(x - mu) / sd, np.ones(len(x))]
    w = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ y)
    return np.c_[(x_test - mu) / sd, np.ones(len(x_test))] @ w


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--train", type=int, default=30, help="30 s training-split sessions")
    ap.add_argument("--test", type=int, default=16, help="30 s evaluation-split sessions")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    lpm, _ = load_lpm(args.checkpoint, causal=True)
    lpm.eval()
    cfg = lpm.cfg
    w, y, keep = mouth_data(cfg, "train", range(700_000, 700_000 + args.train), 30.0)
    wt, yt, keept = mouth_data(cfg, "eval", range(TEST_FIRST_SEED, TEST_FIRST_SEED + args.test),
                               30.0)
    jaw, jaw_t = y[..., 0].flatten().numpy(), yt[..., 0].flatten().numpy()
    keep, keept = keep.flatten().numpy(), keept.flatten().numpy()
    train_x, test_x = features(lpm, w), features(lpm, wt)
    print(f"{args.checkpoint}: jaw_open, Pearson r over speech on {args.test} unseen sessions")
    for name in train_x:
        if name.startswith("mouth track"):
            print(f"  {name:28s} r {pearson(test_x[name][keept, 0], jaw_t[keept]):.3f}")
            continue
        pred = ridge(train_x[name][keep], jaw[keep], test_x[name], 100.0)
        print(f"  {name:28s} r {pearson(pred[keept], jaw_t[keept]):.3f} (ridge, lambda 100)")


if __name__ == "__main__":
    main()
