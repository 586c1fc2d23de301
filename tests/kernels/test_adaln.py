"""Fused AdaLN (LayerNorm + modulation, and the gated-residual variant) against the model's
unfused math, on odd widths, per-frame and per-token modulations and strided modulation views
(the chunks of one adaLN projection, as `LPMBlock.modulation` makes them). Tolerances: the
kernel keeps fp32 statistics like torch's layer_norm; see tolerances.py (the reference runs in
fp32 on the same inputs)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from npc_runtime.kernels.adaln import (adaln_modulate, adaln_modulate_reference,
                                       gated_residual_adaln, gated_residual_adaln_reference)
from npc_runtime.model import dispatch as model_dispatch

from .tolerances import DEVICE, DTYPES, INTERPRETED, tolerance


def modulations(b: int, f: int, t: int, d: int, gen, dtype) -> list[torch.Tensor]:
    """shift, scale, gate: (B, F, 1|T, d) strided chunks of one (.., 3d) projection output."""
    return [m for m in torch.randn(b, f, t, 3 * d, generator=gen).to(DEVICE, dtype).chunk(3, -1)]


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25 if INTERPRETED else 60, deadline=None)
@given(b=st.integers(1, 3), f=st.integers(1, 4), t=st.integers(1, 9),
       d=st.sampled_from([8, 40, 64, 100, 384]), per_token=st.booleans(),
       residual=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_matches_reference(b, f, t, d, per_token, residual, seed, dtype):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(b, f, t, d, generator=gen) * 3 + 1).to(DEVICE, dtype)   # non-zero mean
    y = torch.randn(b, f, t, d, generator=gen).to(DEVICE, dtype)
    shift, scale, gate = modulations(b, f, t if per_token else 1, d, gen, dtype)
    f32 = [a.float() for a in (x, y, gate, shift, scale)]
    if residual:
        h, out = gated_residual_adaln(x, y, gate, shift, scale)
        want_h, want = gated_residual_adaln_reference(*f32)
        torch.testing.assert_close(h.float(), want_h, **tolerance(dtype))
    else:
        out = adaln_modulate(x, shift, scale)
        want = adaln_modulate_reference(f32[0], f32[3], f32[4])
    assert out.dtype == dtype and out.shape == x.shape
    torch.testing.assert_close(out.float(), want, **tolerance(dtype))


def test_reference_is_the_models_math(monkeypatch):
    """The reference is exactly what LPMBlock runs on CPU (the model's dispatch, reference mode):
    nn.LayerNorm(eps=1e-6, no affine), then x * (1 + scale) + shift."""
    monkeypatch.setenv("NPC_RUNTIME_KERNELS", "reference")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 5, 48, generator=gen)
    shift, scale, _ = modulations(2, 3, 1, 48, gen, torch.float32)
    norm = torch.nn.LayerNorm(48, elementwise_affine=False, eps=1e-6)
    model_path = model_dispatch.adaln_modulate(x, shift.cpu(), scale.cpu())
    assert torch.equal(model_path, norm(x) * (1 + scale.cpu()) + shift.cpu())
    assert torch.equal(adaln_modulate_reference(x.to(DEVICE), shift, scale), model_path.to(DEVICE))


def test_wrapper_rejects_bad_inputs():
    x = torch.zeros(2, 3, 4, 8, device=DEVICE)
    good = torch.zeros(2, 3, 1, 8, device=DEVICE)
    with pytest.raises(ValueError, match="shift must be"):
        adaln_modulate(x, torch.zeros(2, 3, 2, 8, device=DEVICE), good)
    with pytest.raises(ValueError, match="dtype"):
        adaln_modulate(x, good.double(), good)
    with pytest.raises(ValueError, match="broadcast the same way"):
        adaln_modulate(x, good, torch.zeros(2, 3, 4, 8, device=DEVICE))
    with pytest.raises(ValueError, match="y must match"):
        gated_residual_adaln(x, x[..., :4], good, good, good)
