"""KV-cache append: write a chunk's keys (or values) for a batch of sessions into their pages.

Triton-tutorial order: the ``@triton.jit`` kernel, the host wrapper ``kv_append`` that
validates and launches, and the PyTorch reference ``kv_append_reference`` beside it (the
model's ``write_pages``, re-exported).

The page bookkeeping stays with the cache manager (``npc_runtime.model.kv_cache``): it decides
which pages the next chunk goes to - a fresh ring slot, or the oldest chunk's pages when the
window is full - and hands them in as flat token slots, ``slot = page * page_size + offset``
(``CacheView.append_slots``). The kernel only moves bytes: token (b, n) of ``values`` goes to
``pages[slot // page_size, slot % page_size]``; slots < 0 are skipped (sessions or tokens that
do not commit this step). Nothing is read back, so one launch per layer and tensor (K, V) costs
exactly one read and one write of the chunk, at memory bandwidth.

Shapes: pages (P, page_size, H, D); slots (B, N) int32/int64; values (B, N, H, D) of the pages'
dtype (the reference's index assignment refuses a mismatch too), any strides with a unit stride
on D.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from npc_runtime.model.attention import write_pages as kv_append_reference

__all__ = ["kv_append", "kv_append_reference"]

# ~4K elements per program: wide enough to vectorise a row of H*D, small enough to keep many
# programs in flight for a single session's 64-token chunk.
ELEMENTS_PER_PROGRAM = 4096
MAX_BLOCK_E = 1024


# ------------------------------------------------------------------------------------- kernel
@triton.jit
def _kv_append_kernel(
    pages_ptr, slots_ptr, values_ptr,
    n_tokens, tokens_per_row, capacity, page_size, head_dim, row_elems,
    stride_page, stride_slot, stride_ph,
    stride_sb, stride_sn,
    stride_vb, stride_vn, stride_vh,
    BLOCK_T: tl.constexpr, BLOCK_E: tl.constexpr,
):
    # Program (pid_t, pid_e) copies BLOCK_T tokens x BLOCK_E of their H*D elements.
    tok = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)              # (BLOCK_T,) = b*N + n
    e = tl.program_id(1) * BLOCK_E + tl.arange(0, BLOCK_E)                # (BLOCK_E,) = h*D + d
    b = (tok // tokens_per_row).to(tl.int64)
    n = (tok % tokens_per_row).to(tl.int64)
    slot = tl.load(slots_ptr + b * stride_sb + n * stride_sn,
                   mask=tok < n_tokens, other=-1).to(tl.int64)
    # slot < 0: nothing to write; slot >= capacity is rejected by the host check and masked
    # here too so an unchecked bad slot can never write outside the pool.
    keep = (slot >= 0) & (slot < capacity)
    h = e // head_dim
    d = e % head_dim
    mask = keep[:, None] & (e < row_elems)[None, :]                       # (BLOCK_T, BLOCK_E)
    src = b[:, None] * stride_vb + n[:, None] * stride_vn + h[None, :] * stride_vh + d[None, :]
    dst = ((slot // page_size) * stride_page + (slot % page_size) * stride_slot)[:, None] \
        + h[None, :] * stride_ph + d[None, :]
    val = tl.load(values_ptr + src, mask=mask)
    tl.store(pages_ptr + dst, val, mask=mask)


# ------------------------------------------------------------------------------ host wrapper
def _validate(pages: torch.Tensor, slots: torch.Tensor, values: torch.Tensor) -> None:
    if pages.dim() != 4:
        raise ValueError(f"pages must be (P, page_size, H, D), got {tuple(pages.shape)}")
    if values.dim() != 4 or values.shape[2:] != pages.shape[2:]:
        raise ValueError(f"values must be (B, N, {pages.shape[2]}, {pages.shape[3]}), got "
                         f"{tuple(values.shape)}")
    if slots.shape != values.shape[:2] or slots.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"slots must be {tuple(values.shape[:2])} int32/int64, got "
                         f"{tuple(slots.shape)} {slots.dtype}")
    if values.dtype != pages.dtype:
        raise ValueError(f"values must have the pages' dtype {pages.dtype}, got {values.dtype}")
    if pages.stride(-1) != 1 or values.stride(-1) != 1:
        raise ValueError("pages and values need unit stride on the head dim")
    if pages.device != values.device or slots.device != values.device:
        raise ValueError("pages, slots and values must be on one device")


def _validate_slots(slots: torch.Tensor, capacity: int) -> None:
    """Every slot is -1-ish or in the pool, and no slot is written twice (one device sync):
    two writers to one slot would leave whichever the hardware ran last."""
    flat = slots.reshape(-1).long()
    used = flat[flat >= 0]
    if bool((used >= capacity).any()):
        raise ValueError(f"slots must be < 0 (skip) or < {capacity} (pages * page_size)")
    if used.numel() != torch.unique(used).numel():
        raise ValueError("a cache slot is written twice in one append")


def kv_append(pages: torch.Tensor, slots: torch.Tensor, values: torch.Tensor, *,
              validate: bool | None = None) -> None:
    """Triton twin of `write_pages` (same arguments, same effect): pages[slots] = values in place.

    validate: check slot bounds and duplicates; costs a device sync, so it defaults to on for
    CPU tensors and off on CUDA (where out-of-pool slots are still masked, never written)."""
    _validate(pages, slots, values)
    num_pages, page_size, h, d = pages.shape
    capacity = num_pages * page_size
    if validate if validate is not None else pages.device.type != "cuda":
        _validate_slots(slots, capacity)
    b, n = slots.shape
    if b * n == 0 or h * d == 0:
        return
    row_elems = h * d
    block_e = min(MAX_BLOCK_E, triton.next_power_of_2(row_elems))
    block_t = max(1, min(ELEMENTS_PER_PROGRAM // block_e, triton.next_power_of_2(b * n)))
    grid = (triton.cdiv(b * n, block_t), triton.cdiv(row_elems, block_e))
    _kv_append_kernel[grid](
        pages, slots, values,
        b * n, n, capacity, page_size, d, row_elems,
        pages.stride(0), pages.stride(1), pages.stride(2),
        slots.stride(0), slots.stride(1),
        values.stride(0), values.stride(1), values.stride(2),
        BLOCK_T=block_t, BLOCK_E=block_e,
    )


# -------------------------------------------------------------------------------- reference
# `kv_append_reference` is the model's `write_pages` (imported above): a flat view of the pool
# indexed by the non-negative slots.
