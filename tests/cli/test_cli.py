"""The CLI against a real sidecar: npc add/list/show/rm and play (GIF + timing report)."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf
from PIL import Image

from npc_runtime.cli import main
from tests.server.helpers import ServerThread, image_bytes


def test_npc_commands_and_play(tmp_path, model, capsys):
    face = tmp_path / "face.png"
    face.write_bytes(image_bytes(90, 70))
    t = np.arange(int(2.2 * 22050)) / 22050
    sf.write(tmp_path / "speak.wav", 0.3 * np.sin(2 * np.pi * 200 * t), 22050)
    sf.write(tmp_path / "listen.wav", 0.2 * np.sin(2 * np.pi * 300 * t[:22050]), 22050)
    with ServerThread(tmp_path / "data", model, warmup_chunks=1) as srv:
        server = ["npc", "--server", srv.target]
        assert main(server + ["add", "smith", str(face), "--name", "Smith", "--emotion",
                              "smug:0.5", "--preset", "smug=happy:0.6,angry:0.2"]) == 0
        assert main(server + ["add", "smith", str(face)]) == 1          # ALREADY_EXISTS
        capsys.readouterr()
        assert main(server + ["list"]) == 0
        assert capsys.readouterr().out.startswith("smith\tSmith\t1 image(s)")
        assert main(server + ["show", "smith"]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown["presets"] == {"smug": {"happy": 0.6000000238418579,
                                             "angry": 0.20000000298023224}}
        out, report = tmp_path / "out.gif", tmp_path / "r.json"
        assert main(["play", "--server", srv.target, "--npc", "smith", "--speak",
                     str(tmp_path / "speak.wav"), "--listen", str(tmp_path / "listen.wav"),
                     "--emotion", "happy:0.8@0.5~0.2", "--out", str(out), "--report",
                     str(report), "--scale", "1"]) == 0
        rep = json.loads(report.read_text())
        assert rep["status"] == "OK" and rep["pts_monotonic"] and rep["pts_aligned"]
        assert rep["frames"] + rep["dropped_frames"] >= rep["expected_frames"] - 1
        assert rep["speaking_frames"] > 0 and rep["listening_frames"] > 0
        assert "EMOTION_APPLIED" in rep["events"] and rep["events"][-1] == "STOPPED"
        with Image.open(out) as gif:
            # (Pillow merges repeated frames, so count distinct ones loosely)
            assert gif.n_frames > 10 and gif.size == (model.frame_size, model.frame_size)
        assert main(server + ["rm", "smith"]) == 0
        assert main(server + ["show", "smith"]) == 1                    # NOT_FOUND
