"""Compile the kernels for NVIDIA GPUs ahead of time, on any machine (no GPU needed).

The interpreter never compiles a kernel, so it cannot catch what only the compiler checks
(layouts, tl.dot operand types, shared-memory budgets). Run in a process *without*
TRITON_INTERPRET (``test_gpu_compile.py`` does so): prints one JSON line per compiled variant
with the instruction counts the test asserts on.

    TRITON_INTERPRET= .venv/bin/python -m tests.kernels.aot_compile
"""

from __future__ import annotations

import json
import re

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from npc_runtime.kernels import adaln, kv_append, paged_attention

SCALARS_FP32 = {"qk_scale", "eps"}


def signature(kernel, pointers: dict[str, str], constexprs: dict) -> dict[str, str]:
    """Kernel parameters -> triton types: pointers as given (default *fp), floats, i32 ints."""
    sig = {}
    for p in kernel.params:
        if p.name in constexprs:
            sig[p.name] = "constexpr"
        elif p.name.endswith("_ptr"):
            sig[p.name] = pointers.get(p.name, pointers["default"])
        else:
            sig[p.name] = "fp32" if p.name in SCALARS_FP32 else "i32"
    return sig


def compile_variant(name, kernel, pointers, constexprs, arch, num_warps, num_stages=2) -> dict:
    compiled = triton.compile(
        ASTSource(fn=kernel, signature=signature(kernel, pointers, constexprs),
                  constexprs=constexprs),
        target=GPUTarget("cuda", arch, 32),
        options={"num_warps": num_warps, "num_stages": num_stages})
    ptx = compiled.asm["ptx"]
    return {"name": name, "arch": arch, "shared": compiled.metadata.shared,
            "wgmma": ptx.count("wgmma.mma_async"), "mma_sync": ptx.count("mma.sync"),
            "local": len(re.findall(r"\.local\b", ptx)), "cubin": len(compiled.asm["cubin"])}


def variants():
    pa = paged_attention
    for arch, dtype, head_dim in ((90, "fp16", 64), (90, "bf16", 128), (80, "bf16", 128)):
        block_m, block_n, block_d, warps = pa._block_sizes(256, head_dim)
        yield compile_variant(
            f"paged_attention/{dtype}/d{head_dim}", pa._paged_attention_kernel,
            {"default": f"*{dtype}", "table_ptr": "*i32", "lens_ptr": "*i32"},
            {"PAGE_SIZE": 64, "BLOCK_M": block_m, "BLOCK_N": block_n, "BLOCK_D": block_d,
             "INPUT_PRECISION": "tf32"}, arch, warps)
    yield compile_variant("kv_append/bf16", kv_append._kv_append_kernel,
                          {"default": "*bf16", "slots_ptr": "*i64"},
                          {"BLOCK_T": 16, "BLOCK_E": 256}, 90, 4)
    for residual in (False, True):
        yield compile_variant(f"adaln/bf16/residual={residual}", adaln._adaln_kernel,
                              {"default": "*bf16"},
                              {"HAS_RESIDUAL": residual, "BLOCK_R": 8, "BLOCK_D": 512}, 90, 4)


if __name__ == "__main__":
    for result in variants():
        print(json.dumps(result), flush=True)
