"""BC1 encode speed and quality: our CPU encoder beside etcpak, and the Triton kernel on a GPU.

    .venv/bin/python benchmarks/bench_texture.py [--threads N] [--batch 16] [--repeats 5]

Prints, for a batch of 128x128 frames (what the sidecar sends per step) and for the large
scikit-image sample photos: Mpix/s and PSNR (decoded by the independent texture2ddecoder) of
our encoder and of etcpak. With CUDA: Gpix/s of the Triton kernel and of the PyTorch reference
on the GPU, and the share of blocks identical between them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable

import etcpak
import numpy as np
import texture2ddecoder
import torch
from skimage import data

from npc_runtime.texture import encode

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
FRAME_SIDE = 128


def photo(name: str) -> np.ndarray:
    image = getattr(data, name)()
    return np.ascontiguousarray(image[: image.shape[0] // 4 * 4, : image.shape[1] // 4 * 4, :3])


def frame_batch(count: int) -> np.ndarray:
    """(count, 128, 128, 3): tiles cut from the sample photos, like a batch of NPC faces."""
    tiles = []
    for i in range(count):
        image = photo(PHOTOS[i % len(PHOTOS)])
        y = (i * 37) % (image.shape[0] - FRAME_SIDE)
        x = (i * 53) % (image.shape[1] - FRAME_SIDE)
        tiles.append(image[y:y + FRAME_SIDE, x:x + FRAME_SIDE])
    return np.stack(tiles)


def etcpak_encode(frames: np.ndarray) -> list[bytes]:
    n, h, w, _ = frames.shape
    rgba = np.concatenate([frames, np.full((n, h, w, 1), 255, np.uint8)], axis=-1)
    return [etcpak.compress_bc1(f.tobytes(), w, h) for f in rgba]   # etcpak reads RGBA


def psnr(frames: np.ndarray, payloads: list[bytes]) -> float:
    n, h, w, _ = frames.shape
    out = np.stack([np.frombuffer(texture2ddecoder.decode_bc1(p, w, h), np.uint8)
                    .reshape(h, w, 4)[..., [2, 1, 0]] for p in payloads])
    mse = np.mean((frames.astype(np.float64) - out) ** 2)
    return float(10 * np.log10(255.0 ** 2 / mse))


def timed(fn: Callable[[], list[bytes]], repeats: int) -> tuple[float, list[bytes]]:
    """Median seconds over `repeats` runs after one warm-up, and the last result."""
    result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def compare(label: str, frames: np.ndarray, repeats: int) -> None:
    pixels = frames.shape[0] * frames.shape[1] * frames.shape[2]
    ours_s, ours = timed(lambda: encode(frames, "bc1"), repeats)
    theirs_s, theirs = timed(lambda: etcpak_encode(frames), repeats)
    print(f"{label:<22} ours {pixels / ours_s / 1e6:7.2f} Mpix/s {psnr(frames, ours):6.2f} dB"
          f"   etcpak {pixels / theirs_s / 1e6:7.2f} Mpix/s {psnr(frames, theirs):6.2f} dB")


def bench_gpu(batch: int, repeats: int) -> None:
    import triton.testing

    from npc_runtime.kernels.bc1_encode import bc1_encode, bc1_encode_reference

    print(f"GPU: {torch.cuda.get_device_name()}")
    batches = {
        f"{FRAME_SIDE}x{FRAME_SIDE}": frame_batch(batch),
        "512x512": np.stack([photo("astronaut")] * batch),
    }
    for label, host in batches.items():
        frames = torch.from_numpy(host).cuda()                     # (batch, H, W, 3)
        pixels = frames.numel() // 3
        kernel_ms = triton.testing.do_bench(lambda f=frames: bc1_encode(f), rep=200 * repeats)
        reference_ms = triton.testing.do_bench(lambda f=frames: bc1_encode_reference(f),
                                               rep=200 * repeats)
        same = (bc1_encode(frames).view(-1, 8) == bc1_encode_reference(frames).view(-1, 8)
                ).all(dim=1).float().mean().item()
        print(f"{batch} x {label}: triton {pixels / kernel_ms / 1e6:7.2f} Gpix/s   "
              f"torch reference on GPU {pixels / reference_ms / 1e6:7.3f} Gpix/s   "
              f"identical blocks {100 * same:.3f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch intra-op threads for our CPU encoder")
    parser.add_argument("--batch", type=int, default=16, help="128x128 frames per batch")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # etcpak encodes each image on one thread; os.getloadavg shows whether others competed.
    print(f"CPU: torch {torch.__version__}, {torch.get_num_threads()} threads for ours, "
          f"load average {os.getloadavg()[0]:.1f}")
    compare(f"{args.batch} x {FRAME_SIDE}x{FRAME_SIDE} batch", frame_batch(args.batch),
            args.repeats)
    for name in PHOTOS:
        image = photo(name)
        compare(f"{name} {image.shape[1]}x{image.shape[0]}", image[None], args.repeats)
    if torch.cuda.is_available():
        bench_gpu(batch=64, repeats=args.repeats)
    else:
        print("GPU: none (CUDA unavailable) - Triton kernel not timed")


if __name__ == "__main__":
    main()
