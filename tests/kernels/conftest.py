"""Kernel tests run compiled on a CUDA GPU when there is one, else in the Triton interpreter.

When the interpreter is chosen matters. ``@triton.jit`` reads ``TRITON_INTERPRET`` when it
decorates a function, and triton's own standard library (``tl.zeros``, ``tl.sum``, ``tl.max``,
... are ``@jit`` functions) is decorated when ``triton`` is first imported. So the variable must
be set before the first ``import triton`` of the process; set later, our kernels become
interpreter functions that call compiled-mode library functions and fail (triton 3.9, checked).

This conftest is imported while pytest collects ``tests/kernels``, before any module of this
folder, and:

1. sets ``TRITON_INTERPRET=1`` on machines without CUDA (``setdefault``: an explicit choice in
   the environment wins; the BC1 test module does the same). With ``pytest tests`` nothing has
   imported triton yet (folders are collected in order and nothing before ``kernels`` does;
   ``import torch`` does not import triton), so the tests run in this process.
2. if triton *was* already imported in compiled mode (another folder collected first, a plugin,
   ``pytest tests/x tests/kernels``), the interpreter cannot be switched on in this process any
   more: every test of this folder is then run in one fresh ``pytest`` subprocess with
   ``TRITON_INTERPRET=1`` (started by the first of them), and each test here reports the
   outcome its twin had there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def _triton_imported_compiled() -> bool:
    """True when triton's library was decorated before TRITON_INTERPRET was set."""
    if "triton" not in sys.modules:
        return False
    import triton.language as tl
    from triton.runtime.interpreter import InterpretedFunction
    return not isinstance(tl.zeros, InterpretedFunction)


NEEDS_SUBPROCESS = os.environ.get("TRITON_INTERPRET") == "1" and _triton_imported_compiled()


class _SubprocessRun:
    """One pytest run of this folder's selected tests, in a fresh interpreter-mode process."""

    def __init__(self, nodeids: list[str]) -> None:
        self.nodeids = nodeids
        self.outcomes: dict[tuple[str, str], tuple[str, str]] | None = None

    def outcome(self, item: pytest.Item) -> tuple[str, str]:
        if self.outcomes is None:
            self.outcomes = self._run()
        key = (Path(item.fspath).stem, item.name)
        return self.outcomes.get(key, ("failed", "test did not run in the interpreter subprocess"))

    def _run(self) -> dict[tuple[str, str], tuple[str, str]]:
        report = Path(tempfile.mkdtemp(prefix="kernels-interpreter-")) / "report.xml"
        env = {**os.environ, "TRITON_INTERPRET": "1"}
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               f"--junit-xml={report}", *self.nodeids],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
        outcomes = {}
        try:
            if not report.exists():            # pytest itself failed: show why, for every test
                detail = (proc.stdout + proc.stderr)[-4000:]
                return {(Path(n.split("::")[0]).stem, n.split("::")[-1]): ("failed", detail)
                        for n in self.nodeids}
            for case in ET.parse(report).iter("testcase"):
                key = (case.get("classname", "").split(".")[-1], case.get("name", ""))
                bad = case.find("failure") if case.find("failure") is not None \
                    else case.find("error")
                skipped = case.find("skipped")
                if bad is not None:
                    outcomes[key] = ("failed", (bad.text or bad.get("message", ""))[-4000:])
                elif skipped is not None:
                    outcomes[key] = ("skipped", skipped.get("message", ""))
                else:
                    outcomes[key] = ("passed", "")
        finally:
            report.unlink(missing_ok=True)
            report.parent.rmdir()
        return outcomes


def pytest_collection_modifyitems(config, items):
    if not NEEDS_SUBPROCESS:
        return
    mine = [item for item in items if HERE in Path(item.fspath).resolve().parents]
    run = _SubprocessRun([item.nodeid for item in mine])
    for item in mine:
        def runtest(item=item):
            status, detail = run.outcome(item)
            if status == "skipped":
                pytest.skip(detail)
            if status == "failed":
                pytest.fail(f"[in the TRITON_INTERPRET=1 subprocess]\n{detail}", pytrace=False)
        item.runtest = runtest
