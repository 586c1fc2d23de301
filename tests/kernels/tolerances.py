"""Where kernel tests run and how close a kernel must be to its PyTorch reference there.

- Triton interpreter (CPU, ``TRITON_INTERPRET=1``): tensors are fp32 and ``tl.dot`` is a numpy
  fp32 matmul, so the kernels differ from the references only in summation order:
  atol = rtol = 2e-5 (observed: <= 1e-6).
- CUDA GPU (compiled): fp16 and bf16 inputs with fp32 accumulation, compared with the reference
  run in fp32 on the same (already rounded) inputs. The kernel rounds P to the input dtype for
  the P @ V matmul (as FlashAttention does): ~2^-11 relative per term in fp16, 2^-8 in bf16.
  fp32 inputs use IEEE fp32 dots unless ``torch.set_float32_matmul_precision`` allows TF32
  (then 10-bit mantissas: use the fp16 row). These GPU bounds are derived, not yet measured:
  no GPU was available when they were written (see docs/kernels.md).
"""

from __future__ import annotations

import os

import torch

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
DEVICE = "cpu" if INTERPRETED or not torch.cuda.is_available() else "cuda"
DTYPES = [torch.float32] if INTERPRETED else [torch.float16, torch.bfloat16, torch.float32]

_GPU = {torch.float16: 5e-3, torch.bfloat16: 3e-2, torch.float32: 2e-4}


def tolerance(dtype: torch.dtype) -> dict[str, float]:
    """kwargs for torch.testing.assert_close(kernel, reference_in_fp32)."""
    tol = 2e-5 if INTERPRETED else _GPU[dtype]
    return {"atol": tol, "rtol": tol}
