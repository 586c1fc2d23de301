"""Vectorised BC1 (DXT1) encoder in PyTorch: every 4x4 block of a whole batch at once.

This is the CPU encoder of the sidecar and, unchanged, the reference of the Triton kernel in
``npc_runtime.kernels.bc1_encode`` (it runs on any torch device).

Per block, always in 4-colour mode (color0 > color1 as 16-bit integers):
1. principal axis of the 16 colours by power iteration on their covariance;
2. start endpoints = the two pixels with extreme projections on that axis (squish's range fit,
   stb_dxt's start), quantised to RGB565;
3. each pixel takes the nearest of the 4 palette colours the decoder will produce;
4. ``REFINE_ITERATIONS`` rounds of least-squares refinement: given the index assignment, solve
   the 2x2 normal equations for the endpoints, re-quantise, re-assign, keep whichever is better;
5. a single-colour candidate (optimal 565 pair whose 2/3 interpolant is nearest the block
   mean, as stb_dxt's omatch tables) replaces the result where it is better - it makes flat
   blocks exact up to what BC1 can represent and handles endpoints that collapse to one 565
   value, where 4-colour mode is impossible.

Everything after the principal axis is integer arithmetic (sums of at most 16 pixels, fits
int32), so the result does not depend on summation order: the Triton kernel reproduces it.
The palette follows the D3D reference decoder (integer (2*c0 + c1) // 3), which
``texture2ddecoder`` implements too; GPU hardware may round the two interpolated colours
slightly differently (a level or two), which changes no index choice noticeably.
"""

from __future__ import annotations

import numpy as np
import torch

BLOCK_SIDE = 4
TEXELS = BLOCK_SIDE * BLOCK_SIDE
BLOCK_BYTES = 8
# Measured on the four sample photos (docs/texture.md): 4 power iterations are within 0.001 dB
# of 16; refinement rounds 0/1/2/3 give 34.40/36.03/36.21/36.24 dB mean PSNR.
POWER_ITERATIONS = 4
REFINE_ITERATIONS = 2
# Blocks per vectorised step on the CPU: 4096 blocks keep the working set in L2 (measured
# fastest of 512..16384 on a 2-core x86 host: per-op overhead below, cache misses above).
CHUNK_BLOCKS = 4096
CHANNEL_BITS = (5, 6, 5)
CHANNEL_LEVELS = tuple((1 << b) - 1 for b in CHANNEL_BITS)        # (31, 63, 31)
# Inside the encoder a texel's index is its position j along the line e0 -> e1: colour
# ((3-j) e0 + j e1) / 3, so the least-squares weights are simply 3-j and j. BC1 numbers the
# same colours e0, e1, 2/3 e0 + 1/3 e1, 1/3 e0 + 2/3 e1: j = 0, 1, 2, 3 -> 0, 2, 3, 1
# (see line_to_bc1_index).


def expand_bits(q: torch.Tensor, bits: int) -> torch.Tensor:
    """5- or 6-bit channel values -> 8 bits by bit replication, as every BC1 decoder does."""
    return (q << (8 - bits)) | (q >> (2 * bits - 8))


def expand565(q: torch.Tensor) -> torch.Tensor:
    """(3, ...) int quantised RGB planes (5,6,5 bits) -> (3, ...) int 8-bit RGB."""
    return torch.stack([expand_bits(q[c], b) for c, b in enumerate(CHANNEL_BITS)])


def pack565(q: torch.Tensor) -> torch.Tensor:
    """(3, ...) int quantised RGB planes -> (...) int 16-bit RGB565 value."""
    return (q[0] << 11) | (q[1] << 5) | q[2]


def _levels(device: torch.device) -> torch.Tensor:
    """(3, 1) int32: the largest quantised value per channel, as a column for (3, B) math."""
    return torch.tensor(CHANNEL_LEVELS, dtype=torch.int32, device=device)[:, None]


def line_to_bc1_index(j: torch.Tensor) -> torch.Tensor:
    """Line position 0..3 -> BC1 index 0, 2, 3, 1 by bit arithmetic (no gather): the BC1 high
    bit is j0 xor j1, the low bit is j1."""
    return (((j ^ (j >> 1)) & 1) << 1) | (j >> 1)


def _single_colour_table(bits: int) -> np.ndarray:
    """(256, 2) int32: for each 8-bit value v, the quantised pair (a, b) whose decoded
    (2*a + b) // 3 interpolant is nearest v. Ties prefer the smallest |a - b|, which keeps
    the result stable under decoders that round the interpolation differently."""
    q = np.arange(1 << bits)
    e = (q << (8 - bits)) | (q >> (2 * bits - 8))                 # (Q,)
    interp = (2 * e[:, None] + e[None, :]) // 3                   # (Q, Q) [a, b]
    v = np.arange(256)[:, None, None]
    cost = np.abs(interp[None] - v) * 1024 + np.abs(q[:, None] - q[None, :])[None]  # (256, Q, Q)
    best = cost.reshape(256, -1).argmin(axis=1)
    return np.stack([best // (1 << bits), best % (1 << bits)], axis=1).astype(np.int32)


# (3, 256, 2): per channel, 8-bit value -> (endpoint0, endpoint1) quantised pair.
SINGLE_COLOUR_TABLE = torch.from_numpy(
    np.stack([_single_colour_table(b) for b in CHANNEL_BITS], axis=0))


def quantise_colour(colour: torch.Tensor) -> torch.Tensor:
    """(3, B) int 8-bit RGB -> (3, B) int 565 levels, rounded to nearest (integer exact)."""
    return (colour * _levels(colour.device) + 127) // 255


def principal_axis(x: torch.Tensor) -> torch.Tensor:
    """(3, B, 16) int32 colour planes -> (3, B) float32 principal axis, max-abs normalised.

    The covariance is formed exactly in int32 (scaled by 256: 16*sum(xy) - sum(x)sum(y) is at
    most 16.6M < 2**24, so its float32 copy is exact too). Power iteration starts from the
    covariance column with the largest variance: it lies in the range of the covariance, so it
    is never orthogonal to every principal direction (a fixed start such as (1,1,1) is, for a
    red/green contrast). A flat block gives the zero axis.
    """
    s = x.sum(dim=2)                                               # (3, B)
    cov = [[(TEXELS * (x[i] * x[j]).sum(dim=1) - s[i] * s[j]).float() for j in range(3)]
           for i in range(3)]                                      # 3x3 of (B,), symmetric
    # Start column: first channel with the largest variance (ties take the lower channel).
    use1 = cov[1][1] > cov[0][0]
    use2 = cov[2][2] > torch.maximum(cov[0][0], cov[1][1])
    v = [torch.where(use2, cov[i][2], torch.where(use1, cov[i][1], cov[i][0])) for i in range(3)]
    for _ in range(POWER_ITERATIONS):
        # Explicit mul/add in a fixed order so the Triton kernel repeats the float32 rounding.
        v = [(cov[i][0] * v[0] + cov[i][1] * v[1]) + cov[i][2] * v[2] for i in range(3)]
        scale = torch.maximum(torch.maximum(v[0].abs(), v[1].abs()), v[2].abs())
        scale = scale.clamp_min(1e-30)                             # (B,) flat block: 0 / tiny
        v = [vi / scale for vi in v]
    return torch.stack(v)                                          # (3, B)


def extreme_pixels(x: torch.Tensor, axis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(3,B,16) int, (3,B) float -> two (3,B) int colours with the largest / smallest
    projection on the axis. Ties take the first texel, as the kernel does."""
    xf = x.float()
    t = (xf[0] * axis[0, :, None] + xf[1] * axis[1, :, None]) + xf[2] * axis[2, :, None]  # (B,16)
    hi = t.argmax(dim=1)                                           # (B,) first max
    lo = t.argmin(dim=1)                                           # (B,) first min
    take = lambda i: torch.gather(x, 2, i.expand(3, -1)[..., None])[..., 0]  # noqa: E731
    return take(hi), take(lo)                                      # (3, B) each


def palette(q0: torch.Tensor, q1: torch.Tensor) -> list[torch.Tensor]:
    """(3,B) 565 levels of both endpoints -> the 4 (3,B) int 8-bit colours of the 4-colour
    mode in line order, with the decoder's integer truncation."""
    e0, e1 = expand565(q0), expand565(q1)                          # (3, B)
    return [e0, (2 * e0 + e1) // 3, (e0 + 2 * e1) // 3, e1]


def assign_indices(x: torch.Tensor, q0: torch.Tensor, q1: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest 4-colour-mode palette entry per texel (first in line order on ties).

    x (3,B,16) int32, q0/q1 (3,B) int32 565 levels -> line index j (B,16) int32 and err (B,),
    the exact sum of squared RGB errors of the decoded block. |x - p|^2 is computed as
    |x|^2 + (|p|^2 - 2 x.p), so each palette entry costs 3 multiply-adds per texel; score and
    entry travel as one int32 key 4*score + k, whose minimum picks the first nearest entry
    without boolean masks (torch's CPU where/masked_fill are ~10x slower than arithmetic).
    """
    x8 = 8 * x                                                     # (3, B, 16)
    key = None
    for k, p in enumerate(palette(q0, q1)):
        p = p[..., None]                                           # (3, B, 1)
        dot8 = torch.mul(x8[0], p[0]).addcmul_(x8[1], p[1]).addcmul_(x8[2], p[2])  # (B, 16)
        key_k = (4 * (p * p).sum(0) + k) - dot8                    # (B, 16) |key| < 2**22
        key = key_k if key is None else torch.minimum(key, key_k)
    idx = key & 3                                                  # (B, 16)
    err = (x * x).sum(dim=(0, 2)) + (key >> 2).sum(dim=1)         # (B,) exact
    return idx, err.to(torch.int32)


def least_squares_endpoints(x: torch.Tensor, idx: torch.Tensor, q0: torch.Tensor,
                            q1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Endpoints minimising sum |3x - a*e0 - b*e1|^2 for the given indices, quantised to 565.

    x (3,B,16), idx (B,16) line indices j, q0/q1 (3,B); a = 3 - j, b = j. All sums are exact
    int32 and quantisation is an integer rounding of num/det, so no float enters. Where the
    system is singular (every texel on one index), the current endpoints are kept.
    """
    b = idx                                                        # (B, 16)
    a = 3 - b
    aa, bb, ab = (a * a).sum(1), (b * b).sum(1), (a * b).sum(1)   # (B,)
    ax = 3 * (a * x).sum(2)                                        # (3, B)
    bx = 3 * (b * x).sum(2)                                        # (3, B)
    det = aa * bb - ab * ab                                        # (B,) >= 0 (Cauchy-Schwarz)
    num0 = bb * ax - ab * bx                                       # (3, B) e0 = num0 / det
    num1 = aa * bx - ab * ax                                       # (3, B) e1 = num1 / det
    ok = det > 0
    safe = torch.where(ok, det, torch.ones_like(det))              # (B,)
    levels = _levels(x.device)                                     # (3, 1)

    def quantise(num: torch.Tensor) -> torch.Tensor:
        # round(num / det * levels / 255) with num clamped to [0, 255 det]: < 2**31 in int32.
        num = torch.minimum(num.clamp_min(0), 255 * safe)
        return (2 * num * levels + 255 * safe) // (2 * 255 * safe)

    return torch.where(ok, quantise(num0), q0), torch.where(ok, quantise(num1), q1)


def single_colour_endpoints(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(3,B,16) int -> (3,B) 565 endpoint pair whose 2/3 interpolant best matches the
    rounded block mean."""
    mean = (x.sum(dim=2) + TEXELS // 2) // TEXELS                 # (3, B) in 0..255
    table = SINGLE_COLOUR_TABLE.to(x.device)                       # (3, 256, 2)
    pairs = torch.stack([table[c][mean[c].long()] for c in range(3)])  # (3, B, 2)
    return pairs[..., 0], pairs[..., 1]


def _keep_better(state: tuple, candidate: tuple) -> tuple:
    """Per block, the (q0, q1, idx, err) with the smaller error; ties keep `state`."""
    q0, q1, idx, err = state
    c0, c1, cidx, cerr = candidate
    better = cerr < err                                            # (B,)
    # Indices blend arithmetically: (B, 16) boolean selects are slow on the CPU.
    pick = better.to(torch.int32)[:, None]                         # (B, 1) 0 or 1
    return (torch.where(better, c0, q0), torch.where(better, c1, q1),
            idx + pick * (cidx - idx), torch.where(better, cerr, err))


def pack_blocks(q0: torch.Tensor, q1: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Order endpoints for 4-colour mode and pack: (3,B), (3,B), (B,16) line indices ->
    (B, 2) int32 little-endian words [color0 | color1 << 16, BC1 indices (texel i in bits
    2i, 2i+1)]."""
    c0, c1 = pack565(q0).long(), pack565(q1).long()                # (B,)
    swap = c0 < c1
    # Swapping the endpoints reverses the line (j -> 3 - j); the palette is symmetric under it
    # because the decoder truncates both interpolants the same way.
    flip = swap.to(torch.int32)[:, None]                           # (B, 1)
    idx = idx + flip * (3 - 2 * idx)
    c0, c1 = torch.where(swap, c1, c0), torch.where(swap, c0, c1)
    # Equal endpoints decode in 3-colour mode (index 3 = black): every texel must use index 0,
    # which is exact because all four palette entries were equal to color0 anyway.
    idx = idx * (c0 != c1).to(torch.int32)[:, None]
    idx = line_to_bc1_index(idx)                                   # (B, 16)
    shifts = 2 * torch.arange(TEXELS, device=idx.device)           # (16,)
    bits = (idx.long() << shifts).sum(dim=1)                       # (B,) disjoint bits
    words = torch.stack([c0 | (c1 << 16), bits], dim=1)            # (B, 2) int64 < 2**32
    return (words - ((words >> 31) << 32)).to(torch.int32)         # wrap to int32 bit pattern


def encode_blocks(blocks: torch.Tensor) -> torch.Tensor:
    """(B, 16, 3) uint8 texels (row-major in the block) -> (B, 2) int32 BC1 blocks."""
    x = blocks.to(torch.int32).permute(2, 0, 1).contiguous()       # (3, B, 16) colour planes
    axis = principal_axis(x)                                       # (3, B)
    hi, lo = extreme_pixels(x, axis)                               # (3, B) each
    q0, q1 = quantise_colour(hi), quantise_colour(lo)
    state = (q0, q1, *assign_indices(x, q0, q1))
    for _ in range(REFINE_ITERATIONS):
        r0, r1 = least_squares_endpoints(x, state[2], state[0], state[1])
        state = _keep_better(state, (r0, r1, *assign_indices(x, r0, r1)))
    s0, s1 = single_colour_endpoints(x)
    state = _keep_better(state, (s0, s1, *assign_indices(x, s0, s1)))
    return pack_blocks(state[0], state[1], state[2])


def frames_to_blocks(frames: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) -> (N * H/4 * W/4, 16, 3): blocks row-major per frame, texels row-major."""
    n, h, w, c = frames.shape
    blocks = frames.reshape(n, h // 4, 4, w // 4, 4, c)            # (N, by, py, bx, px, C)
    return blocks.permute(0, 1, 3, 2, 4, 5).reshape(-1, TEXELS, c)


def encode_frames(frames: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 validated frames -> (N, H/4 * W/4 * 8) uint8 BC1 payloads.

    Blocks are encoded CHUNK_BLOCKS at a time so the ~20 live (3, chunk, 16) int32 temporaries
    stay in cache; intra-op threads follow torch.get_num_threads().
    """
    n = frames.shape[0]
    blocks = frames_to_blocks(frames)                              # (B, 16, 3)
    words = torch.cat([encode_blocks(chunk) for chunk in blocks.split(CHUNK_BLOCKS)])  # (B, 2)
    # Byte view of int32 words: little-endian on every host torch supports (x86, ARM, CUDA).
    return words.contiguous().view(torch.uint8).reshape(n, -1)
