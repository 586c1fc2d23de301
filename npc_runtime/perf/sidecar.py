"""A sidecar in its own process, on 127.0.0.1 and an OS-chosen port, for the load tools.

The load tools measure the server as a game would see it, so it runs in a separate process
(its engine thread does not share a GIL with the clients). `Sidecar` writes the server config,
starts `python -m npc_runtime serve --ready-file`, waits for the ready file, and on exit sends
SIGTERM (graceful shutdown) and, if that hangs, SIGKILL. The server log goes to a file; the
NPC store is a fresh directory per start (created here, removed on stop), so runs never see
each other's NPCs.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import yaml

from npc_runtime._proto import runtime_pb2, runtime_pb2_grpc

log = logging.getLogger(__name__)


class SidecarError(RuntimeError):
    pass


class Sidecar:
    def __init__(self, workdir: Path, config: dict[str, Any], name: str = "sidecar",
                 start_timeout_s: float = 300.0, env: dict[str, str] | None = None) -> None:
        self.workdir = Path(workdir)
        self.name = name
        self.config = {"address": "127.0.0.1", "port": 0, **config}
        self._data_dir: str | None = None
        self.start_timeout_s = start_timeout_s
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.metrics_port = 0
        self.log_path = self.workdir / f"{name}.log"

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0

    def start(self) -> "Sidecar":
        self.workdir.mkdir(parents=True, exist_ok=True)
        if "data_dir" not in self.config:
            self._data_dir = tempfile.mkdtemp(prefix=f"{self.name}_data_", dir=self.workdir)
            self.config["data_dir"] = self._data_dir
        cfg_path = self.workdir / f"{self.name}.yaml"
        cfg_path.write_text(yaml.safe_dump(self.config))
        ready = self.workdir / f"{self.name}.ready.json"
        ready.unlink(missing_ok=True)
        # Passive OpenMP waiting: on a CPU shared with a game (or other tenants) spinning
        # worker threads steal the time the step needs (docs/scaling.md); overridable.
        env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ, **(self.env or {})}
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "npc_runtime", "serve", "--config", str(cfg_path),
                 "--ready-file", str(ready)], stdout=logf, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + self.start_timeout_s
        while not ready.exists():
            if self.proc.poll() is not None:
                raise SidecarError(f"{self.name} exited with {self.proc.returncode} during "
                                   f"startup; see {self.log_path}")
            if time.monotonic() > deadline:
                self.stop()
                raise SidecarError(f"{self.name} not ready in {self.start_timeout_s:g} s")
            time.sleep(0.1)
        info = json.loads(ready.read_text())
        self.port, self.metrics_port = int(info["port"]), int(info.get("metrics_port", 0))
        log.info("%s serving on %s (pid %d)", self.name, self.target, self.proc.pid)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_bytes(self) -> int:
        """Resident set size of the server process (Linux /proc)."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def stats(self, include_sessions: bool = False) -> runtime_pb2.ServerStats:
        with grpc.insecure_channel(self.target) as ch:
            return runtime_pb2_grpc.NpcRuntimeStub(ch).GetStats(
                runtime_pb2.GetStatsRequest(include_sessions=include_sessions), timeout=30)

    def stop(self, grace_s: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s; killing it", self.name, grace_s)
                self.proc.kill()
                self.proc.wait(10)
        if self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self.config.pop("data_dir", None)
            self._data_dir = None
        return self.proc.returncode

    def __enter__(self) -> "Sidecar":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
