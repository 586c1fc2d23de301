"""Which implementation runs an attention/cache op: Triton kernels on CUDA, references on CPU.

One switch forces either: the environment variable NPC_RUNTIME_KERNELS=auto|triton|reference
(default auto), or `set_mode()` at run time (tests use it to switch the kernels in).
"""

from __future__ import annotations

import os
from typing import Callable

import torch

_MODES = ("auto", "triton", "reference")
_mode: str | None = None


def set_mode(mode: str | None) -> None:
    """Force 'triton' or 'reference'; 'auto' or None returns to the environment's choice."""
    global _mode
    if mode is not None and mode not in _MODES:
        raise ValueError(f"kernel mode must be one of {_MODES}, got {mode!r}")
    _mode = mode


def mode() -> str:
    m = _mode or os.environ.get("NPC_RUNTIME_KERNELS", "auto")
    if m not in _MODES:
        raise ValueError(f"NPC_RUNTIME_KERNELS must be one of {_MODES}, got {m!r}")
    return m


def use_triton(device: torch.device) -> bool:
    m = mode()
    if m == "reference":
        return False
    if m == "triton":
        return True
    return device.type == "cuda"


def paged_attention_impl(device: torch.device) -> Callable[..., torch.Tensor]:
    if use_triton(device):
        from npc_runtime.kernels.paged_attention import paged_attention as kernel
        return kernel
    from npc_runtime.model.attention import paged_attention_reference
    return paged_attention_reference


def write_pages_impl(device: torch.device) -> Callable[..., None]:
    if use_triton(device):
        from npc_runtime.kernels.kv_append import kv_append as kernel
        return kernel
    from npc_runtime.model.attention import write_pages
    return write_pages
