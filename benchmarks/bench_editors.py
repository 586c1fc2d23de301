"""What the stream's add-ons cost beside the chunk step: the mouth editor, the nod editor, the
nod track, the steady head's pitch reader and the expression editor, per 4-frame chunk, against the whole chunk step (sampling, commit, decode).

    .venv/bin/python benchmarks/bench_editors.py [--threads 2] [--repeats 50]

Seeded random weights of the `tiny` config with the editors and the nod track on (speed does
not depend on the weights). The editors are timed on every frame of a chunk; in the stream the
mouth editor runs only while the NPC speaks and the nod editor only on a nod's frames and on
frames the steady head pulls back (the reader reads every frame), the expression editor on
frames tagged with a non-neutral emotion, so
these are the costs of a chunk that needs them. Prints milliseconds per chunk (median of
`--repeats`) and each as a share of the chunk step; docs/benchmarks.md has the figures with
the machine they came from.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import time

import numpy as np
import torch

from npc_runtime.config import preset
from npc_runtime.emotions import DEFAULT_VOCABULARY
from npc_runtime.pipeline import ChunkRequest, PerformanceModel


def median_ms(fn, repeats: int) -> float:
    fn()                                     # warm-up (allocations, oneDNN primitives)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    base = preset("tiny")
    cfg = base.replace(audio=dataclasses.replace(base.audio, mouth_track=True),
                       mouth_edit=dataclasses.replace(base.mouth_edit, enabled=True,
                                                      emotion=True),
                       nod=dataclasses.replace(base.nod, enabled=True),
                       steady=dataclasses.replace(base.steady, enabled=True),
                       expression_edit=dataclasses.replace(base.expression_edit, enabled=True))
    # The reference chunk step runs without the nod track (a random track nods at random).
    model = PerformanceModel.from_config(
        cfg.replace(nod=dataclasses.replace(cfg.nod, enabled=False),
                    steady=dataclasses.replace(cfg.steady, enabled=False),
                    expression_edit=dataclasses.replace(cfg.expression_edit, enabled=False)),
        seed=0)
    lpm, c = PerformanceModel.from_config(cfg, seed=0).lpm.eval(), cfg.stream.chunk_frames
    rng = np.random.default_rng(0)
    refs = rng.integers(0, 256, (1, cfg.frame_size, cfg.frame_size, 3), dtype=np.uint8)
    sid = model.open_session(model.encode_identity(refs))
    n = model.audio_window
    emo = np.tile(DEFAULT_VOCABULARY.tag_vector("happy", 0.5), (c, 1)).astype(np.float32)

    def request() -> ChunkRequest:
        return ChunkRequest(sid, rng.standard_normal(n).astype(np.float32) * 0.1,
                            rng.standard_normal(n).astype(np.float32) * 0.05, emo)

    z = torch.randn(1, c, cfg.vae.latent_channels, cfg.latent_size, cfg.latent_size)
    mouth = torch.rand(1, c, 3)
    weights = torch.from_numpy(emo)[None]
    offsets = torch.full((1, c), 0.4)
    listen = torch.from_numpy(rng.standard_normal((1, n)).astype(np.float32) * 0.05)
    h = torch.zeros(1, 1, cfg.nod.hidden)
    with torch.inference_mode():
        step = median_ms(lambda: model.step([request()]), args.repeats)
        rows = {
            "chunk step (2 steps, commit, mouth editor on speech, decode; no nods, no "
            "expression editor)": step,
            "mouth editor, 4 frames (its 16x16 window)":
                median_ms(lambda: lpm.mouth_edit.frames(z, mouth, weights), args.repeats),
            "nod editor, 4 frames (its 30x24 window)":
                median_ms(lambda: lpm.nod_edit.frames(z, offsets), args.repeats),
            "nod track, one chunk": median_ms(lambda: lpm.nod_track.chunk(listen, h),
                                              args.repeats),
            "steady head's pitch reader, 4 frames":
                median_ms(lambda: lpm.pitch_reader(z.flatten(0, 1)), args.repeats),
            "expression editor, 4 tagged frames (its 18x16 window)":
                median_ms(lambda: lpm.expression_edit.frames(z, weights), args.repeats),
        }
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.threads} threads, median of {args.repeats}")
    for name, ms in rows.items():
        print(f"{name:80s} {ms:7.2f} ms  {100 * ms / step:5.1f} % of the chunk step")


if __name__ == "__main__":
    main()
