"""Attention reference paths and the masks of the LPM.

Everything here is plain PyTorch (SDPA). `paged_attention` is the single entry point the Online
LPM calls for "current chunk over [identity sink | rolling window | current chunk]"; on CUDA the
Triton kernel of `npc_runtime.kernels` replaces the reference behind it (see `dispatch`).

Shapes: q, k, v are (B, N, H, D) (tokens before heads, as projections produce them); paged K/V
pools are (num_pages, page_size, H, D) per layer; a page table is (B, max_pages) int32 with -1
for unused entries and `cache_lens` (B,) counts valid cached tokens, pages filled in table order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dense_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    mask: torch.Tensor | None = None) -> torch.Tensor:
    """q (B, N, H, D), k/v (B, S, H, D), mask bool broadcastable to (B, H, N, S), True = attend."""
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                         attn_mask=mask)
    return out.transpose(1, 2)                                  # (B, N, H, D)


def gather_pages(pages: torch.Tensor, page_table: torch.Tensor) -> torch.Tensor:
    """(P, page, H, D) pool + (B, maxp) table -> (B, maxp * page, H, D), -1 entries read page 0."""
    return pages[page_table.clamp(min=0).long()].flatten(1, 2)


def paged_attention_reference(q: torch.Tensor, k_new: torch.Tensor, v_new: torch.Tensor,
                              k_pages: torch.Tensor, v_pages: torch.Tensor,
                              page_table: torch.Tensor, cache_lens: torch.Tensor) -> torch.Tensor:
    """The current chunk (q, k_new, v_new: (B, N, H, D)) attends to its session's cached tokens
    (the first cache_lens[b] tokens addressed by page_table[b]) and bidirectionally to itself."""
    b, n = q.shape[:2]
    k_cached = gather_pages(k_pages, page_table)                # (B, L, H, D)
    v_cached = gather_pages(v_pages, page_table)
    length = k_cached.shape[1]
    valid = torch.arange(length, device=q.device)[None, :] < cache_lens.to(q.device)[:, None]
    mask = torch.cat([valid, valid.new_ones(b, n)], dim=1)      # (B, L + N)
    return dense_attention(q, torch.cat([k_cached, k_new], 1), torch.cat([v_cached, v_new], 1),
                           mask[:, None, None, :])


def paged_attention(q: torch.Tensor, k_new: torch.Tensor, v_new: torch.Tensor,
                    k_pages: torch.Tensor, v_pages: torch.Tensor,
                    page_table: torch.Tensor, cache_lens: torch.Tensor) -> torch.Tensor:
    """Dispatching entry point: the Triton kernel on CUDA when available, else the reference."""
    from npc_runtime.model import dispatch
    impl = dispatch.paged_attention_impl(q.device)
    return impl(q, k_new, v_new, k_pages, v_pages, page_table, cache_lens)


def write_pages(pages: torch.Tensor, slots: torch.Tensor, values: torch.Tensor) -> None:
    """Reference KV append: pages (P, page, H, D); slots (B, N) flat token slots, < 0 skipped;
    values (B, N, H, D)."""
    flat = pages.view(-1, *pages.shape[2:])
    keep = slots.reshape(-1) >= 0
    flat[slots.reshape(-1)[keep].long()] = values.reshape(-1, *values.shape[2:])[keep]


# ------------------------------------------------------------------------------------- masks
def block_causal_chunk_mask(n_chunks: int, window: int | None, device=None) -> torch.Tensor:
    """(n_chunks, n_chunks) bool: chunk i sees chunks j with i - window <= j <= i.

    `window=None` means unlimited history (plain block-causal)."""
    i = torch.arange(n_chunks, device=device)[:, None]
    j = torch.arange(n_chunks, device=device)[None, :]
    allowed = j <= i
    if window is not None:
        allowed &= (i - j) <= window
    return allowed


def expand_chunk_mask(chunk_mask: torch.Tensor, tokens_per_chunk: int,
                      n_sink: int) -> torch.Tensor:
    """Chunk-level mask (Nq, Nk) -> token-level (Nq*T, n_sink + Nk*T); every token sees the sink."""
    tok = chunk_mask.repeat_interleave(tokens_per_chunk, 0).repeat_interleave(tokens_per_chunk, 1)
    sink = tok.new_ones(tok.shape[0], n_sink)
    return torch.cat([sink, tok], dim=1)
