"""The multi-process path: torchrun, 2 processes, DDP over gloo; replicas stay identical."""

import json
import os
import subprocess
import sys

import torch
from safetensors.torch import load_file


def test_torchrun_two_processes_keep_replicas_identical(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "npc_runtime", "train", "base", "--smoke", "--steps", "3", "--out", str(out),
           "--threads", "1", "--device", "cpu", "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["step"] == 3
    assert summary["replica_max_param_diff"] == 0.0
    state = torch.load(out / "checkpoints/step-0000003.pt", weights_only=False)
    assert state["step"] == 3
    # The ranks drew different batches (rank is part of every data seed): the averaged
    # gradient differs from a single process's, so the weights do too.
    single = tmp_path / "single"
    from npc_runtime.train import TrainConfig, smoke, stage_class
    from npc_runtime.train.loop import train
    cfg = smoke(TrainConfig(stage="base")).replace(steps=3, threads=1, device="cpu")
    train(cfg, single, stage_class("base"), progress=False)
    a = load_file(str(out / "export/model.safetensors"))
    b = load_file(str(single / "export/model.safetensors"))
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("dit."))
