"""Triton KV-cache append against the model's `write_pages`: a copy, so results must be equal
bit for bit on every device (no tolerance), including strided values and skipped slots."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from npc_runtime.kernels.kv_append import kv_append, kv_append_reference

from .tolerances import DEVICE, DTYPES, INTERPRETED


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=30 if INTERPRETED else 100, deadline=None)
@given(b=st.integers(1, 4), n=st.integers(1, 70), h=st.integers(1, 3),
       d=st.sampled_from([32, 48, 64, 128]), page_size=st.sampled_from([1, 4, 5, 64]),
       skip=st.floats(0.0, 1.0), seed=st.integers(0, 2**31 - 1))
def test_random_slots_match_reference(b, n, h, d, page_size, skip, seed, dtype):
    gen = torch.Generator().manual_seed(seed)
    num_pages = (b * n) // page_size + 2                       # room for every token, plus spare
    pages = torch.randn(num_pages, page_size, h, d, generator=gen).to(DEVICE, dtype)
    # Distinct random slots anywhere in the pool; a fraction `skip` of the tokens do not commit.
    slots = torch.randperm(num_pages * page_size, generator=gen)[:b * n].view(b, n)
    slots[torch.rand(b, n, generator=gen) < skip] = -1
    # Values as the model hands them over: strided views of a fused (B, N, 3, H, D) projection.
    values = torch.randn(b, n, 3, h, d, generator=gen).to(DEVICE, dtype)[:, :, 1]
    got, want = pages.clone(), pages.clone()
    kv_append(got, slots.to(DEVICE), values)
    kv_append_reference(want, slots.to(DEVICE), values)
    assert torch.equal(got, want)


def test_int32_slots_and_arbitrary_negative_skips():
    pages = torch.zeros(3, 4, 2, 16, device=DEVICE)
    values = torch.randn(2, 3, 2, 16, device=DEVICE)
    slots = torch.tensor([[0, 5, -1], [11, -7, 2]], dtype=torch.int32, device=DEVICE)
    want = pages.clone()
    kv_append(pages, slots, values)
    kv_append_reference(want, slots, values)
    assert torch.equal(pages, want)


def test_wrapper_rejects_bad_inputs():
    pages = torch.zeros(2, 4, 2, 16, device=DEVICE)
    values = torch.zeros(1, 3, 2, 16, device=DEVICE)
    with pytest.raises(ValueError, match="slots must be"):
        kv_append(pages, torch.zeros(1, 4, dtype=torch.long, device=DEVICE), values)
    with pytest.raises(ValueError, match="values must be"):
        kv_append(pages, torch.zeros(1, 3, dtype=torch.long, device=DEVICE), values[..., :8])
    with pytest.raises(ValueError, match="dtype"):
        kv_append(pages.half(), torch.zeros(1, 3, dtype=torch.long, device=DEVICE), values)
    with pytest.raises(ValueError, match="< 8"):
        kv_append(pages, torch.tensor([[0, 1, 8]], device=DEVICE), values, validate=True)
    with pytest.raises(ValueError, match="twice"):
        kv_append(pages, torch.tensor([[3, -1, 3]], device=DEVICE), values, validate=True)
    with pytest.raises(ValueError, match="unit stride"):
        kv_append(pages, torch.zeros(1, 3, dtype=torch.long, device=DEVICE),
                  torch.zeros(1, 3, 16, 2, device=DEVICE).transpose(2, 3))
