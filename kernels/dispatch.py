"""One switch for every kernel: Triton on CUDA tensors, the PyTorch reference elsewhere.

``NPC_RUNTIME_KERNELS`` (read on every call, so tests and operators can flip it at run time):
- ``auto`` (default): Triton when the tensor is on a CUDA device and triton is importable;
- ``reference``: always the PyTorch reference (debugging, bisecting a kernel bug);
- ``triton``: always Triton. On CPU tensors this only works under the Triton interpreter
  (``TRITON_INTERPRET=1`` set before triton is imported), which is how the kernels are tested
  on machines without a GPU.

This module imports neither triton nor any kernel, so callers can ask it cheaply and import
the kernel module only when it answers yes (triton is not installed on every platform).
"""

from __future__ import annotations

import enum
import functools
import importlib.util
import os

import torch

ENV_VAR = "NPC_RUNTIME_KERNELS"


class KernelMode(enum.Enum):
    AUTO = "auto"
    REFERENCE = "reference"
    TRITON = "triton"


def kernel_mode() -> KernelMode:
    """The mode ``NPC_RUNTIME_KERNELS`` asks for (``auto`` when unset or empty)."""
    raw = os.environ.get(ENV_VAR, "").strip().lower() or KernelMode.AUTO.value
    try:
        return KernelMode(raw)
    except ValueError:
        known = ", ".join(m.value for m in KernelMode)
        raise ValueError(f"{ENV_VAR}={raw!r} is not one of: {known}") from None


@functools.cache
def triton_available() -> bool:
    """Whether triton can be imported here (it is a Linux x86-64 dependency only)."""
    return importlib.util.find_spec("triton") is not None


def use_triton(device: torch.device | str) -> bool:
    """Whether work on ``device`` should run the Triton kernel rather than the reference.

    Raises RuntimeError when ``triton`` is forced but not installed, ValueError on an unknown
    mode - a forced choice that silently fell back would hide the bug it was set to find.
    """
    mode = kernel_mode()
    if mode is KernelMode.REFERENCE:
        return False
    if mode is KernelMode.TRITON:
        if not triton_available():
            raise RuntimeError(f"{ENV_VAR}=triton but the triton package is not installed")
        return True
    return torch.device(device).type == "cuda" and triton_available()
