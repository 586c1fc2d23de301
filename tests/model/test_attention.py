"""The paged reference equals dense attention over the same tokens laid out contiguously."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from npc_runtime.model.attention import (dense_attention, paged_attention_reference,
                                         write_pages)


@settings(max_examples=25, deadline=None)
@given(lens=st.lists(st.integers(0, 5), min_size=1, max_size=4), n=st.integers(1, 7),
       page=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_paged_matches_contiguous(lens, n, page, seed):
    g = torch.Generator().manual_seed(seed)
    h, d = 2, 8
    total_pages = sum(lens) + 3                          # spare pages nobody owns
    k_pages = torch.randn(total_pages, page, h, d, generator=g)
    v_pages = torch.randn(total_pages, page, h, d, generator=g)
    perm = torch.randperm(total_pages, generator=g).tolist()
    b = len(lens)
    table = torch.full((b, max(max(lens), 1)), -1, dtype=torch.int32)
    owned, i = [], 0
    for row, n_pages in enumerate(lens):
        pages = perm[i:i + n_pages]
        i += n_pages
        table[row, :n_pages] = torch.tensor(pages, dtype=torch.int32)
        owned.append(pages)
    # A partially filled last page: fewer valid tokens than pages * page_size.
    cache_lens = torch.tensor([max(0, p * page - (row % 2)) for row, p in enumerate(lens)])
    q = torch.randn(b, n, h, d, generator=g)
    k = torch.randn(b, n, h, d, generator=g)
    v = torch.randn(b, n, h, d, generator=g)
    out = paged_attention_reference(q, k, v, k_pages, v_pages, table, cache_lens)
    for row in range(b):
        ks = k_pages[owned[row]].flatten(0, 1)[:cache_lens[row]] if owned[row] else k[:0, :0].reshape(0, h, d)
        vs = v_pages[owned[row]].flatten(0, 1)[:cache_lens[row]] if owned[row] else k[:0, :0].reshape(0, h, d)
        want = dense_attention(q[row:row + 1], torch.cat([ks, k[row]])[None],
                               torch.cat([vs, v[row]])[None])
        torch.testing.assert_close(out[row:row + 1], want, atol=1e-5, rtol=1e-5)


def test_write_pages_skips_negative_slots():
    pages = torch.zeros(3, 2, 1, 2)
    slots = torch.tensor([[0, 5], [-1, 2]])
    vals = torch.arange(8.0).view(2, 2, 1, 2)
    write_pages(pages, slots, vals)
    flat = pages.view(-1, 1, 2)
    assert flat[0].tolist() == [[0.0, 1.0]] and flat[5].tolist() == [[2.0, 3.0]]
    assert flat[2].tolist() == [[6.0, 7.0]]
    assert flat[1].abs().sum() == 0                      # the skipped row wrote nothing
