"""Where does an editor checkpoint's nod count differ from its plain student's? Bench cases, probe pitch.

    .venv/bin/python benchmarks/probe_editor_nods.py EDITOR [--plain CKPT] [--kind mouth|nod|steady]
        [--cases world-002 world-004 world-007]

Streams each full-suite case through the editor checkpoint and a plain one exactly as
`npc-runtime train bench` does (same performer, seed and probe); the plain stream is by default
the editor checkpoint with its editor taken out (with `commit_edited: false` the DiT then runs
exactly as it does under the editor; e.g. the default `npc_runtime/weights/tiny`), or --plain's
checkpoint (e.g. git `bd15261:npc_runtime/weights/tiny`, the student before an editor). It prints the probe's head-pitch difference (editor -
plain) while the NPC speaks and, as a maximum, where it does not (the bench's quiet frames: 0.4 s
away from its speech), then each checkpoint's nods (the bench's own detector, `events`) with the
ones that fall in the bench's silence and how many frames each lies from the nearest speech
frame. With a speech-gated editor (`mouth_edit.gate_rms`) and the DiT's own sample committed
(`commit_edited: false`), quiet frames are the plain student's bit for bit, so any nod that
differs there was moved by edited frames within reach of the detector's 1.5 s high-pass and its
prominence bases. docs/training.md, "Session 17". ~1 minute a case and checkpoint, 1 thread.

`--kind nod` compares a checkpoint with listening nods (`npc-runtime train nod`) against itself
without them (the nod editor is never committed to the cache, so the DiT runs alike): the
nods then differ in listening, by design, and in silence only through the detector's reach
(docs/training.md, "Session 19").

`--kind steady` compares a checkpoint with a steady head (`npc-runtime train steady`) against
itself without its pitch reader (nods still on): only quiet frames may differ. Each performer's
line also gives the case's strong-emotion windows read correctly (the bench's
`emotion_scores`), since head pitch is one of the expression parameters the bench decodes
(docs/training.md, "Session 20").
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from npc_runtime.bench import metrics as M
from npc_runtime.bench.cases import build_suite
from npc_runtime.bench.probes import Probe
from npc_runtime.bench.runner import observe
from npc_runtime.train.performers import OnlineLPMPerformer
from npc_runtime.world.performance import P

FPS = 25.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("editor")
    ap.add_argument("--plain", help="plain checkpoint (default: EDITOR without its editor)")
    ap.add_argument("--kind", choices=("mouth", "nod", "steady"), default="mouth",
                    help="which editor to take out for the plain stream")
    ap.add_argument("--cases", nargs="+", default=["world-002", "world-004", "world-007"])
    args = ap.parse_args()
    torch.set_num_threads(1)
    cases = {c.name: c for c in build_suite("full", long_stream_s=1.0)}
    unknown = sorted(set(args.cases) - set(cases))
    if unknown:
        raise SystemExit(f"not full-suite cases: {unknown} (known: {sorted(cases)})")
    probe = Probe.load()
    editor = OnlineLPMPerformer(args.editor)
    if args.kind == "nod" and editor.model.lpm.nod_track is None:
        raise SystemExit(f"{args.editor} has no listening nods (`npc-runtime train nod`)")
    if args.kind == "steady" and editor.model.lpm.pitch_reader is None:
        raise SystemExit(f"{args.editor} has no steady head (`npc-runtime train steady`)")
    if args.kind == "mouth" and editor.model.lpm.mouth_edit is None:
        raise SystemExit(f"{args.editor} has no mouth editor (`npc-runtime train editor`)")
    if args.plain:
        plain = OnlineLPMPerformer(args.plain)
    elif args.kind == "nod":
        plain = OnlineLPMPerformer(args.editor)
        plain.model.lpm.nod_track = None        # PerformanceModel.nod then passes frames on
    elif args.kind == "steady":
        plain = OnlineLPMPerformer(args.editor)
        plain.model.lpm.pitch_reader = None     # nods only
    elif editor.model.cfg.mouth_edit.commit_edited:
        raise SystemExit("its editor commits edited chunks (commit_edited): without the editor "
                         "the DiT would run differently; pass --plain")
    else:
        plain = OnlineLPMPerformer(args.editor)
        plain.model.lpm.mouth_edit = None       # edit_mouth then returns the DiT's own sample
    performers = {"plain": plain, "editor": editor}
    for name in args.cases:
        case = cases[name]
        perf = {k: observe(p, case, probe).perf_hat for k, p in performers.items()}
        pitch = {k: v[:, P["head_pitch"]] for k, v in perf.items()}
        speaking = case.speaking
        quiet = ~M.dilate(speaking, int(0.4 * FPS))
        silence = quiet & ~M.dilate(case.listening, int(1.0 * FPS))
        d = pitch["editor"] - pitch["plain"]
        print(f"{name}: head pitch editor - plain while speaking: mean {d[speaking].mean():+.4f}, "
              f"mean |.| {np.abs(d[speaking]).mean():.4f}; quiet frames: max |.| "
              f"{np.abs(d[quiet]).max():.5f}")
        speech = np.flatnonzero(speaking)
        listen = case.listening & quiet
        for k in performers:
            nods = M.events(pitch[k], FPS, prominence=0.2, highpass_s=1.5)
            in_silence = [int(n) for n in nods if silence[n]]
            away = [int(np.abs(speech - n).min()) for n in in_silence] if len(speech) else []
            emo = M.emotion_scores(perf[k], case.emotion, FPS)
            print(f"  {k:6s} {len(nods)} nods, {int(listen[nods].sum())} while the partner "
                  f"speaks; in silence at frames {in_silence} ({away} frames from speech); "
                  f"emotion {emo['emotion_strong_correct']}/{emo['emotion_strong_windows']}")


if __name__ == "__main__":
    main()
