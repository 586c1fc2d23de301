"""Paged KV cache of the Online LPM, in three layers kept apart (as in vLLM):

* `KVCacheSpec`   — what a layer needs: a frozen description of one page (tokens x heads x dim
                    for every layer, K and V) and its size in bytes.
* `PagePool` / `KVCacheManager` — allocation: physical pages in preallocated tensors, a free
                    list, and per-session page bookkeeping (identity sink + a ring of W chunks).
* `CacheView`     — what a forward pass sees for a batch of sessions: a padded page table, the
                    number of valid cached tokens per session, and the slots the current chunk
                    would be written to.

One page holds the tokens of one frame. A session owns `sink_pages` (one per reference image,
written once by `write_sink`, never evicted) plus `window_chunks * chunk_frames` pages for its
rolling window, allocated when the session opens: a stream's memory is fixed from its first
chunk to its millionth. Appending a chunk to a full window overwrites the oldest chunk's pages
(evict + append in one ring step). The order of pages in the table does not matter to attention
(softmax over a set; positions are carried by RoPE already applied to the keys).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


class CacheFullError(RuntimeError):
    """No free pages left for a new session."""


@dataclass(frozen=True)
class KVCacheSpec:
    num_layers: int
    num_heads: int
    head_dim: int
    page_size: int                 # tokens per page (= tokens per frame)
    dtype: torch.dtype = torch.float32

    @property
    def page_size_bytes(self) -> int:
        """Bytes one page occupies across all layers, K and V."""
        itemsize = torch.empty((), dtype=self.dtype).element_size()
        return 2 * self.num_layers * self.page_size * self.num_heads * self.head_dim * itemsize


class PagePool:
    """Physical pages: k/v tensors (num_layers, num_pages, page_size, H, D) and a free list."""

    def __init__(self, spec: KVCacheSpec, num_pages: int, device: torch.device | str = "cpu"):
        self.spec = spec
        self.num_pages = num_pages
        shape = (spec.num_layers, num_pages, spec.page_size, spec.num_heads, spec.head_dim)
        self.k = torch.zeros(shape, dtype=spec.dtype, device=device)
        self.v = torch.zeros(shape, dtype=spec.dtype, device=device)
        self._free: list[int] = list(range(num_pages - 1, -1, -1))  # pop() hands out page 0 first

    @property
    def num_free(self) -> int:
        return len(self._free)

    @property
    def nbytes(self) -> int:
        return self.k.numel() * self.k.element_size() * 2

    def allocate(self, n: int) -> list[int]:
        if n > len(self._free):
            raise CacheFullError(f"KV cache full: {n} pages wanted, {len(self._free)} free of "
                                 f"{self.num_pages}")
        return [self._free.pop() for _ in range(n)]

    def free(self, pages: list[int]) -> None:
        self._free.extend(reversed(pages))


@dataclass
class SessionPages:
    """Allocation record of one session: sink pages and a ring of W chunk slots."""
    sink: list[int]
    window: list[int]              # window_chunks * chunk_frames pages, chunk slot s at [s*C, (s+1)*C)
    sink_tokens: int = 0           # valid tokens in the sink (0 until write_sink)
    head: int = 0                  # ring slot of the oldest chunk in the window
    count: int = 0                 # chunks in the window (<= window_chunks)
    appended: int = 0              # chunks ever appended (for stats)


@dataclass(frozen=True)
class CacheView:
    """What attention sees for a batch of sessions (rows in batch order)."""
    session_ids: tuple[int, ...]
    page_table: torch.Tensor       # (B, max_pages) int32, -1 = unused
    cache_lens: torch.Tensor       # (B,) int32 valid cached tokens (sink + window)
    append_slots: torch.Tensor     # (B, tokens_per_chunk) int64 flat slots for the next chunk


@dataclass
class KVCacheManager:
    """Sessions -> pages. All methods are named after what the stream does."""
    spec: KVCacheSpec
    pool: PagePool
    window_chunks: int
    chunk_frames: int
    sessions: dict[int, SessionPages] = field(default_factory=dict)

    @property
    def pages_per_chunk(self) -> int:
        return self.chunk_frames

    def pages_for_session(self, n_sink_pages: int) -> int:
        return n_sink_pages + self.window_chunks * self.pages_per_chunk

    # ---------------------------------------------------------------- session lifetime
    def add_session(self, session_id: int, n_sink_pages: int) -> SessionPages:
        if session_id in self.sessions:
            raise ValueError(f"session {session_id} already has cache pages")
        pages = self.pool.allocate(self.pages_for_session(n_sink_pages))
        rec = SessionPages(sink=pages[:n_sink_pages], window=pages[n_sink_pages:])
        self.sessions[session_id] = rec
        return rec

    def remove_session(self, session_id: int) -> None:
        rec = self.sessions.pop(session_id)
        self.pool.free(rec.sink + rec.window)

    def write_sink(self, session_id: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """k, v: (num_layers, n_tokens, H, D) identity keys/values, written once."""
        rec = self.sessions[session_id]
        ps = self.spec.page_size
        n = k.shape[1]
        if n != len(rec.sink) * ps:
            raise ValueError(f"sink has {len(rec.sink)} pages of {ps} tokens, got {n} tokens")
        idx = torch.tensor(rec.sink, device=self.pool.k.device)
        self.pool.k[:, idx] = k.reshape(k.shape[0], len(rec.sink), ps, *k.shape[2:])
        self.pool.v[:, idx] = v.reshape(v.shape[0], len(rec.sink), ps, *v.shape[2:])
        rec.sink_tokens = n

    def reset(self, session_id: int) -> None:
        """Forget the window (e.g. a cut in the performance); the identity sink stays."""
        rec = self.sessions[session_id]
        rec.head, rec.count = 0, 0

    # ---------------------------------------------------------------- the rolling window
    def _slot_pages(self, rec: SessionPages, slot: int) -> list[int]:
        c = self.pages_per_chunk
        return rec.window[slot * c:(slot + 1) * c]

    def next_chunk_pages(self, session_id: int) -> list[int]:
        """Pages the next appended chunk goes to (the oldest chunk's when the window is full)."""
        rec = self.sessions[session_id]
        return self._slot_pages(rec, (rec.head + rec.count) % self.window_chunks)

    def valid_pages(self, session_id: int) -> list[int]:
        """Sink pages, then the pages of every chunk in the window, oldest first."""
        rec = self.sessions[session_id]
        pages = list(rec.sink) if rec.sink_tokens else []
        for i in range(rec.count):
            pages += self._slot_pages(rec, (rec.head + i) % self.window_chunks)
        return pages

    def append(self, session_ids: list[int] | tuple[int, ...]) -> None:
        """Record that each session's next chunk was written to `next_chunk_pages` (by a commit
        pass through `CacheView.append_slots`); a full window evicts its oldest chunk."""
        for sid in session_ids:
            rec = self.sessions[sid]
            if rec.count == self.window_chunks:
                self.evict_oldest(sid)
            rec.count += 1
            rec.appended += 1

    def evict_oldest(self, session_id: int) -> None:
        """Drop the oldest chunk of the window; its pages are reused by the next append."""
        rec = self.sessions[session_id]
        if rec.count:
            rec.head = (rec.head + 1) % self.window_chunks
            rec.count -= 1

    # ---------------------------------------------------------------- what attention sees
    def view(self, session_ids: list[int] | tuple[int, ...]) -> CacheView:
        tables = [self.valid_pages(sid) for sid in session_ids]
        max_pages = max((len(t) for t in tables), default=0)
        device = self.pool.k.device
        table = torch.full((len(session_ids), max(max_pages, 1)), -1, dtype=torch.int32)
        for row, pages in enumerate(tables):
            table[row, :len(pages)] = torch.tensor(pages, dtype=torch.int32)
        ps = self.spec.page_size
        lens = torch.tensor([len(t) * ps for t in tables], dtype=torch.int32)
        offsets = torch.arange(ps)
        slots = torch.stack([
            (torch.tensor(self.next_chunk_pages(sid))[:, None] * ps + offsets).reshape(-1)
            for sid in session_ids]) if session_ids else torch.zeros(0, 0, dtype=torch.long)
        return CacheView(tuple(session_ids), table.to(device), lens.to(device), slots.to(device))

    def used_pages(self) -> int:
        return self.pool.num_pages - self.pool.num_free
