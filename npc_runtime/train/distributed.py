"""torch.distributed plumbing: one process per device under torchrun, or a plain single process.

`Dist.from_env()` reads torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR...),
initialises the process group (NCCL on CUDA, gloo on CPU) and picks the device. Stages wrap
their trainable module with `dist.wrap` (DistributedDataParallel when world > 1) so gradients
are averaged across ranks; only rank 0 writes checkpoints, logs and plots.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as tdist
from torch import nn


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @classmethod
    def from_env(cls, device: str = "auto") -> "Dist":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dev = torch.device(device)
        if dev.type == "cuda":
            dev = torch.device("cuda", local)
            torch.cuda.set_device(dev)
        if world > 1 and not tdist.is_initialized():
            tdist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        return cls(rank, world, local, dev)

    def wrap(self, module: nn.Module) -> nn.Module:
        if not self.enabled:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids)

    def barrier(self) -> None:
        if self.enabled:
            tdist.barrier()

    def mean(self, value: float) -> float:
        """Average a scalar over ranks (for logging)."""
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        tdist.all_reduce(t)
        return float(t.item()) / self.world

    def replica_spread(self, module: nn.Module) -> float:
        """Max |difference| of any parameter between this rank and rank 0 (0.0 single process).

        DDP keeps replicas identical by construction; this checks it for real."""
        if not self.enabled:
            return 0.0
        flat = torch.cat([p.detach().reshape(-1).double() for p in module.parameters()])
        ref = flat.clone()
        tdist.broadcast(ref, src=0)
        spread = (flat - ref).abs().max().reshape(1)
        tdist.all_reduce(spread, op=tdist.ReduceOp.MAX)
        return float(spread.item())

    def close(self) -> None:
        if self.enabled and tdist.is_initialized():
            tdist.destroy_process_group()


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module
