"""Paged block-causal attention of the Online LPM: the current chunk of every session in a batch
attends to its own paged KV cache ([identity sink | rolling window]) and bidirectionally to
itself, in one launch, FlashAttention-2 style (online softmax, fp32 accumulation).

Triton-tutorial order: the ``@triton.jit`` kernel (with its online-softmax step), the host
wrapper ``paged_attention`` that validates inputs, picks block sizes and builds the grid, and the
PyTorch reference ``paged_attention_reference`` beside it (the model's own, re-exported).

Layout (the model's, see ``npc_runtime.model.attention``):
- q, k_new, v_new  (B, N, H, D)  the current chunk; any strides with unit stride on D;
- k_pages, v_pages (P, page_size, H, D) one layer of the pool; unit stride on D;
- page_table (B, max_pages) int32, -1 = unused; cache_lens (B,) valid cached tokens, filled in
  table order: cached token t of session b is slot t % page_size of page
  page_table[b, t // page_size]. Keys are stored already RoPE-rotated, so no positions here.

Why this shape of kernel: one program owns BLOCK_M queries of one (session, head) and streams
over that session's cached tokens BLOCK_N at a time, translating token -> physical page through
the table per token (as vLLM's Triton paged attention does), so any page size works (4 tokens in
the micro test model, 64 in ``tiny``) and a key block may span pages. Then it streams over the
chunk's own keys. Sessions of different lengths share the launch; a session at length 0 simply
skips the first loop. Loads of tokens past a session's length, of -1 table entries and of pages
out of the pool's range are masked (memory-safe even when the table is not validated); masked
loads return 0 and masked scores are -inf, so garbage (even NaN) in pages a session does not
own can never reach its output.

Precision: scores and the softmax run in fp32; P is cast to V's dtype for the second matmul
(as FlashAttention does). fp32 inputs use TF32 tensor cores on GPU only when PyTorch's own
``torch.get_float32_matmul_precision()`` allows it ("high"/"medium"), IEEE fp32 otherwise; the
Triton interpreter (CPU tests) computes ``tl.dot`` with numpy in fp32.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from npc_runtime.model.attention import paged_attention_reference

__all__ = ["paged_attention", "paged_attention_reference"]

LOG2E = 1.4426950408889634        # softmax in base 2: exp(x) = exp2(x * log2(e)), exp2 is native
SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
MIN_DOT = 16                       # tl.dot needs every dimension >= 16


# ------------------------------------------------------------------------------------- kernel
@triton.jit
def _online_softmax_step(q, k_t, v, valid, m_i, l_i, acc, qk_scale,
                         INPUT_PRECISION: tl.constexpr):
    """Fold one key block into the running softmax state (FlashAttention-2, base 2).

    q (BLOCK_M, BLOCK_D), k_t (BLOCK_D, BLOCK_N), v (BLOCK_N, BLOCK_D), valid (BLOCK_N,);
    m_i/l_i (BLOCK_M,) running max / denominator, acc (BLOCK_M, BLOCK_D) fp32 numerator.
    Every block holds at least one valid key, so m_new is finite and masked p are exactly 0."""
    s = tl.dot(q, k_t, input_precision=INPUT_PRECISION) * qk_scale        # (BLOCK_M, BLOCK_N)
    s = tl.where(valid[None, :], s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, 1))
    alpha = tl.math.exp2(m_i - m_new)                                      # 0 on the first block
    p = tl.math.exp2(s - m_new[:, None])
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None], input_precision=INPUT_PRECISION)
    return m_new, l_i, acc


@triton.jit
def _paged_attention_kernel(
    q_ptr, k_new_ptr, v_new_ptr, k_pages_ptr, v_pages_ptr, table_ptr, lens_ptr, out_ptr,
    stride_qb, stride_qn, stride_qh,
    stride_kb, stride_kn, stride_kh,
    stride_vb, stride_vn, stride_vh,
    stride_ob, stride_on, stride_oh,
    stride_page, stride_slot, stride_ph,          # k_pages and v_pages share strides
    stride_tb,
    n_new, head_dim, num_pages, max_pages, qk_scale,
    PAGE_SIZE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
):
    # Query blocks of one (session, head) run next to each other (axis 0 is the fastest), so
    # the session's K/V pages are read from L2 after the first of them.
    pid_m = tl.program_id(0)
    h = tl.program_id(1).to(tl.int64)
    b = tl.program_id(2).to(tl.int64)

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < head_dim                       # head dims that are not a power of two
    m_ok = offs_m < n_new                          # the chunk's tail query block

    q = tl.load(q_ptr + b * stride_qb + h * stride_qh
                + offs_m[:, None] * stride_qn + offs_d[None, :],
                mask=m_ok[:, None] & d_ok[None, :], other=0.0)              # (BLOCK_M, BLOCK_D)

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)

    # 1) the session's cache: sink + window pages, through the page table.
    cache_len = tl.load(lens_ptr + b)
    for start in range(0, cache_len, BLOCK_N):
        tok = start + offs_n                                               # (BLOCK_N,)
        logical = tok // PAGE_SIZE
        in_len = (tok < cache_len) & (logical < max_pages)
        page = tl.load(table_ptr + b * stride_tb + logical, mask=in_len, other=-1)
        valid = in_len & (page >= 0) & (page < num_pages)
        row = page.to(tl.int64) * stride_page + (tok % PAGE_SIZE) * stride_slot + h * stride_ph
        k_t = tl.load(k_pages_ptr + row[None, :] + offs_d[:, None],
                      mask=d_ok[:, None] & valid[None, :], other=0.0)      # (BLOCK_D, BLOCK_N)
        v = tl.load(v_pages_ptr + row[:, None] + offs_d[None, :],
                    mask=valid[:, None] & d_ok[None, :], other=0.0)        # (BLOCK_N, BLOCK_D)
        m_i, l_i, acc = _online_softmax_step(q, k_t, v, valid, m_i, l_i, acc, qk_scale,
                                             INPUT_PRECISION)

    # 2) the chunk itself, bidirectionally (it is not in the cache until the commit pass).
    for start in range(0, n_new, BLOCK_N):
        tok = start + offs_n
        valid = tok < n_new
        k_t = tl.load(k_new_ptr + b * stride_kb + h * stride_kh
                      + tok[None, :] * stride_kn + offs_d[:, None],
                      mask=d_ok[:, None] & valid[None, :], other=0.0)      # (BLOCK_D, BLOCK_N)
        v = tl.load(v_new_ptr + b * stride_vb + h * stride_vh
                    + tok[:, None] * stride_vn + offs_d[None, :],
                    mask=valid[:, None] & d_ok[None, :], other=0.0)        # (BLOCK_N, BLOCK_D)
        m_i, l_i, acc = _online_softmax_step(q, k_t, v, valid, m_i, l_i, acc, qk_scale,
                                             INPUT_PRECISION)

    # Every query saw >= 1 key (its own chunk), so l_i > 0; padded query rows are not stored.
    out = acc / l_i[:, None]
    tl.store(out_ptr + b * stride_ob + h * stride_oh
             + offs_m[:, None] * stride_on + offs_d[None, :],
             out.to(out_ptr.dtype.element_ty), mask=m_ok[:, None] & d_ok[None, :])


# ------------------------------------------------------------------------------ host wrapper
def _validate(q, k_new, v_new, k_pages, v_pages, page_table, cache_lens) -> None:
    if q.dim() != 4 or k_new.shape != q.shape or v_new.shape != q.shape:
        raise ValueError(f"q, k_new, v_new must share a (B, N, H, D) shape, got "
                         f"{tuple(q.shape)}, {tuple(k_new.shape)}, {tuple(v_new.shape)}")
    b, _, h, d = q.shape
    if k_pages.dim() != 4 or v_pages.shape != k_pages.shape or k_pages.shape[2:] != (h, d):
        raise ValueError(f"k_pages, v_pages must be (P, page_size, {h}, {d}), got "
                         f"{tuple(k_pages.shape)}, {tuple(v_pages.shape)}")
    tensors = (q, k_new, v_new, k_pages, v_pages)
    if q.dtype not in SUPPORTED_DTYPES or any(t.dtype != q.dtype for t in tensors):
        raise ValueError(f"q, k, v and the pages must share one dtype of {SUPPORTED_DTYPES}, got "
                         f"{[t.dtype for t in tensors]}")
    if any(t.stride(-1) != 1 for t in tensors):
        raise ValueError("q, k_new, v_new, k_pages, v_pages need unit stride on the head dim")
    if k_pages.stride() != v_pages.stride():
        raise ValueError("k_pages and v_pages must have the same strides (one pool layout)")
    if page_table.dim() != 2 or page_table.shape[0] != b or page_table.dtype != torch.int32:
        raise ValueError(f"page_table must be ({b}, max_pages) int32, got "
                         f"{tuple(page_table.shape)} {page_table.dtype}")
    if cache_lens.shape != (b,) or cache_lens.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"cache_lens must be ({b},) int32/int64, got "
                         f"{tuple(cache_lens.shape)} {cache_lens.dtype}")
    if any(t.device != q.device for t in (*tensors, page_table, cache_lens)):
        raise ValueError("all inputs must be on one device")


def _validate_tables(page_table: torch.Tensor, cache_lens: torch.Tensor, page_size: int,
                     num_pages: int) -> None:
    """Check table contents (one device sync): lengths fit the table, every page a valid token
    lives on is in the pool, unused entries are -1 or in the pool."""
    max_pages = page_table.shape[1]
    lens = cache_lens.long()
    needed = (lens + page_size - 1) // page_size                             # (B,) pages in use
    in_use = torch.arange(max_pages, device=lens.device)[None, :] < needed[:, None]
    bad_len = (lens < 0) | (lens > max_pages * page_size)
    bad_used = in_use & ((page_table < 0) | (page_table >= num_pages))
    bad_free = ~in_use & ((page_table < -1) | (page_table >= num_pages))
    flags = torch.stack([bad_len.any(), bad_used.any(), bad_free.any()]).tolist()
    if flags[0]:
        raise ValueError(f"cache_lens must lie in [0, {max_pages} * {page_size}], got "
                         f"{cache_lens.tolist()}")
    if flags[1]:
        raise ValueError(f"page_table entries holding cached tokens must lie in [0, {num_pages})")
    if flags[2]:
        raise ValueError(f"unused page_table entries must be -1 or a page in [0, {num_pages})")


def _block_sizes(n_new: int, head_dim: int) -> tuple[int, int, int, int]:
    """(BLOCK_M, BLOCK_N, BLOCK_D, num_warps): FlashAttention-2's 64x64 tiles at 4 warps for
    D <= 64, 8 warps at D = 128 (twice the registers per row); short chunks shrink BLOCK_M
    (down to the 16 tl.dot needs) instead of computing padded query rows."""
    block_d = max(MIN_DOT, triton.next_power_of_2(head_dim))
    block_m = min(64, max(MIN_DOT, triton.next_power_of_2(n_new)))
    block_n = 64
    num_warps = 4 if block_d <= 64 else 8
    return block_m, block_n, block_d, num_warps


def _input_precision(dtype: torch.dtype) -> str:
    """fp32 follows PyTorch's matmul precision knob (TF32 only when the user allowed it)."""
    if dtype == torch.float32 and torch.get_float32_matmul_precision() == "highest":
        return "ieee"
    return "tf32"                  # the tensor-core default; no effect on fp16/bf16 operands


def paged_attention(q: torch.Tensor, k_new: torch.Tensor, v_new: torch.Tensor,
                    k_pages: torch.Tensor, v_pages: torch.Tensor,
                    page_table: torch.Tensor, cache_lens: torch.Tensor, *,
                    scale: float | None = None, validate: bool | None = None) -> torch.Tensor:
    """Triton twin of `paged_attention_reference` (same arguments, same result) -> (B, N, H, D).

    scale: softmax scale, default 1/sqrt(D) as in scaled_dot_product_attention.
    validate: check the page table's contents against the pool and the lengths. It costs a
    device sync, so it defaults to on for CPU tensors (the interpreter, tests) and off on CUDA,
    where the kernel still masks every out-of-range entry, so a bad table cannot read memory
    outside the pool (its tokens are dropped instead)."""
    _validate(q, k_new, v_new, k_pages, v_pages, page_table, cache_lens)
    b, n, h, d = q.shape
    num_pages, page_size = k_pages.shape[:2]
    if validate if validate is not None else q.device.type != "cuda":
        _validate_tables(page_table, cache_lens, page_size, num_pages)
    out = torch.empty((b, n, h, d), dtype=q.dtype, device=q.device)         # (B, N, H, D)
    if out.numel() == 0:
        return out
    # Metadata is tiny: make it contiguous int32 rather than pass its strides.
    page_table = page_table.contiguous()
    cache_lens = cache_lens.to(torch.int32).contiguous()
    block_m, block_n, block_d, num_warps = _block_sizes(n, d)
    qk_scale = (scale if scale is not None else 1.0 / math.sqrt(d)) * LOG2E
    grid = (triton.cdiv(n, block_m), h, b)
    _paged_attention_kernel[grid](
        q, k_new, v_new, k_pages, v_pages, page_table, cache_lens, out,
        q.stride(0), q.stride(1), q.stride(2),
        k_new.stride(0), k_new.stride(1), k_new.stride(2),
        v_new.stride(0), v_new.stride(1), v_new.stride(2),
        out.stride(0), out.stride(1), out.stride(2),
        k_pages.stride(0), k_pages.stride(1), k_pages.stride(2),
        page_table.stride(0),
        n, d, num_pages, page_table.shape[1], qk_scale,
        PAGE_SIZE=page_size, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=block_d,
        INPUT_PRECISION=_input_precision(q.dtype), num_warps=num_warps, num_stages=2,
    )
    return out


# -------------------------------------------------------------------------------- reference
# `paged_attention_reference` (imported above from npc_runtime.model.attention, the model's own
# definition, so kernel and model can never disagree about what "right" means): gathers the
# session's pages, masks tokens past cache_lens, concatenates the chunk and runs SDPA.
