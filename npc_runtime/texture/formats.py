"""Texture formats of the Perform stream and the per-batch entry points the server calls.

``encode(frames, fmt)`` turns a batch of RGB frames into one payload per frame; BC1 runs the
Triton kernel for CUDA tensors and the vectorised PyTorch encoder otherwise (the choice and its
override live in ``npc_runtime.kernels.dispatch``). ``payload_size`` tells the server what to
announce and check; ``decode`` turns a payload back into RGB (reference client, tests).
"""

from __future__ import annotations

import enum

import numpy as np
import torch

from npc_runtime.kernels.dispatch import use_triton
from npc_runtime.texture import bc1, bc1_decode, rgba8


class TextureFormat(enum.Enum):
    """Wire formats. Values are the lower-case names used in configs and logs."""

    BC1 = "bc1"      # DXT1, 4 bits/pixel, opaque; Unity TextureFormat.DXT1, Unreal PF_DXT1
    RGBA8 = "rgba8"  # raw, 32 bits/pixel, alpha 255; Unity TextureFormat.RGBA32, Unreal PF_R8G8B8A8


def _check_size(fmt: TextureFormat, width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ValueError(f"{fmt.value}: frame size must be positive, got {width}x{height}")
    if fmt is TextureFormat.BC1 and (width % bc1.BLOCK_SIDE or height % bc1.BLOCK_SIDE):
        raise ValueError(f"bc1: frame size must be a multiple of {bc1.BLOCK_SIDE} in both "
                         f"directions, got {width}x{height}")


def payload_size(fmt: TextureFormat, width: int, height: int) -> int:
    """Bytes of one encoded width x height frame. ValueError on sizes the format cannot hold."""
    fmt = TextureFormat(fmt)
    _check_size(fmt, width, height)
    if fmt is TextureFormat.BC1:
        return (width // bc1.BLOCK_SIDE) * (height // bc1.BLOCK_SIDE) * bc1.BLOCK_BYTES
    return width * height * rgba8.BYTES_PER_PIXEL


def as_frame_batch(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) or (H, W, 3) uint8 array/tensor -> contiguous (N, H, W, 3) uint8 tensor on
    the same device. ValueError on any other type, dtype or shape."""
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    if not isinstance(frames, torch.Tensor):
        raise ValueError("frames must be a numpy array or torch tensor, got "
                         f"{type(frames).__name__}")
    if frames.dtype != torch.uint8:
        raise ValueError(f"frames must be uint8 RGB, got dtype {frames.dtype}")
    if frames.dim() == 3:
        frames = frames[None]
    if frames.dim() != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must have shape (N, H, W, 3) or (H, W, 3), got "
                         f"{tuple(frames.shape)}")
    return frames.contiguous()


def encode_bc1(frames: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, H*W/2) uint8 BC1 payloads: Triton or reference (see dispatch)."""
    if use_triton(frames.device):
        # Imported here: triton is absent on some platforms and costs ~1 s to import.
        from npc_runtime.kernels.bc1_encode import bc1_encode
        return bc1_encode(frames)
    return bc1.encode_frames(frames)


def encode(frames: np.ndarray | torch.Tensor, fmt: TextureFormat | str) -> list[bytes]:
    """Encode a batch of RGB frames, one payload per frame, in batch order.

    frames: (N, H, W, 3) or (H, W, 3) uint8, numpy or torch (a CUDA tensor encodes on the GPU).
    Raises ValueError on a wrong type, dtype, shape, or (BC1) a size not a multiple of 4.
    """
    fmt = TextureFormat(fmt)
    batch = as_frame_batch(frames)                                 # (N, H, W, 3)
    n, h, w, _ = batch.shape
    _check_size(fmt, w, h)
    if n == 0:
        return []
    payloads = encode_bc1(batch) if fmt is TextureFormat.BC1 else rgba8.encode_rgba8(batch)
    host = payloads.cpu().numpy()                                  # (N, payload_size) one copy
    return [host[i].tobytes() for i in range(n)]


def decode(payload: bytes, fmt: TextureFormat | str, width: int, height: int) -> np.ndarray:
    """One payload -> (height, width, 3) uint8 RGB. ValueError on a size/length mismatch."""
    fmt = TextureFormat(fmt)
    _check_size(fmt, width, height)
    if fmt is TextureFormat.BC1:
        return bc1_decode.decode_bc1(payload, width, height)
    return rgba8.decode_rgba8(payload, width, height)
