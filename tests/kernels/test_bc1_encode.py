"""Triton BC1 kernel against its PyTorch reference, plus the NPC_RUNTIME_KERNELS dispatch.

Without a GPU the kernel runs in the Triton interpreter, which must be chosen before triton is
imported. There the kernel's float32 steps are plain IEEE numpy operations in the reference's
order, so bytes must be identical. On a GPU, device math may flip a near-tie between two
pixels' projections: there >= 99.5% of blocks must be identical and PSNR within 0.05 dB.
Shapes stay small: the interpreter runs ~250 blocks per second.
"""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before any triton import

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from skimage import data  # noqa: E402

from npc_runtime import texture  # noqa: E402
from npc_runtime.kernels import dispatch  # noqa: E402
from npc_runtime.kernels.bc1_encode import bc1_encode, bc1_encode_reference  # noqa: E402
from npc_runtime.texture import bc1, bc1_decode  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"


def psnr(frames: torch.Tensor, payloads: torch.Tensor) -> float:
    n, h, w, _ = frames.shape
    src = frames.cpu().numpy().astype(np.float64)
    out = np.stack([bc1_decode.decode_bc1(p.tobytes(), w, h) for p in payloads.cpu().numpy()])
    return float(10 * np.log10(255.0 ** 2 / np.mean((src - out) ** 2)))


def assert_matches_reference(frames: torch.Tensor, block: int = 32) -> None:
    frames = frames.to(DEVICE)
    got, want = bc1_encode(frames, block=block), bc1_encode_reference(frames)
    assert got.shape == want.shape == (frames.shape[0], frames.shape[1] * frames.shape[2] // 2)
    if INTERPRETED:
        assert torch.equal(got, want)
        return
    same = (got.view(-1, 8) == want.view(-1, 8)).all(dim=1).float().mean().item()
    assert same >= 0.995
    assert abs(psnr(frames, got) - psnr(frames, want)) <= 0.05


@settings(max_examples=8, deadline=None)
@given(n=st.integers(1, 3), by=st.integers(1, 4), bx=st.integers(1, 5),
       block=st.sampled_from([16, 32]), seed=st.integers(0, 2**31 - 1))
def test_random_frames_odd_batches_and_sizes(n, by, bx, block, seed):
    g = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 256, (n, 4 * by, 4 * bx, 3), dtype=torch.uint8, generator=g)
    assert_matches_reference(frames, block=block)


@pytest.mark.parametrize("name", ["astronaut", "chelsea"])
def test_photo_crops_with_masked_tail(name):
    # 3 frames of 20x28 = 105 blocks: four programs of 32, the last one mostly masked.
    image = torch.from_numpy(getattr(data, name)())[96:116, 200:228, :3]
    frames = torch.stack([image, image.flip(0), image.flip(1)]).contiguous()
    assert_matches_reference(frames)


def test_flat_near_flat_two_colour_and_gradient_blocks():
    frames = torch.zeros(6, 8, 8, 3, dtype=torch.uint8)
    frames[1] = torch.tensor([13, 200, 77], dtype=torch.uint8)
    frames[2, :, :5] = 255
    frames[3] = (torch.arange(8) * 33).to(torch.uint8)[:, None, None]
    frames[4, ::2] = torch.tensor([240, 10, 10], dtype=torch.uint8)
    # Near-flat: half of each block one level up, so the block mean sits exactly halfway and
    # the single-colour candidate (from the rounded mean) decides the block.
    frames[5] = torch.tensor([91, 141, 60], dtype=torch.uint8)
    frames[5, 2::4] += 1
    frames[5, 3::4] += 1
    assert_matches_reference(frames)


def test_wrapper_rejects_bad_inputs():
    with pytest.raises(ValueError, match="uint8"):
        bc1_encode(torch.zeros(1, 4, 4, 3, dtype=torch.float32, device=DEVICE))
    with pytest.raises(ValueError, match="multiple of 4"):
        bc1_encode(torch.zeros(1, 4, 6, 3, dtype=torch.uint8, device=DEVICE))
    with pytest.raises(ValueError, match="power of two"):
        bc1_encode(torch.zeros(1, 4, 4, 3, dtype=torch.uint8, device=DEVICE), block=48)


def test_dispatch_modes(monkeypatch):
    monkeypatch.setenv(dispatch.ENV_VAR, "reference")
    assert not dispatch.use_triton("cuda")
    monkeypatch.setenv(dispatch.ENV_VAR, "triton")
    assert dispatch.use_triton("cpu")
    monkeypatch.setenv(dispatch.ENV_VAR, "auto")
    assert not dispatch.use_triton("cpu")
    assert dispatch.use_triton("cuda") == dispatch.triton_available()
    monkeypatch.setenv(dispatch.ENV_VAR, "fastest")
    with pytest.raises(ValueError, match="reference"):
        dispatch.use_triton("cpu")


def test_texture_encode_follows_the_switch(monkeypatch):
    """Forced modes really route npc_runtime.texture.encode: the other path is booby-trapped."""
    frames = torch.randint(0, 256, (2, 8, 12, 3), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(3)).to(DEVICE)
    want = [p.tobytes() for p in bc1_encode_reference(frames).cpu().numpy()]

    def trap(*_args, **_kwargs):
        raise AssertionError("wrong path taken")

    monkeypatch.setenv(dispatch.ENV_VAR, "triton")
    with monkeypatch.context() as m:
        m.setattr(bc1, "encode_frames", trap)
        got = texture.encode(frames, "bc1")
    if INTERPRETED:
        assert got == want
    monkeypatch.setenv(dispatch.ENV_VAR, "reference")
    with monkeypatch.context() as m:
        m.setattr("npc_runtime.kernels.bc1_encode.bc1_encode", trap)
        assert texture.encode(frames, "bc1") == want


AOT_SCRIPT = """
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from npc_runtime.kernels.bc1_encode import DEFAULT_BLOCK, LAUNCH_OPTIONS, bc1_encode_kernel
from npc_runtime.texture import bc1
sig = {"frames_ptr": "*u8", "table_ptr": "*i32", "out_ptr": "*i32", "n_blocks": "i32",
       "blocks_x": "i32", "blocks_per_frame": "i32", "height": "i32", "width": "i32",
       "POWER_ITERATIONS": "constexpr", "REFINE_ITERATIONS": "constexpr", "BLOCK": "constexpr"}
consts = {"POWER_ITERATIONS": bc1.POWER_ITERATIONS, "REFINE_ITERATIONS": bc1.REFINE_ITERATIONS,
          "BLOCK": DEFAULT_BLOCK}
kernel = triton.compile(ASTSource(fn=bc1_encode_kernel, signature=sig, constexprs=consts),
                        target=GPUTarget("cuda", 90, 32),
                        options=LAUNCH_OPTIONS)
ptx = kernel.asm["ptx"]
print("fma", ptx.count("fma.rn.f32"), "div_rn", ptx.count("div.rn.f32"),
      "cubin", len(kernel.asm["cubin"]))
"""


def test_kernel_compiles_for_hopper_with_reference_rounding():
    """The interpreter never compiles; this does (for sm_90, no GPU needed) in a fresh process
    without TRITON_INTERPRET, and checks the float32 path keeps the reference's rounding: no
    fused multiply-adds, IEEE division."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    run = subprocess.run([sys.executable, "-c", AOT_SCRIPT], env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    fields = run.stdout.split()
    counts = dict(zip(fields[::2], map(int, fields[1::2])))
    assert counts["fma"] == 0 and counts["div_rn"] > 0 and counts["cubin"] > 0
