"""The committed generated code is exactly what scripts/gen_proto.sh produces from proto/."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_regenerating_python_gives_identical_files(tmp_path):
    subprocess.run(["bash", str(REPO / "scripts/gen_proto.sh"), "--python-out", str(tmp_path)],
                   check=True, env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
                   capture_output=True)
    committed = REPO / "npc_runtime/_proto"
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(p.name for p in committed.iterdir()
                           if p.is_file() and not p.name.endswith(".pyc"))
    _, mismatch, errors = filecmp.cmpfiles(tmp_path, committed, names, shallow=False)
    assert not mismatch and not errors, f"stale generated files: {mismatch + errors}; run " \
                                        "scripts/gen_proto.sh"


@pytest.mark.skipif(shutil.which("grpc_cpp_plugin") is None or shutil.which("protoc") is None,
                    reason="C++ gRPC codegen (protobuf-compiler-grpc) not installed")
def test_cpp_generation(tmp_path):
    subprocess.run(["bash", str(REPO / "scripts/gen_proto.sh"), "--no-python", "--cpp-out",
                    str(tmp_path)], check=True, capture_output=True)
    out = tmp_path / "npc_runtime/v1"
    for stem in ("emotion", "npc", "perform", "runtime"):
        assert (out / f"{stem}.pb.h").exists() and (out / f"{stem}.grpc.pb.h").exists()
    assert "class NpcRuntime" in (out / "runtime.grpc.pb.h").read_text()
