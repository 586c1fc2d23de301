"""Fused AdaLN of the LPM's DiT blocks: LayerNorm (no affine) + modulation in one pass, and a
gated-residual variant that also adds the previous branch to the residual stream first.

Triton-tutorial order: the ``@triton.jit`` kernel, the host wrappers ``adaln_modulate`` and
``gated_residual_adaln`` that validate and launch, and the PyTorch references beside them.

The math is the model's (``npc_runtime.model.dit``, ``npc_runtime.model.layers.modulate``):

    adaln_modulate(x, shift, scale)        = LayerNorm(x) * (1 + scale) + shift
    gated_residual_adaln(x, y, gate, s, c) = (h, adaln_modulate(h, s, c))  with  h = x + gate * y

LayerNorm is over the last dim d, biased variance, eps 1e-6 (the blocks' norm1/norm2/
final_norm). Unfused, eager PyTorch reads and writes the (B, F, T, d) activations 4-6 times;
fused it is one read of x (and y) and one write of each output: the op is memory-bound, so the
win is that ratio. Statistics are fp32 whatever the input dtype.

Shapes: x (and y) (..., T, d); shift, scale, gate (..., 1, d) - one modulation per frame,
broadcast over the frame's T tokens, as ``LPMBlock.modulation`` produces them - or (..., T, d)
(one per token). Modulations may be strided views (the chunks of one adaLN projection) as long
as each row of d is contiguous.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

__all__ = ["adaln_modulate", "gated_residual_adaln",
           "adaln_modulate_reference", "gated_residual_adaln_reference"]

DEFAULT_EPS = 1e-6                 # the DiT's nn.LayerNorm(eps=1e-6)
ELEMENTS_PER_PROGRAM = 4096        # rows per program = this / d: whole rows in registers


# ------------------------------------------------------------------------------------- kernel
@triton.jit
def _adaln_kernel(
    x_ptr, y_ptr, gate_ptr, shift_ptr, scale_ptr, res_ptr, out_ptr,
    n_rows, dim, rows_per_mod, eps,
    stride_x, stride_y, stride_gate, stride_shift, stride_scale, stride_res, stride_out,
    HAS_RESIDUAL: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr,
):
    rows = (tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)).to(tl.int64)  # (BLOCK_R,)
    cols = tl.arange(0, BLOCK_D)                                               # (BLOCK_D,)
    col_ok = cols < dim
    mask = (rows < n_rows)[:, None] & col_ok[None, :]                          # (BLOCK_R, BLOCK_D)
    mod = rows // rows_per_mod            # the frame (modulation row) each token row belongs to

    x = tl.load(x_ptr + rows[:, None] * stride_x + cols[None, :], mask=mask, other=0.0)
    x = x.to(tl.float32)
    if HAS_RESIDUAL:
        y = tl.load(y_ptr + rows[:, None] * stride_y + cols[None, :], mask=mask, other=0.0)
        g = tl.load(gate_ptr + mod[:, None] * stride_gate + cols[None, :], mask=mask, other=0.0)
        x = x + g.to(tl.float32) * y.to(tl.float32)
        tl.store(res_ptr + rows[:, None] * stride_res + cols[None, :],
                 x.to(res_ptr.dtype.element_ty), mask=mask)

    mean = tl.sum(x, 1) / dim                                                  # (BLOCK_R,)
    xc = tl.where(mask, x - mean[:, None], 0.0)       # padded columns must not enter the variance
    var = tl.sum(xc * xc, 1) / dim
    x_hat = xc * (1.0 / tl.sqrt(var + eps))[:, None]

    shift = tl.load(shift_ptr + mod[:, None] * stride_shift + cols[None, :], mask=mask, other=0.0)
    scale = tl.load(scale_ptr + mod[:, None] * stride_scale + cols[None, :], mask=mask, other=0.0)
    out = x_hat * (1.0 + scale.to(tl.float32)) + shift.to(tl.float32)
    tl.store(out_ptr + rows[:, None] * stride_out + cols[None, :],
             out.to(out_ptr.dtype.element_ty), mask=mask)


# ------------------------------------------------------------------------------ host wrapper
def _rows(t: torch.Tensor, name: str) -> torch.Tensor:
    """(..., d) -> (R, d) with unit column stride; a view whenever the layout allows."""
    flat = t.reshape(-1, t.shape[-1])
    if flat.shape[-1] > 1 and flat.stride(-1) != 1:
        raise ValueError(f"{name} needs unit stride on its last dim")
    return flat


def _modulation_rows(mod: torch.Tensor, x: torch.Tensor, name: str) -> tuple[torch.Tensor, int]:
    """A (..., 1, d) or (..., T, d) modulation -> its (R / rows_per_mod, d) rows, rows_per_mod."""
    if mod.dim() != x.dim() or mod.shape[:-2] != x.shape[:-2] or mod.shape[-1] != x.shape[-1] \
            or mod.shape[-2] not in (1, x.shape[-2]):
        raise ValueError(f"{name} must be {tuple(x.shape[:-2])} + (1 or {x.shape[-2]}, "
                         f"{x.shape[-1]}), got {tuple(mod.shape)}")
    if mod.dtype != x.dtype or mod.device != x.device:
        raise ValueError(f"{name} must match x's dtype and device")
    per_token = mod.shape[-2] == x.shape[-2]
    return _rows(mod, name), (1 if per_token else x.shape[-2])


def _launch(x, y, gate, shift, scale, eps) -> tuple[torch.Tensor | None, torch.Tensor]:
    if x.dim() < 2:
        raise ValueError(f"x must be (..., T, d), got {tuple(x.shape)}")
    if x.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise ValueError(f"x must be fp16/bf16/fp32, got {x.dtype}")
    d = x.shape[-1]
    x_rows = _rows(x, "x")                                                   # (R, d)
    shift_rows, rows_per_mod = _modulation_rows(shift, x, "shift")
    scale_rows, per_scale = _modulation_rows(scale, x, "scale")
    if per_scale != rows_per_mod:
        raise ValueError("shift and scale must broadcast the same way")
    out = torch.empty_like(x_rows)
    res = None
    if y is not None:
        if y.shape != x.shape or y.dtype != x.dtype or y.device != x.device:
            raise ValueError("y must match x's shape, dtype and device")
        y_rows = _rows(y, "y")
        gate_rows, per_gate = _modulation_rows(gate, x, "gate")
        if per_gate != rows_per_mod:
            raise ValueError("gate, shift and scale must broadcast the same way")
        res = torch.empty_like(x_rows)
    n_rows = x_rows.shape[0]
    if n_rows and d:
        block_d = triton.next_power_of_2(d)
        block_r = max(1, min(ELEMENTS_PER_PROGRAM // block_d, triton.next_power_of_2(n_rows)))
        has_res = y is not None
        # Without a residual the y/gate/res pointers are never dereferenced (HAS_RESIDUAL is a
        # constexpr); x stands in for them.
        y_arg, g_arg, r_arg = (y_rows, gate_rows, res) if has_res else (x_rows, x_rows, x_rows)
        _adaln_kernel[(triton.cdiv(n_rows, block_r),)](
            x_rows, y_arg, g_arg, shift_rows, scale_rows, r_arg, out,
            n_rows, d, rows_per_mod, eps,
            x_rows.stride(0), y_arg.stride(0), g_arg.stride(0), shift_rows.stride(0),
            scale_rows.stride(0), r_arg.stride(0), out.stride(0),
            HAS_RESIDUAL=has_res, BLOCK_R=block_r, BLOCK_D=block_d,
            num_warps=4 if block_d <= 2048 else 8,
        )
    return (None if res is None else res.view(x.shape)), out.view(x.shape)


def adaln_modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor,
                   eps: float = DEFAULT_EPS) -> torch.Tensor:
    """LayerNorm(x) * (1 + scale) + shift in one pass: x (..., T, d), shift/scale (..., 1|T, d)."""
    return _launch(x, None, None, shift, scale, eps)[1]


def gated_residual_adaln(x: torch.Tensor, y: torch.Tensor, gate: torch.Tensor,
                         shift: torch.Tensor, scale: torch.Tensor,
                         eps: float = DEFAULT_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """h = x + gate * y and adaln_modulate(h, shift, scale), in one pass -> (h, modulated).

    This is the seam between two branches of a block (a branch's gated residual, then the
    next branch's normalised, modulated input)."""
    res, out = _launch(x, y, gate, shift, scale, eps)
    return res, out


# -------------------------------------------------------------------------------- reference
def adaln_modulate_reference(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor,
                             eps: float = DEFAULT_EPS) -> torch.Tensor:
    """The model's unfused path: nn.LayerNorm(d, elementwise_affine=False) then `modulate`."""
    return F.layer_norm(x, (x.shape[-1],), eps=eps) * (1 + scale) + shift


def gated_residual_adaln_reference(x: torch.Tensor, y: torch.Tensor, gate: torch.Tensor,
                                   shift: torch.Tensor, scale: torch.Tensor,
                                   eps: float = DEFAULT_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    h = x + gate * y
    return h, adaln_modulate_reference(h, shift, scale, eps)
