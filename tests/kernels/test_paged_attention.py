"""Triton paged block-causal attention against the model's PyTorch reference.

Random page tables (random physical pages, -1 padding, ragged lengths that end mid-page,
sessions at length 0, pools with pages no session references) are drawn by hypothesis; a second
test drives the real KVCacheManager until windows have wrapped many times. Memory a session does
not own is filled with NaN for the kernel (zeros for the reference, which gathers and masks it):
one NaN read would poison the output. Tolerances: see tolerances.py.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from npc_runtime.kernels.kv_append import kv_append
from npc_runtime.kernels.paged_attention import paged_attention, paged_attention_reference
from npc_runtime.model.attention import dense_attention, write_pages
from npc_runtime.model.kv_cache import KVCacheManager, KVCacheSpec, PagePool

from .tolerances import DEVICE, DTYPES, INTERPRETED, tolerance

# Head dims: 32 is the micro test model's, 64 tiny's, 128 the larger presets'; 48 is not a
# power of two (masked head-dim tail).
HEAD_DIMS = [32, 48, 64, 128]
PAGE_SIZES = [1, 4, 5, 16, 64]     # 4: micro model (2x2 tokens a frame); 64: tiny (8x8)


def chunk_qkv(b: int, n: int, h: int, d: int, gen: torch.Generator, dtype) -> list[torch.Tensor]:
    """q, k, v (B, N, H, D) as the model makes them: strided views of one fused projection."""
    qkv = torch.randn(b, n, 3, h, d, generator=gen).to(DEVICE, dtype)
    return list(qkv.unbind(2))


def poison(pages: torch.Tensor, owned: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """pages (P, S, H, D), owned (P, S) bool -> (kernel copy with NaN where not owned,
    reference copy with 0 there)."""
    keep = owned[:, :, None, None].to(pages.device)
    return pages.masked_fill(~keep, float("nan")), pages.masked_fill(~keep, 0.0)


def check(q, k, v, k_pages, v_pages, table, lens, owned) -> None:
    k_nan, k_zero = poison(k_pages, owned)
    v_nan, v_zero = poison(v_pages, owned)
    got = paged_attention(q, k, v, k_nan, v_nan, table, lens)
    want = paged_attention_reference(*(t.float() for t in (q, k, v, k_zero, v_zero)), table, lens)
    assert got.dtype == q.dtype and got.shape == q.shape
    torch.testing.assert_close(got.float(), want, **tolerance(q.dtype))


@st.composite
def random_tables(draw):
    """Shapes, ragged lengths, and a random page assignment with spare pages in the pool."""
    b = draw(st.integers(1, 4))
    page_size = draw(st.sampled_from(PAGE_SIZES))
    # Lengths end anywhere inside a page; 0 (no sink, empty window) is drawn often.
    lens = draw(st.lists(st.one_of(st.just(0), st.integers(1, 150)), min_size=b, max_size=b))
    return dict(
        b=b, n=draw(st.integers(1, 40)), h=draw(st.integers(1, 3)),
        d=draw(st.sampled_from(HEAD_DIMS)), page_size=page_size, lens=lens,
        extra_cols=draw(st.integers(0, 2)),        # -1 padding beyond the longest session
        spare_pages=draw(st.integers(1, 3)),       # pages in the pool nobody references
        seed=draw(st.integers(0, 2**31 - 1)),
    )


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25 if INTERPRETED else 60, deadline=None)
@given(case=random_tables())
def test_random_page_tables_ragged_lengths(case, dtype):
    b, n, h, d, ps = case["b"], case["n"], case["h"], case["d"], case["page_size"]
    gen = torch.Generator().manual_seed(case["seed"])
    needed = [math.ceil(length / ps) for length in case["lens"]]
    num_pages = sum(needed) + case["spare_pages"]
    perm = torch.randperm(num_pages, generator=gen)
    table = torch.full((b, max(needed) + case["extra_cols"] or 1), -1, dtype=torch.int32)
    owned = torch.zeros(num_pages, ps, dtype=torch.bool)
    start = 0
    for row, (length, count) in enumerate(zip(case["lens"], needed)):
        pages = perm[start:start + count]
        start += count
        table[row, :count] = pages.int()
        owned.view(-1, ps)[pages] = (torch.arange(count * ps) < length).view(count, ps)
    k_pages = torch.randn(num_pages, ps, h, d, generator=gen).to(DEVICE, dtype)
    v_pages = torch.randn(num_pages, ps, h, d, generator=gen).to(DEVICE, dtype)
    q, k, v = chunk_qkv(b, n, h, d, gen, dtype)
    lens = torch.tensor(case["lens"], dtype=torch.int32, device=DEVICE)
    check(q, k, v, k_pages, v_pages, table.to(DEVICE), lens, owned)


@settings(max_examples=4 if INTERPRETED else 30, deadline=None)
@given(appends=st.lists(st.integers(0, 30), min_size=4, max_size=4),
       seed=st.integers(0, 2**31 - 1))
@example(appends=[0, 1, 7, 30], seed=0)      # empty, partial, wrapped twice, wrapped 9 times
def test_cache_manager_windows_wrapped_many_times(appends, seed):
    """Sessions of the real cache manager (sink + ring of W chunks), one opened after another
    closed (reused pages, stale data), appended 0..30 times with a window of 3: both the K/V
    appends (kv_append vs write_pages) and the attention over the resulting views agree."""
    dtype = DTYPES[0]
    gen = torch.Generator().manual_seed(seed)
    spec = KVCacheSpec(num_layers=1, num_heads=2, head_dim=32, page_size=4, dtype=dtype)
    pool = PagePool(spec, num_pages=64, device=DEVICE)
    mirror = PagePool(spec, num_pages=64, device=DEVICE)       # written by the reference
    manager = KVCacheManager(spec, pool, window_chunks=3, chunk_frames=2)
    sinks = [1, 2, 0, 1]
    ids = [10, 11, 12]
    manager.add_session(99, 2)                                 # closed below: stale pages
    stale = torch.randn(2, 1, 8, 2, 32, generator=gen).to(DEVICE, dtype)
    manager.write_sink(99, stale[0], stale[1])
    for sid, n_sink in zip(ids, sinks):
        manager.add_session(sid, n_sink)
    manager.remove_session(99)
    manager.add_session(13, sinks[3])                          # reuses the freed pages
    ids.append(13)
    for sid, n_sink in zip(ids, sinks):
        if n_sink:
            sink = torch.randn(2, 1, n_sink * 4, 2, 32, generator=gen).to(DEVICE, dtype)
            manager.write_sink(sid, sink[0], sink[1])
    mirror.k.copy_(pool.k)
    mirror.v.copy_(pool.v)

    tokens = manager.chunk_frames * spec.page_size
    for step in range(max(appends)):
        batch = [sid for sid, count in zip(ids, appends) if step < count]
        view = manager.view(batch)
        for dst, write in ((pool, kv_append), (mirror, write_pages)):
            g = torch.Generator().manual_seed(seed + step)
            for pages in (dst.k[0], dst.v[0]):
                write(pages, view.append_slots, torch.randn(len(batch), tokens, 2, 32,
                                                           generator=g).to(DEVICE, dtype))
        manager.append(batch)
    assert torch.equal(pool.k, mirror.k) and torch.equal(pool.v, mirror.v)

    view = manager.view(ids)
    expected = [min(c, 3) * tokens + s * 4 for c, s in zip(appends, sinks)]
    assert view.cache_lens.tolist() == expected
    owned = torch.zeros(64, 4, dtype=torch.bool)
    for sid in ids:
        owned[manager.valid_pages(sid)] = True
    assert not owned.all()                                     # pages nobody references exist
    q, k, v = chunk_qkv(len(ids), tokens, 2, 32, gen, dtype)
    check(q, k, v, pool.k[0], pool.v[0], view.page_table, view.cache_lens, owned)


def test_every_session_empty_is_plain_self_attention():
    """Length 0 everywhere (first chunk, no references): bidirectional attention over the chunk;
    N = 1 leaves 15 of 16 query rows padded."""
    gen = torch.Generator().manual_seed(0)
    for n in (1, 17):
        q, k, v = chunk_qkv(3, n, 2, 64, gen, DTYPES[0])
        pages = torch.randn(2, 4, 2, 64, generator=gen).to(DEVICE, DTYPES[0])
        table = torch.full((3, 1), -1, dtype=torch.int32, device=DEVICE)
        lens = torch.zeros(3, dtype=torch.int32, device=DEVICE)
        got = paged_attention(q, k, v, pages, pages, table, lens)
        torch.testing.assert_close(got.float(), dense_attention(q.float(), k.float(), v.float()),
                                   **tolerance(q.dtype))


def test_wrapper_rejects_bad_inputs():
    gen = torch.Generator().manual_seed(0)
    q, k, v = chunk_qkv(2, 8, 2, 32, gen, torch.float32)
    pages = torch.zeros(4, 4, 2, 32, device=DEVICE)
    table = torch.tensor([[0, 1], [2, -1]], dtype=torch.int32, device=DEVICE)
    lens = torch.tensor([8, 3], dtype=torch.int32, device=DEVICE)
    paged_attention(q, k, v, pages, pages, table, lens)        # the valid baseline
    with pytest.raises(ValueError, match="one dtype"):
        paged_attention(q, k, v, pages.double(), pages.double(), table, lens)
    with pytest.raises(ValueError, match=r"\(P, page_size, 2, 32\)"):
        paged_attention(q, k, v, pages[..., :16], pages[..., :16], table, lens)
    with pytest.raises(ValueError, match="unit stride"):
        paged_attention(q.transpose(1, 3).contiguous().transpose(1, 3), k, v, pages, pages,
                        table, lens)
    with pytest.raises(ValueError, match="int32"):
        paged_attention(q, k, v, pages, pages, table.long(), lens)
    with pytest.raises(ValueError, match="cache_lens must lie"):
        paged_attention(q, k, v, pages, pages, table, lens + 1, validate=True)
    with pytest.raises(ValueError, match="holding cached tokens"):
        bad = table.clone()
        bad[1, 0] = 4                                           # page 4 of a 4-page pool
        paged_attention(q, k, v, pages, pages, bad, lens, validate=True)
    with pytest.raises(ValueError, match="holding cached tokens"):
        paged_attention(q, k, v, pages, pages, table, torch.tensor(
            [8, 5], dtype=torch.int32, device=DEVICE), validate=True)   # 5 tokens need page -1


def test_unvalidated_bad_table_stays_inside_the_pool():
    """validate=False (the CUDA default): an out-of-pool page is masked, never read."""
    gen = torch.Generator().manual_seed(1)
    q, k, v = chunk_qkv(1, 8, 1, 32, gen, DTYPES[0])
    pages = torch.randn(2, 4, 1, 32, generator=gen).to(DEVICE, DTYPES[0])
    table = torch.tensor([[0, 1_000_000]], dtype=torch.int32, device=DEVICE)
    lens = torch.tensor([8], dtype=torch.int32, device=DEVICE)
    got = paged_attention(q, k, v, pages, pages, table, lens, validate=False)
    want = paged_attention_reference(q.float(), k.float(), v.float(), pages.float(),
                                     pages.float(), table[:, :1], lens - 4)
    torch.testing.assert_close(got.float(), want, **tolerance(q.dtype))
