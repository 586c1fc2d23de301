"""The kernels compile for Hopper (sm_90) and Ampere (sm_80) - checked here without a GPU.

Runs tests/kernels/aot_compile.py in a fresh process without TRITON_INTERPRET (in this process
the kernels are interpreter functions, which cannot be compiled). Asserts what a GPU run relies
on: attention on tensor cores (wgmma on sm_90, mma.sync on sm_80) and no register spills
(no local memory) at the block sizes the host wrappers launch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")
ROOT = Path(__file__).resolve().parents[2]


def test_kernels_compile_for_sm90_and_sm80_without_spills():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    run = subprocess.run([sys.executable, "-m", "tests.kernels.aot_compile"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    results = {(r["name"], r["arch"]): r for r in map(json.loads, run.stdout.splitlines())}
    assert len(results) == 6
    for (name, arch), r in results.items():
        assert r["cubin"] > 0 and r["local"] == 0, r
        if name.startswith("paged_attention"):
            assert (r["wgmma"] if arch == 90 else r["mma_sync"]) > 0, r
