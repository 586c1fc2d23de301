"""The expression decoder against the plain one, on the same streamed latents.

    .venv/bin/python benchmarks/probe_expression_decoder.py CKPT [--plain npc_runtime/weights/tiny]
        [--select 6 --seconds 40 | --suite dev] [--out out/expr_probe] [--threads 2]

CKPT has an expression decoder (`npc-runtime train expression`); `--plain` is the checkpoint it
was trained from. The decoder never feeds the DiT and the encoder is bit-identical, so both
stream the same latents: each case is streamed once (CKPT's `step_latents`, the real streaming
path) and decoded three ways, (a) by the plain checkpoint's decoder (what it streams), (b) by the
expression decoder with no tag (neutral) and (c) with the requests' tags (what CKPT streams).
Also the truth's VAE round trip through both decoders (the ceiling each can reach). Printed per
performer: the bench's emotion, lip sync, identity, quiet-mouth and FPD aggregates, and the
strong windows' confusions. Choose on selection cases (world indices 106..) or `dev`, report
with `train bench` on `full` (docs/training.md, "Session 21").
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from npc_runtime.bench.probes import Probe
from npc_runtime.bench.report import run_quality
from npc_runtime.pipeline import ChunkRequest, PerformanceModel, slice_audio
from npc_runtime.train.data import to_uint8
from npc_runtime.train.flow import load_lpm
from npc_runtime.train.performers import VAERoundTripPerformer, _emotion

from sweep_emotion_gain import confusion_line, selection_cases

SHOWN = ("emotion_accuracy_strong", "emotion_accuracy", "emotion_corr", "lip_sync_corr",
         "identity_csim", "quiet_mouth_open", "fpd")


class _Streams:
    """Streams a case once and keeps its frames decoded the three ways."""

    def __init__(self, checkpoint: str, plain: str, n_refs: int = 4, seed: int = 0) -> None:
        self.model = PerformanceModel.from_checkpoint(checkpoint)
        self.plain_vae = load_lpm(plain, causal=True)[0].vae.eval()
        self.n_refs, self.seed = n_refs, seed
        self.frames: dict[str, dict[str, np.ndarray]] = {}

    @torch.inference_mode()
    def get(self, case, way: str) -> np.ndarray:
        if case.name not in self.frames:
            m, c = self.model, self.model.chunk_frames
            n_chunks = -(-case.num_frames // c)
            emotion = _emotion(case, n_chunks * c)
            sid = m.open_session(m.encode_identity(case.references[:self.n_refs]), self.seed)
            out: dict[str, list] = {"plain": [], "neutral": [], "tagged": []}
            for k in range(n_chunks):
                start, end = m.audio_span(k)
                em = emotion[k * c:(k + 1) * c]
                z = m.step_latents([ChunkRequest(sid, slice_audio(case.speak_audio, start, end),
                                                 slice_audio(case.listen_audio, start, end),
                                                 em)])[0]
                out["plain"].append(to_uint8(self.plain_vae.decode(z)))
                out["neutral"].append(m.decode(z[None])[0])
                out["tagged"].append(m.decode(z[None], torch.from_numpy(em)[None])[0])
            m.close_session(sid)
            self.frames[case.name] = {k: np.concatenate(v)[:case.num_frames]
                                      for k, v in out.items()}
        return self.frames[case.name][way]


class _Way:
    def __init__(self, streams: _Streams, way: str) -> None:
        self.streams, self.way, self.name = streams, way, f"stream_{way}"
        self.settings = {"decoded": way}

    def perform(self, case):
        frames = self.streams.get(case, self.way)
        for a in range(0, len(frames), 4):
            yield frames[a:a + 4]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--plain", default="npc_runtime/weights/tiny")
    ap.add_argument("--suite", default="dev")
    ap.add_argument("--select", type=int, default=0,
                    help="instead of a suite: N selection cases (world indices 106..)")
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--out", default="out/expr_probe")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cases, args.suite = selection_cases(args.suite, args.select, args.seconds)
    streams = _Streams(args.checkpoint, args.plain)
    performers = [VAERoundTripPerformer(args.plain, name="roundtrip_plain"),
                  VAERoundTripPerformer(args.checkpoint, name="roundtrip_expression")]
    performers += [_Way(streams, w) for w in ("plain", "neutral", "tagged")]
    probe = Probe.load()
    report = run_quality(performers, cases, Path(args.out), probe, suite=args.suite,
                         videos=False)
    print(f"suite {args.suite} ({len(cases)} cases), {args.checkpoint} against {args.plain}")
    print("performer             " + "  ".join(SHOWN))
    for p in performers:
        agg = report["performers"][p.name]["aggregate"]
        print(p.name.ljust(22) + "  ".join(f"{agg[k]:.3f}" for k in SHOWN))
    for p in performers[2:]:
        print(confusion_line(p.name, lambda case: streams.get(case, p.way), cases, probe))


if __name__ == "__main__":
    main()
