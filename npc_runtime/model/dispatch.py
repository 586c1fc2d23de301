"""Which implementation runs an attention/cache op: Triton kernels on CUDA, references on CPU.

The switch is the one of `npc_runtime.kernels.dispatch` (NPC_RUNTIME_KERNELS=auto|triton|
reference), so attention, cache append and texture encoding are flipped together.
"""

from __future__ import annotations

from typing import Callable

import torch

from npc_runtime.kernels.dispatch import use_triton


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


def adaln_modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor,
                   eps: float = 1e-6) -> torch.Tensor:
    """LayerNorm (no affine) then x * (1 + scale) + shift: fused kernel on CUDA, else eager."""
    if use_triton(x.device):
        from npc_runtime.kernels.adaln import adaln_modulate as kernel
        return kernel(x, shift, scale, eps=eps)
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), eps=eps) * (1 + scale) + shift
