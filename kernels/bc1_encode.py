"""BC1 (DXT1) texture encoder in Triton: RGB frames of a whole batch -> BC1 blocks on the GPU.

Triton-tutorial order: the ``@triton.jit`` kernel (with its helpers), the host wrapper
``bc1_encode`` that validates, allocates and launches, and the PyTorch reference
``bc1_encode_reference`` (the sidecar's CPU encoder, ``npc_runtime.texture.bc1``).

The kernel repeats the reference step for step (principal axis by power iteration, extreme
pixels, nearest-palette indices, least-squares refinement, single-colour candidate, 4-colour
ordering), one program per ``BLOCK`` 4x4 blocks held as (BLOCK, 16) tiles per channel. Only
the principal axis and the projections are float32; the kernel uses the same operation order,
IEEE division (``div_rn``) and is launched with FMA contraction off (the compiled PTX has no
``fma.rn.f32``; tested without a GPU), so it produces the same bytes as the reference: exactly
under ``TRITON_INTERPRET=1`` (tested). On a GPU the same should hold; the GPU test allows a
0.5% share of differing blocks in case device math (e.g. denormal flushing) flips a near-tie
between two pixels' projections, which changes bytes but not quality.
"""

from __future__ import annotations

import contextlib
import functools

import torch
import triton
import triton.language as tl

from npc_runtime.texture import bc1

# Blocks per program and warps: compiled offline for sm_90a (ptxas -v), BLOCK=32 at 4 warps
# uses 128 registers and no spills; BLOCK=64 at 4 warps needs 255 registers and spills 216 B.
# Not yet tuned on a GPU (none was available when written); see docs/texture.md.
DEFAULT_BLOCK = 32
# No FMA contraction: the float32 steps must round exactly as the reference's separate ops.
LAUNCH_OPTIONS = {"num_warps": 4, "enable_fp_fusion": False}
# @triton.jit picks the interpreter when this module is imported; remember what it picked.
_INTERPRETED = bool(triton.knobs.runtime.interpret)


@triton.jit
def _quantise(c, LEVELS: tl.constexpr):
    """8-bit value -> nearest level of a 5- or 6-bit channel (integer rounding)."""
    return (c * LEVELS + 127) // 255


@triton.jit
def _expand(q, BITS: tl.constexpr):
    """5- or 6-bit level -> 8 bits by bit replication."""
    return (q << (8 - BITS)) | (q >> (2 * BITS - 8))


@triton.jit
def _principal_axis(r, g, b, POWER_ITERATIONS: tl.constexpr):
    """(BLOCK, 16) int32 channels -> three (BLOCK,) float32 axis components (max-abs = 1)."""
    sr, sg, sb = tl.sum(r, 1), tl.sum(g, 1), tl.sum(b, 1)
    # Exact int32 covariance scaled by 256, as in the reference.
    crr = (16 * tl.sum(r * r, 1) - sr * sr).to(tl.float32)
    cgg = (16 * tl.sum(g * g, 1) - sg * sg).to(tl.float32)
    cbb = (16 * tl.sum(b * b, 1) - sb * sb).to(tl.float32)
    crg = (16 * tl.sum(r * g, 1) - sr * sg).to(tl.float32)
    crb = (16 * tl.sum(r * b, 1) - sr * sb).to(tl.float32)
    cgb = (16 * tl.sum(g * b, 1) - sg * sb).to(tl.float32)
    use1 = cgg > crr
    use2 = cbb > tl.maximum(crr, cgg)
    v0 = tl.where(use2, crb, tl.where(use1, crg, crr))
    v1 = tl.where(use2, cgb, tl.where(use1, cgg, crg))
    v2 = tl.where(use2, cbb, tl.where(use1, cgb, crb))
    for _ in tl.static_range(POWER_ITERATIONS):
        n0 = (crr * v0 + crg * v1) + crb * v2
        n1 = (crg * v0 + cgg * v1) + cgb * v2
        n2 = (crb * v0 + cgb * v1) + cbb * v2
        scale = tl.maximum(tl.maximum(tl.abs(n0), tl.abs(n1)), tl.abs(n2))
        scale = tl.maximum(scale, 1e-30)
        v0 = tl.math.div_rn(n0, scale)
        v1 = tl.math.div_rn(n1, scale)
        v2 = tl.math.div_rn(n2, scale)
    return v0, v1, v2


@triton.jit
def _pick(texel, which, c):
    """Channel value of texel `which` (BLOCK,) from a (BLOCK, 16) tile."""
    return tl.sum(tl.where(texel[None, :] == which[:, None], c, 0), 1)


@triton.jit
def _first_texel(t, texel, best):
    """Index of the first texel whose projection equals `best` (reference: argmax/argmin)."""
    return tl.min(tl.where(t == best[:, None], texel[None, :], 16), 1)


@triton.jit
def _assign(r, g, b, q0r, q0g, q0b, q1r, q1g, q1b):
    """Nearest 4-colour palette entry per texel, in line order (reference: assign_indices)
    -> (line index j (BLOCK,16), err (BLOCK,)), exact int32."""
    e0r, e0g, e0b = _expand(q0r, 5), _expand(q0g, 6), _expand(q0b, 5)
    e1r, e1g, e1b = _expand(q1r, 5), _expand(q1g, 6), _expand(q1b, 5)
    r2, g2, b2 = 2 * r, 2 * g, 2 * b
    best = tl.zeros(r.shape, tl.int32)
    idx = tl.zeros(r.shape, tl.int32)
    for k in tl.static_range(4):
        if k == 0:
            pr, pg, pb = e0r, e0g, e0b
        elif k == 1:
            pr, pg, pb = (2 * e0r + e1r) // 3, (2 * e0g + e1g) // 3, (2 * e0b + e1b) // 3
        elif k == 2:
            pr, pg, pb = (e0r + 2 * e1r) // 3, (e0g + 2 * e1g) // 3, (e0b + 2 * e1b) // 3
        else:
            pr, pg, pb = e1r, e1g, e1b
        pp = pr * pr + pg * pg + pb * pb
        dot = r2 * pr[:, None] + g2 * pg[:, None] + b2 * pb[:, None]
        score = pp[:, None] - dot
        if k == 0:
            best = score
        else:
            idx = tl.where(score < best, k, idx)
            best = tl.minimum(score, best)
    err = tl.sum(r * r + g * g + b * b, 1) + tl.sum(best, 1)
    return idx, err


@triton.jit
def _ls_channel(num, det, safe, q, LEVELS: tl.constexpr):
    """Least-squares numerator -> rounded level (reference: least_squares_endpoints.quantise)."""
    num = tl.minimum(tl.maximum(num, 0), 255 * safe)
    return tl.where(det > 0, (2 * num * LEVELS + 255 * safe) // (2 * 255 * safe), q)


@triton.jit
def _least_squares(r, g, b, idx, q0r, q0g, q0b, q1r, q1g, q1b):
    """Endpoints refitted to the line indices (weights 3-j, j); singular systems keep the
    current ones."""
    bw = idx
    a = 3 - bw
    aa, bb, ab = tl.sum(a * a, 1), tl.sum(bw * bw, 1), tl.sum(a * bw, 1)
    axr, axg, axb = 3 * tl.sum(a * r, 1), 3 * tl.sum(a * g, 1), 3 * tl.sum(a * b, 1)
    bxr, bxg, bxb = 3 * tl.sum(bw * r, 1), 3 * tl.sum(bw * g, 1), 3 * tl.sum(bw * b, 1)
    det = aa * bb - ab * ab
    safe = tl.where(det > 0, det, 1)
    n0r = _ls_channel(bb * axr - ab * bxr, det, safe, q0r, 31)
    n0g = _ls_channel(bb * axg - ab * bxg, det, safe, q0g, 63)
    n0b = _ls_channel(bb * axb - ab * bxb, det, safe, q0b, 31)
    n1r = _ls_channel(aa * bxr - ab * axr, det, safe, q1r, 31)
    n1g = _ls_channel(aa * bxg - ab * axg, det, safe, q1g, 63)
    n1b = _ls_channel(aa * bxb - ab * axb, det, safe, q1b, 31)
    return n0r, n0g, n0b, n1r, n1g, n1b


@triton.jit
def bc1_encode_kernel(frames_ptr, table_ptr, out_ptr, n_blocks, blocks_x, blocks_per_frame,
                      height, width, POWER_ITERATIONS: tl.constexpr,
                      REFINE_ITERATIONS: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    blk = pid * BLOCK + tl.arange(0, BLOCK)                        # (BLOCK,)
    live = blk < n_blocks                                          # masked tail
    texel = tl.arange(0, 16)                                       # (16,)
    frame = (blk // blocks_per_frame).to(tl.int64)
    in_frame = blk % blocks_per_frame
    row = (in_frame // blocks_x * 4)[:, None] + (texel // 4)[None, :]   # (BLOCK, 16)
    col = (in_frame % blocks_x * 4)[:, None] + (texel % 4)[None, :]     # (BLOCK, 16)
    offs = ((frame[:, None] * height + row) * width + col) * 3     # (BLOCK, 16) int64
    m = live[:, None]
    r = tl.load(frames_ptr + offs, mask=m, other=0).to(tl.int32)
    g = tl.load(frames_ptr + offs + 1, mask=m, other=0).to(tl.int32)
    b = tl.load(frames_ptr + offs + 2, mask=m, other=0).to(tl.int32)

    # 1-2. principal axis, extreme pixels, quantised start endpoints.
    a0, a1, a2 = _principal_axis(r, g, b, POWER_ITERATIONS)
    t = (r.to(tl.float32) * a0[:, None] + g.to(tl.float32) * a1[:, None]) \
        + b.to(tl.float32) * a2[:, None]                           # (BLOCK, 16)
    hi = _first_texel(t, texel, tl.max(t, 1))
    lo = _first_texel(t, texel, tl.min(t, 1))
    q0r, q0g, q0b = _quantise(_pick(texel, hi, r), 31), _quantise(_pick(texel, hi, g), 63), \
        _quantise(_pick(texel, hi, b), 31)
    q1r, q1g, q1b = _quantise(_pick(texel, lo, r), 31), _quantise(_pick(texel, lo, g), 63), \
        _quantise(_pick(texel, lo, b), 31)
    idx, err = _assign(r, g, b, q0r, q0g, q0b, q1r, q1g, q1b)

    # 3-4. least-squares refinement, kept per block only where it lowers the error.
    for _ in tl.static_range(REFINE_ITERATIONS):
        n0r, n0g, n0b, n1r, n1g, n1b = _least_squares(r, g, b, idx, q0r, q0g, q0b, q1r, q1g, q1b)
        nidx, nerr = _assign(r, g, b, n0r, n0g, n0b, n1r, n1g, n1b)
        better = nerr < err
        q0r, q0g, q0b = tl.where(better, n0r, q0r), tl.where(better, n0g, q0g), \
            tl.where(better, n0b, q0b)
        q1r, q1g, q1b = tl.where(better, n1r, q1r), tl.where(better, n1g, q1g), \
            tl.where(better, n1b, q1b)
        idx = tl.where(better[:, None], nidx, idx)
        err = tl.where(better, nerr, err)

    # 5. single-colour candidate from the rounded mean; table is (3, 256, 2) int32.
    mr, mg, mb = (tl.sum(r, 1) + 8) // 16, (tl.sum(g, 1) + 8) // 16, (tl.sum(b, 1) + 8) // 16
    s0r, s1r = tl.load(table_ptr + mr * 2), tl.load(table_ptr + mr * 2 + 1)
    s0g, s1g = tl.load(table_ptr + 512 + mg * 2), tl.load(table_ptr + 512 + mg * 2 + 1)
    s0b, s1b = tl.load(table_ptr + 1024 + mb * 2), tl.load(table_ptr + 1024 + mb * 2 + 1)
    sidx, serr = _assign(r, g, b, s0r, s0g, s0b, s1r, s1g, s1b)
    better = serr < err
    c0 = tl.where(better, (s0r << 11) | (s0g << 5) | s0b, (q0r << 11) | (q0g << 5) | q0b)
    c1 = tl.where(better, (s1r << 11) | (s1g << 5) | s1b, (q1r << 11) | (q1g << 5) | q1b)
    idx = tl.where(better[:, None], sidx, idx)

    # 6. 4-colour ordering (color0 > color1; swapping reverses the line), equal endpoints ->
    # index 0, line position -> BC1 index (0, 2, 3, 1), pack.
    swap = c0 < c1
    idx = tl.where(swap[:, None], 3 - idx, idx)
    c0, c1 = tl.where(swap, c1, c0), tl.where(swap, c0, c1)
    idx = tl.where((c0 == c1)[:, None], 0, idx)
    idx = (((idx ^ (idx >> 1)) & 1) << 1) | (idx >> 1)
    # Two 16-bit halves summed separately: disjoint bits, and no int32 sum can overflow.
    shifted = idx << ((2 * texel) % 16)[None, :]                   # (BLOCK, 16)
    lo_bits = tl.sum(tl.where(texel[None, :] < 8, shifted, 0), 1)
    hi_bits = tl.sum(tl.where(texel[None, :] >= 8, shifted, 0), 1)
    tl.store(out_ptr + blk * 2, c0 | (c1 << 16), mask=live)
    tl.store(out_ptr + blk * 2 + 1, lo_bits | (hi_bits << 16), mask=live)


@functools.cache
def _single_colour_table(device: torch.device) -> torch.Tensor:
    """(3, 256, 2) int32 table on `device`, copied there once."""
    return bc1.SINGLE_COLOUR_TABLE.to(device).contiguous()


def bc1_encode(frames: torch.Tensor, block: int = DEFAULT_BLOCK) -> torch.Tensor:
    """(N, H, W, 3) uint8 frames -> (N, H*W/2) uint8 BC1 payloads (same layout as the reference).

    Runs on CUDA tensors, or on CPU tensors under ``TRITON_INTERPRET=1``. ValueError on a
    wrong dtype, shape, size not a multiple of 4, or a CPU tensor without the interpreter.
    """
    if frames.dtype != torch.uint8 or frames.dim() != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (N, H, W, 3) uint8, got {tuple(frames.shape)} "
                         f"{frames.dtype}")
    n, h, w, _ = frames.shape
    if h % bc1.BLOCK_SIDE or w % bc1.BLOCK_SIDE or h == 0 or w == 0:
        raise ValueError(f"frame size must be a positive multiple of 4, got {w}x{h}")
    if frames.device.type != "cuda" and not _INTERPRETED:
        raise ValueError("the Triton BC1 kernel needs a CUDA tensor (or TRITON_INTERPRET=1)")
    if block < 1 or block & (block - 1):
        raise ValueError(f"block must be a power of two, got {block}")
    frames = frames.contiguous()
    blocks_x, blocks_y = w // bc1.BLOCK_SIDE, h // bc1.BLOCK_SIDE
    n_blocks = n * blocks_x * blocks_y
    out = torch.empty((n_blocks, 2), dtype=torch.int32, device=frames.device)
    # Triton launches on the current CUDA device: make it the frames' one.
    on_device = torch.cuda.device(frames.device) if frames.is_cuda else contextlib.nullcontext()
    if n_blocks:
        table = _single_colour_table(frames.device)                # (3, 256, 2)
        grid = (triton.cdiv(n_blocks, block),)
        with on_device:
            bc1_encode_kernel[grid](
                frames, table, out, n_blocks, blocks_x, blocks_x * blocks_y, h, w,
                POWER_ITERATIONS=bc1.POWER_ITERATIONS, REFINE_ITERATIONS=bc1.REFINE_ITERATIONS,
                BLOCK=block, **LAUNCH_OPTIONS)
    return out.view(torch.uint8).reshape(n, -1)


def bc1_encode_reference(frames: torch.Tensor) -> torch.Tensor:
    """PyTorch reference on any device: the sidecar's vectorised CPU encoder."""
    return bc1.encode_frames(frames)
