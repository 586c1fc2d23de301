"""The engine bridges end to end: the native core (C++), its C ABI from Mono (C#), reconnect, and
bad use under AddressSanitizer/LeakSanitizer, each against a real sidecar on 127.0.0.1.

The core is built once per session with CMake into bridge_core/build-test (kept between runs, so
only the first run compiles). The C++ and C# programs do the checking themselves (they are what
an engine links); this module starts and kills the sidecar, makes the test media (espeak-ng
speech, a face PNG), and checks what the programs report, including decoding their BC1 frames
with an independent decoder (texture2ddecoder).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "bridge_core"
BUILD = CORE / "build-test"
SERVER_READY_TIMEOUT_S = 120
BUILD_TIMEOUT_S = 900


# The sanitizer variant fails the process (exit 66) on any memory error or leak at exit.
ASAN_ENV = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:exitcode=66")


def _run(cmd: list[str], timeout: float, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def _result(stdout: str) -> dict:
    """The program's one 'RESULT {json}' line; a 'FAIL reason' line fails the test with it."""
    for line in stdout.splitlines():
        if line.startswith("FAIL "):
            pytest.fail(line)
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    pytest.fail(f"no RESULT line in:\n{stdout[-4000:]}")


# ---- build ---------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def build() -> Path:
    for tool in ("cmake", "protoc", "grpc_cpp_plugin", "mcs", "mono"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found: run scripts/setup.sh (it installs the bridge toolchain)")
    configure = ["cmake", "-S", str(CORE), "-B", str(BUILD), "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
                 "-DNPC_BRIDGE_ASAN=ON", "-DNPC_BRIDGE_CSHARP=ON"]
    for cmd in (configure, ["cmake", "--build", str(BUILD), "-j2"]):
        r = _run(cmd, BUILD_TIMEOUT_S)
        assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout[-6000:]}\n{r.stderr[-6000:]}"
    return BUILD


# ---- media and sidecar -------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    """Two spoken lines (22.05 kHz, so the bridge's resampler is exercised) and a face image."""
    d = tmp_path_factory.mktemp("bridge_media")
    lines = {"speak": "Welcome, traveller. The forge is hot and my hammer is ready.",
             "listen": "I need a sword that can cut through dragon scales."}
    for name, text in lines.items():
        subprocess.run(["espeak-ng", "-w", str(d / f"{name}.wav"), text], check=True)
    from PIL import Image, ImageDraw
    im = Image.new("RGB", (128, 128), (90, 120, 160))
    draw = ImageDraw.Draw(im)
    draw.ellipse((24, 16, 104, 112), fill=(224, 180, 150))
    draw.ellipse((44, 50, 56, 60), fill=(40, 30, 20))
    draw.ellipse((72, 50, 84, 60), fill=(40, 30, 20))
    draw.arc((48, 72, 80, 92), 0, 180, fill=(120, 40, 40), width=3)
    im.save(d / "face.png")
    return {"speak": d / "speak.wav", "listen": d / "listen.wav", "image": d / "face.png",
            "dir": d}


class Sidecar:
    """`npc-runtime serve` as a child process on 127.0.0.1 (a real server, nothing mocked)."""

    def __init__(self, data_dir: Path, log: Path, config: Path | None = None) -> None:
        self.data_dir, self.log_path, self.config = data_dir, log, config
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self, port: int = 0) -> None:
        ready = self.data_dir.parent / f"{self.data_dir.name}.ready.json"
        ready.unlink(missing_ok=True)
        exe = ROOT / ".venv" / "bin" / "npc-runtime"
        cmd = [str(exe) if exe.exists() else "npc-runtime", "serve", "--address", "127.0.0.1",
               "--port", str(port), "--data-dir", str(self.data_dir), "--ready-file", str(ready)]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        log.close()
        deadline = time.monotonic() + SERVER_READY_TIMEOUT_S
        while not ready.exists():
            if self.proc.poll() is not None:
                pytest.fail(f"sidecar exited ({self.proc.returncode}):\n{self.log()}")
            if time.monotonic() > deadline:
                pytest.fail(f"sidecar not ready in {SERVER_READY_TIMEOUT_S} s:\n{self.log()}")
            time.sleep(0.05)
        time.sleep(0.01)   # the file is written whole, but be safe against a reader racing it
        self.port = json.loads(ready.read_text())["port"]

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL: no goodbye to the clients, exactly like a crash."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)

    def log(self) -> str:
        return self.log_path.read_text()[-6000:] if self.log_path.exists() else ""


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory):
    d = tmp_path_factory.mktemp("sidecar")
    server = Sidecar(d / "data", d / "server.log")
    server.start()
    yield server
    server.stop()


def _free_dead_port() -> int:
    """A loopback port with nothing listening (for 'server absent at start')."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _check_bc1_frames(dump: Path, width: int, height: int) -> None:
    """Decode the dumped payloads with an independent BC1 decoder: right size, a real image."""
    import texture2ddecoder
    files = sorted(dump.glob("frame_*.bc1"))
    assert len(files) == 3
    for f in files:
        data = f.read_bytes()
        assert len(data) == (width // 4) * (height // 4) * 8
        rgba = np.frombuffer(texture2ddecoder.decode_bc1(data, width, height), np.uint8)
        assert rgba.size == width * height * 4
        rgb = rgba.reshape(height, width, 4)[..., :3].astype(np.float32)
        assert rgb.std() > 2.0, f"{f.name} decodes to a flat image"


# ---- the tests ---------------------------------------------------------------------------------------

def test_cpp_flow_receives_bc1_frames_on_the_audio_timeline(build, media, sidecar, tmp_path):
    """C++ API: register an NPC, stream a SPEAK and a LISTEN WAV with emotion cues and a line
    marker; >= 100 BC1 frames, pts on the frame grid, speaking/listening where the audio is."""
    r = _run([str(build / "npc_bridge_test"), "flow", "--target", sidecar.target,
              "--speak", str(media["speak"]), "--listen", str(media["listen"]),
              "--image", str(media["image"]), "--dump", str(tmp_path)], 180)
    res = _result(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    assert res["frames"] >= 100
    assert res["payload_bytes"] == (res["width"] // 4) * (res["height"] // 4) * 8
    assert res["speaking_frames"] > 10 and res["listening_frames"] > 10
    _check_bc1_frames(tmp_path, res["width"], res["height"])


def test_csharp_flow_through_the_c_abi_on_mono(build, media, sidecar, tmp_path):
    """The plain C# client (what the Unity package uses) compiled by mcs, run by mono."""
    exe = build / "BridgeFlowTest.exe"
    assert exe.exists(), "mcs did not build the C# test"
    env = dict(os.environ, LD_LIBRARY_PATH=f"{build}:{os.environ.get('LD_LIBRARY_PATH', '')}")
    r = _run(["mono", "--debug", str(exe), "--target", sidecar.target,
              "--speak", str(media["speak"]), "--listen", str(media["listen"]),
              "--image", str(media["image"]), "--dump", str(tmp_path)], 180, env=env,
             cwd=build)
    res = _result(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    assert res["frames"] >= 100
    assert res["speaking_frames"] > 10 and res["listening_frames"] > 10
    _check_bc1_frames(tmp_path, res["width"], res["height"])


def test_bad_use_is_safe_under_address_sanitizer(build, media, sidecar):
    """Calls after shutdown, NULL/oversized buffers, unknown NPC, server absent at start: clear
    codes, no crash; ASan/LSan report no memory error and no leak (the canary proves LSan is on)."""
    env = ASAN_ENV
    canary = _run([str(build / "npc_bridge_test_asan"), "leak-canary"], 60, env=env)
    assert canary.returncode == 66 and "LeakSanitizer" in canary.stderr, canary.stderr[-2000:]
    for mode, extra in (("baduse", ["--dead-target", f"127.0.0.1:{_free_dead_port()}"]),
                        ("flow", ["--speak", str(media["speak"]), "--listen",
                                  str(media["listen"]), "--dump", str(media["dir"])])):
        r = _run([str(build / "npc_bridge_test_asan"), mode, "--target", sidecar.target,
                  "--image", str(media["image"]), *extra], 240, env=env)
        assert "Sanitizer" not in r.stderr, r.stderr[-6000:]
        _result(r.stdout)
        assert r.returncode == 0, r.stdout + r.stderr[-4000:]


def test_reconnect_after_sigkill_resumes_frames_within_2s(build, media, tmp_path):
    """The sidecar is SIGKILLed mid-stream and restarted on the same port; the performer
    reconnects on its own (the 'engine' keeps pushing audio and popping frames, nothing else)
    and the new stream's first frame arrives < 2 s after the server is back. Runs the ASan/LSan
    build: stream teardown, cancellation and reopening are where memory bugs would hide."""
    server = Sidecar(tmp_path / "data", tmp_path / "server.log")
    server.start()
    port = server.port
    proc = subprocess.Popen([str(build / "npc_bridge_test_asan"), "reconnect", "--target",
                             server.target, "--speak", str(media["speak"]),
                             "--image", str(media["image"])],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ASAN_ENV)
    out: list[str] = []
    try:
        for line in proc.stdout:
            out.append(line)
            if line.strip() == "KILL_ME":
                killed_at = time.monotonic()
                server.kill()
                server.start(port)   # same port: the bridge's target does not change
                down_s = time.monotonic() - killed_at
                proc.stdin.write("RESTARTED\n")
                proc.stdin.flush()
            if line.startswith(("RESULT", "FAIL")):
                break
        out.append(proc.stdout.read())
        stderr = proc.stderr.read()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.stop()
    stdout = "".join(out)
    res = _result(stdout)
    assert "Sanitizer" not in stderr, stderr[-6000:]
    assert proc.returncode == 0, stdout + stderr[-4000:] + server.log()
    assert res["reconnects"] >= 1
    assert res["resume_ms"] < 2000, res
    sys.stderr.write(f"\n[bridge] sidecar down {down_s:.1f} s; stream reopened "
                     f"{res['stream_reopened_ms']:.0f} ms and frames resumed "
                     f"{res['resume_ms']:.0f} ms after the restart\n")


def test_line_after_long_silence_is_accepted(build, media, tmp_path):
    """The server refuses audio more than max_audio_gap after a channel's last chunk; the bridge
    keeps idle channels alive with short silences. With the gap at 2 s, a line pushed after 5 s
    of silence must still be rendered (without the keep-alive the stream fails)."""
    config = tmp_path / "gap.yaml"
    config.write_text("limits: {max_audio_gap_s: 2.0}\n")
    server = Sidecar(tmp_path / "data", tmp_path / "server.log", config)
    server.start()
    try:
        r = _run([str(build / "npc_bridge_test_asan"), "idle", "--target", server.target,
                  "--speak", str(media["speak"]), "--image", str(media["image"])], 120,
                 env=ASAN_ENV)
    finally:
        server.stop()
    assert "Sanitizer" not in r.stderr, r.stderr[-6000:]
    res = _result(r.stdout)
    assert r.returncode == 0, r.stdout + server.log()
    assert res["speaking_after_idle"] > 10


def test_cmake_wire_code_matches_gen_proto_script(build, tmp_path):
    """proto/ stays the single source: the C++ CMake generates equals scripts/gen_proto.sh's."""
    r = _run(["bash", str(ROOT / "scripts" / "gen_proto.sh"), "--no-python", "--cpp-out",
              str(tmp_path)], 120)
    assert r.returncode == 0, r.stderr
    ours = sorted((build / "gen").rglob("*.pb.*"))
    assert len(ours) == 16
    for f in ours:
        rel = f.relative_to(build / "gen")
        assert (tmp_path / rel).read_bytes() == f.read_bytes(), rel
