"""Speed of the Triton kernels against what PyTorch offers for the same work.

    .venv/bin/python benchmarks/bench_kernels.py                     # GPU if present, else CPU
    .venv/bin/python benchmarks/bench_kernels.py --configs tiny base lpm-17b --dtype bf16

Shapes come from the model presets: one layer's attention of B sessions, each with its current
chunk (N = tokens_per_chunk queries) over [identity sink (--refs frames) | full window of W
chunks | the chunk itself], pages of one frame each, scattered at random over the pool (a
fragmented cache, as after many sessions came and went). A second "ragged" row gives every
session a different history length (sessions that just joined, others in steady state).

On a CUDA GPU, in one run:
- paged kernel vs ``F.scaled_dot_product_attention`` on the same K/V gathered into contiguous
  (B, H, L + N, D) tensors beforehand (gather not timed; ratio = SDPA time / kernel time, >= 1
  means paging costs nothing); for ragged lengths SDPA gets the padding mask it then needs;
- vs FlexAttention (``torch.compile``d) on the contiguous layout with the same mask as a
  BlockMask (keys past a session's history and before its chunk are masked);
- TFLOP/s of the kernel (4 * N * (L + N) * D * H per session: QK^T and PV) and the share of
  the GPU's dense fp16/bf16 tensor-core peak (from a table of known GPUs);
- KV append and fused AdaLN: GB/s moved vs the PyTorch references.
On CPU it prints the reference paths' timings (what `auto` runs there). BC1 encode Gpix/s is in
benchmarks/bench_texture.py.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from npc_runtime.config import PRESETS, preset
from npc_runtime.kernels.adaln import adaln_modulate_reference
from npc_runtime.model.attention import gather_pages, paged_attention_reference, write_pages

# Dense fp16/bf16 tensor-core peak, TFLOP/s, without sparsity (vendor datasheets). Matched by
# substring of torch.cuda.get_device_name(); first match wins, so specific names come first.
PEAK_TFLOPS = {
    "H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.4, "H200": 989.4, "GH200": 989.4,
    "B200": 2250.0, "A100": 312.0, "L40S": 362.1, "L40": 181.0, "L4": 121.0, "A10G": 70.0,
    "A10": 125.0, "RTX 4090": 165.2, "RTX 3090": 71.0, "V100": 125.0, "T4": 65.0,
}
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
DEFAULT_BATCHES = {"tiny": (1, 16, 64), "small": (1, 16, 64), "base": (1, 8, 32),
                   "lpm-17b": (1, 4)}


@dataclass
class Workload:
    """One layer's paged attention inputs for B sessions, plus the same data laid out dense."""
    q: torch.Tensor            # (B, N, H, D)
    k_new: torch.Tensor
    v_new: torch.Tensor
    k_pages: torch.Tensor      # (P, page, H, D)
    v_pages: torch.Tensor
    page_table: torch.Tensor   # (B, max_pages) int32
    cache_lens: torch.Tensor   # (B,) int32

    @property
    def flops(self) -> float:
        b, n, h, d = self.q.shape
        keys = (self.cache_lens.double() + n).sum().item()
        return 4.0 * n * keys * h * d

    def dense(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v as (B, H, S, D) with S = max_pages * page + N, and the (B, S) key mask."""
        k = torch.cat([gather_pages(self.k_pages, self.page_table), self.k_new], 1)
        v = torch.cat([gather_pages(self.v_pages, self.page_table), self.v_new], 1)
        length = k.shape[1] - self.q.shape[1]
        pos = torch.arange(k.shape[1], device=k.device)[None, :]
        keep = (pos < self.cache_lens[:, None]) | (pos >= length)
        return (self.q.transpose(1, 2).contiguous(), k.transpose(1, 2).contiguous(),
                v.transpose(1, 2).contiguous(), keep)


def make_workload(config: str, batch: int, refs: int, ragged: bool, dtype: torch.dtype,
                  device: str, seed: int = 0) -> Workload:
    cfg = preset(config)
    h, d, page = cfg.dit.heads, cfg.dit.head_dim, cfg.tokens_per_frame
    n = cfg.tokens_per_chunk
    max_pages = refs + cfg.stream.window_chunks * cfg.stream.chunk_frames
    gen = torch.Generator().manual_seed(seed)
    if ragged:      # from a session that just joined (sink only) to full windows
        pages = torch.randint(refs, max_pages + 1, (batch,), generator=gen)
    else:
        pages = torch.full((batch,), max_pages)
    num_pages = batch * max_pages + 8
    perm = torch.randperm(num_pages, generator=gen)
    table = torch.full((batch, max_pages), -1, dtype=torch.int32)
    for row in range(batch):
        count = int(pages[row])
        table[row, :count] = perm[row * max_pages:row * max_pages + count].int()

    def randn(*shape):
        return torch.randn(*shape, generator=gen).to(device, dtype)

    return Workload(randn(batch, n, h, d), randn(batch, n, h, d), randn(batch, n, h, d),
                    randn(num_pages, page, h, d), randn(num_pages, page, h, d),
                    table.to(device), (pages * page).int().to(device))


def timed(fn: Callable[[], object], device: str, repeats: int) -> float:
    """Median seconds per call."""
    if device == "cuda":
        from triton.testing import do_bench
        return do_bench(fn, warmup=25, rep=max(100, repeats * 10), return_mode="median") / 1e3
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_tflops(device: str) -> float | None:
    if device != "cuda":
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


# ------------------------------------------------------------------------------------ GPU
def bench_attention(w: Workload, repeats: int) -> dict[str, float]:
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    from npc_runtime.kernels.paged_attention import paged_attention
    args = (w.q, w.k_new, w.v_new, w.k_pages, w.v_pages, w.page_table, w.cache_lens)
    got = paged_attention(*args)
    want = paged_attention_reference(*args)
    err = (got.float() - want.float()).abs().max().item()

    q, k, v, keep = w.dense()
    b, h, n, _ = q.shape
    all_kept = bool(keep.all())
    mask = None if all_kept else keep[:, None, None, :]          # flash backend needs no mask
    device = q.device.type
    t_kernel = timed(lambda: paged_attention(*args), device, repeats)
    t_sdpa = timed(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask), device,
                   repeats)

    lens, history = w.cache_lens, k.shape[2] - n

    def mask_mod(b_idx, h_idx, q_idx, kv_idx):
        return (kv_idx < lens[b_idx]) | (kv_idx >= history)

    block_mask = create_block_mask(mask_mod, b, None, n, k.shape[2], device=device)
    flex = torch.compile(flex_attention, dynamic=False)
    flex(q, k, v, block_mask=block_mask)                            # compile outside timing
    t_flex = timed(lambda: flex(q, k, v, block_mask=block_mask), device, repeats)
    return {"kernel": t_kernel, "sdpa": t_sdpa, "flex": t_flex, "max_err": err,
            "tflops": w.flops / t_kernel / 1e12}


def bench_small_kernels(w: Workload, repeats: int) -> list[str]:
    from npc_runtime.kernels.adaln import adaln_modulate
    from npc_runtime.kernels.kv_append import kv_append
    b, n, h, d = w.k_new.shape
    page, device = w.k_pages.shape[1], w.q.device
    # Append each session's chunk to fresh pages (the ring slot the commit pass writes).
    slots = (torch.randperm(w.k_pages.shape[0], device=device)[:b * n // page, None] * page
             + torch.arange(page, device=device)).view(b, n)
    nbytes = 2 * w.k_new.numel() * w.k_new.element_size()           # read + write
    dev = device.type
    t_k = timed(lambda: kv_append(w.k_pages, slots, w.k_new), dev, repeats)
    t_r = timed(lambda: write_pages(w.k_pages, slots, w.k_new), dev, repeats)
    lines = [f"    kv_append   {nbytes / t_k / 1e9:8.1f} GB/s  (reference {nbytes / t_r / 1e9:7.1f}"
             f" GB/s, x{t_r / t_k:.2f})"]
    x = w.q.reshape(b, -1, page, h * d)                              # (B, F, T, d) activations
    mod = torch.randn(b, x.shape[1], 1, 2 * h * d, device=device, dtype=x.dtype)
    shift, scale = mod.chunk(2, -1)
    nbytes = 2 * x.numel() * x.element_size()
    t_k = timed(lambda: adaln_modulate(x, shift, scale), dev, repeats)
    t_r = timed(lambda: adaln_modulate_reference(x, shift, scale), dev, repeats)
    lines.append(f"    adaln       {nbytes / t_k / 1e9:8.1f} GB/s  (eager reference "
                 f"{nbytes / t_r / 1e9:7.1f} GB/s, x{t_r / t_k:.2f})")
    return lines


def run_kernels(args, device: str) -> None:
    peak = peak_tflops(device)
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU, Triton interpreter " \
        "(smoke run of this script: timings mean nothing)"
    print(f"device: {name}  torch {torch.__version__}  dtype {args.dtype}"
          f"  peak {peak or 'unknown'} TFLOP/s (dense fp16/bf16)")
    print(f"{'config':<8} {'B':>3} {'lens':<7} {'kernel ms':>9} {'SDPA ms':>8} {'ratio':>6} "
          f"{'flex ms':>8} {'ratio':>6} {'TFLOP/s':>8} {'% peak':>7} {'max err':>8}")
    for config in args.configs:
        for batch in args.batches or DEFAULT_BATCHES.get(config, (1, 8)):
            for ragged in (False, True):
                w = make_workload(config, batch, args.refs, ragged, DTYPES[args.dtype], device)
                r = bench_attention(w, args.repeats)
                share = f"{100 * r['tflops'] / peak:6.1f}%" if peak else "    n/a"
                print(f"{config:<8} {batch:>3} {'ragged' if ragged else 'full':<7} "
                      f"{r['kernel'] * 1e3:9.3f} {r['sdpa'] * 1e3:8.3f} "
                      f"{r['sdpa'] / r['kernel']:6.2f} {r['flex'] * 1e3:8.3f} "
                      f"{r['flex'] / r['kernel']:6.2f} {r['tflops']:8.1f} {share} "
                      f"{r['max_err']:8.1e}")
            print("\n".join(bench_small_kernels(w, args.repeats)))


# ------------------------------------------------------------------------------------ CPU
def run_cpu(args) -> None:
    print(f"device: CPU ({torch.get_num_threads()} threads), torch {torch.__version__}: "
          f"reference paths (NPC_RUNTIME_KERNELS=auto runs these on CPU); fp32")
    print(f"{'config':<8} {'B':>3} {'lens':<7} {'attention ms':>12} {'GFLOP/s':>8} "
          f"{'append ms':>9} {'adaln ms':>9}")
    for config in args.configs:
        for batch in args.batches or (1, 4):
            for ragged in (False, True):
                w = make_workload(config, batch, args.refs, ragged, torch.float32, "cpu")
                args7 = (w.q, w.k_new, w.v_new, w.k_pages, w.v_pages, w.page_table,
                         w.cache_lens)
                t_attn = timed(lambda: paged_attention_reference(*args7), "cpu", args.repeats)
                b, n, h, d = w.k_new.shape
                page = w.k_pages.shape[1]
                slots = (torch.arange(b * n // page)[:, None] * page
                         + torch.arange(page)).view(b, n)
                t_app = timed(lambda: write_pages(w.k_pages, slots, w.k_new), "cpu",
                              args.repeats)
                x = w.q.reshape(b, -1, page, h * d)
                shift, scale = torch.randn(b, x.shape[1], 1, 2 * h * d).chunk(2, -1)
                t_ln = timed(lambda: adaln_modulate_reference(x, shift, scale), "cpu",
                             args.repeats)
                print(f"{config:<8} {batch:>3} {'ragged' if ragged else 'full':<7} "
                      f"{t_attn * 1e3:12.2f} {w.flops / t_attn / 1e9:8.1f} "
                      f"{t_app * 1e3:9.3f} {t_ln * 1e3:9.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", choices=sorted(PRESETS), default=None)
    parser.add_argument("--batches", nargs="+", type=int, default=None)
    parser.add_argument("--refs", type=int, default=2, help="identity sink frames per session")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument("--kernels-on-cpu", action="store_true",
                        help="run the GPU table on CPU under TRITON_INTERPRET=1 (set in the "
                             "environment): checks this script, its timings mean nothing")
    args = parser.parse_args()
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if args.configs is None:
        args.configs = ["tiny", "base", "lpm-17b"] if cuda else ["tiny"]
    if cuda:
        run_kernels(args, "cuda")
    elif args.kernels_on_cpu:
        run_kernels(args, "cpu")
    else:
        run_cpu(args)


if __name__ == "__main__":
    main()
