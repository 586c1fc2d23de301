import pytest
import torch

from npc_runtime.model.kv_cache import CacheFullError, KVCacheManager, KVCacheSpec, PagePool

SPEC = KVCacheSpec(num_layers=2, num_heads=2, head_dim=4, page_size=3)


def manager(pages=64, window=2, chunk=2) -> KVCacheManager:
    return KVCacheManager(SPEC, PagePool(SPEC, pages), window_chunks=window, chunk_frames=chunk)


def test_page_size_bytes_counts_k_and_v_of_every_layer():
    assert SPEC.page_size_bytes == 2 * 2 * 3 * 2 * 4 * 4


def test_append_fills_window_then_evicts_oldest_and_keeps_sink():
    m = manager()
    m.add_session(1, n_sink_pages=2)
    sink_k = torch.randn(2, 6, 2, 4)
    m.write_sink(1, sink_k, -sink_k)
    rec = m.sessions[1]
    seen_chunks = []
    for step in range(7):
        pages = m.next_chunk_pages(1)
        seen_chunks.append(pages)
        view = m.view([1])
        assert view.append_slots.shape == (1, 2 * 3)
        m.append([1])
        valid = m.valid_pages(1)
        assert valid[:2] == rec.sink                     # sink first, always
        window_chunks = min(step + 1, 2)
        assert len(valid) == 2 + window_chunks * 2
        assert valid[-2:] == pages                       # the newest chunk is in the window
        if step >= 2:
            assert not set(seen_chunks[step - 2]) & set(valid[2:]) or \
                seen_chunks[step - 2] == pages           # the oldest was evicted (its pages reused)
    assert m.used_pages() == 2 + 2 * 2                   # constant memory
    got = m.pool.k[:, torch.tensor(rec.sink)].flatten(1, 2)
    torch.testing.assert_close(got, sink_k)


def test_evict_and_reset():
    m = manager()
    m.add_session(5, n_sink_pages=1)
    m.write_sink(5, torch.zeros(2, 3, 2, 4), torch.zeros(2, 3, 2, 4))
    m.append([5])
    m.append([5])
    newest = m.valid_pages(5)[-2:]
    m.evict_oldest(5)
    assert m.valid_pages(5)[1:] == newest
    m.reset(5)
    assert m.valid_pages(5) == m.sessions[5].sink
    assert m.view([5]).cache_lens.tolist() == [3]


def test_ragged_batch_view_pads_page_table():
    m = manager()
    m.add_session(1, 1)
    m.add_session(2, 4)
    for sid, n_sink in ((1, 1), (2, 4)):
        m.write_sink(sid, torch.zeros(2, 3 * n_sink, 2, 4), torch.zeros(2, 3 * n_sink, 2, 4))
    m.append([2])
    view = m.view([1, 2])
    assert view.cache_lens.tolist() == [3, (4 + 2) * 3]
    assert view.page_table.shape == (2, 6)
    assert (view.page_table[0, 1:] == -1).all()


def test_cache_full_and_free():
    m = manager(pages=10)
    m.add_session(1, 4)                                  # 4 + 4 pages
    with pytest.raises(CacheFullError, match="full"):
        m.add_session(2, 4)
    assert m.pool.num_free == 2                          # a failed add took nothing
    m.remove_session(1)
    assert m.pool.num_free == 10
    m.add_session(2, 4)
    with pytest.raises(ValueError, match="already"):
        m.add_session(2, 1)
