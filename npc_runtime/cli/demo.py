"""`npc-runtime demo`: the README's main job, end to end through the real sidecar.

1. Makes a default NPC and its lines from the synthetic world: a reference portrait of an
   evaluation identity, a dialogue line spoken by espeak-ng (SPEAK) and a "player" line in
   another voice (LISTEN).
2. Starts `npc-runtime serve` on 127.0.0.1 (any free port) with the embedded default model.
3. Registers the NPC with `npc-runtime npc add` and streams both lines with emotion cues through
   `npc-runtime play`, which writes the frames received (MP4 or GIF) and a timing report.
4. Stops the sidecar with SIGTERM (graceful drain).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="run the sidecar on a default NPC and save a video",
                              description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("out/demo.mp4"),
                   help="video to write (.mp4 or .gif; default out/demo.mp4)")
    p.add_argument("--seconds", type=float, default=8.0, help="length of the performance")
    p.add_argument("--seed", type=int, default=3, help="world seed of the demo session")
    p.add_argument("--device", default="cpu", help="torch device of the sidecar's model")
    p.set_defaults(func=run)


def make_material(workdir: Path, seconds: float, seed: int) -> dict[str, Path]:
    """A default NPC (reference image) and SPEAK/LISTEN WAVs from the synthetic world."""
    from npc_runtime.world.session import generate_session

    log.info("synthesising the demo NPC and its lines (espeak-ng)")
    session = generate_session(seed, duration_s=seconds, split="eval", n_references=1)
    face = workdir / "npc_face.png"
    Image.fromarray(session.references[0]).save(face)
    speak, listen = workdir / "speak.wav", workdir / "listen.wav"
    sf.write(speak, session.speak_audio, 16_000, subtype="PCM_16")
    sf.write(listen, session.listen_audio, 16_000, subtype="PCM_16")
    return {"face": face, "speak": speak, "listen": listen}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "npc_runtime", *args]


def start_sidecar(data_dir: Path, ready: Path, device: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(_cli("serve", "--port", "0", "--data-dir", str(data_dir),
                                 "--device", device, "--ready-file", str(ready)))
    deadline = time.monotonic() + 180
    while not ready.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"the sidecar exited with code {proc.returncode} while starting")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("the sidecar did not become ready within 180 s")
        time.sleep(0.2)
    info = json.loads(ready.read_text())
    return proc, f"{info.get('address', '127.0.0.1')}:{info['port']}"


def run(args: argparse.Namespace) -> int:
    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="npc_demo_") as tmp:
        work = Path(tmp)
        material = make_material(work, args.seconds, args.seed)
        proc, server = start_sidecar(work / "data", work / "ready.json", args.device)
        try:
            log.info("sidecar at %s; registering the demo NPC", server)
            subprocess.run(_cli("npc", "--server", server, "add", "demo_npc",
                                str(material["face"]), "--name", "Demo NPC"), check=True)
            report = out.with_suffix(".report.json")
            half = args.seconds / 2
            subprocess.run(_cli("play", "--server", server, "--npc", "demo_npc",
                                "--speak", str(material["speak"]),
                                "--listen", str(material["listen"]),
                                "--emotion", f"happy:0.8@{0.5:.1f}~0.4",
                                "--emotion", f"surprised:0.6@{half:.1f}~0.3",
                                "--out", str(out), "--report", str(report)), check=True)
            Image.open(material["face"]).save(out.with_suffix(".reference.png"))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    summary = json.loads(report.read_text())
    log.info("wrote %s (+ %s); %s", out, report.name,
             {k: summary[k] for k in ("frames", "fps", "time_to_first_frame_s") if k in summary})
    return 0
