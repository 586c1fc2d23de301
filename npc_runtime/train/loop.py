"""The training loop shared by all stages: schedule, checkpoints, exact resume, logs and plots.

A `Stage` owns its models, optimisers and losses; the loop owns time. Per step it sets the
learning rate, asks the stage for one `train_step(step)`, logs, evaluates and checkpoints.

Exact resume: every random draw of a step comes from generators seeded by (seed, step, rank)
(`Run.generator`, `Sampler.rng`), so the only state is the weights, the optimiser moments and
the step. A checkpoint stores those (plus the global RNG states and the loss history, for
completeness); resuming from step k and running to N gives the same weights as running 0..N
straight (tests/train/test_resume.py).

Layout of a run directory:
    train.yaml              the resolved TrainConfig          model.yaml   the ModelConfig
    checkpoints/step-*.pt   resumable state (last `keep_checkpoints`)   checkpoints/latest
    metrics.jsonl           one JSON line per log/eval step     loss.png   curves
    samples/                stage-specific images              export/     the stage's product
    summary.json            written at the end
"""

from __future__ import annotations

import json
import logging
import math
import random
import signal
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from npc_runtime.config import ModelConfig, save_config
from npc_runtime.train.config import TrainConfig, save_train_config, train_config_to_dict
from npc_runtime.train import data as data_module
from npc_runtime.train.data import Sampler
from npc_runtime.train.distributed import Dist

log = logging.getLogger(__name__)
CKPT_DIR, LATEST = "checkpoints", "latest"


@dataclass
class Run:
    """What a stage sees of the run: configs, devices, output paths, seeded randomness."""
    cfg: TrainConfig
    model_cfg: ModelConfig
    dist: Dist
    out: Path
    sampler: Sampler
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def device(self) -> torch.device:
        return self.dist.device

    def generator(self, step: int, salt: int = 0) -> torch.Generator:
        """A CPU generator for step `step` on this rank: the same after any resume."""
        seed = hash((self.cfg.seed, step, self.dist.rank, salt)) & 0x7FFF_FFFF_FFFF_FFFF
        return torch.Generator().manual_seed(seed)

    def randn(self, shape, step: int, salt: int = 0) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator(step, salt)).to(self.device)

    def rand(self, shape, step: int, salt: int = 0) -> torch.Tensor:
        return torch.rand(shape, generator=self.generator(step, salt)).to(self.device)


class Stage(ABC):
    """One training stage. Subclasses build models in __init__ and fill `modules`/`optimizers`
    (raw modules, not DDP wrappers: those are what checkpoints hold)."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.modules: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.step = 0                   # steps completed (kept current by the loop)

    @abstractmethod
    def train_step(self, step: int) -> dict[str, float]:
        """One optimisation step (forward, backward, optimiser steps) -> scalars to log."""

    def evaluate(self, step: int) -> dict[str, float]:
        return {}

    @abstractmethod
    def export(self, directory: Path) -> dict[str, Any]:
        """Write the stage's product (a model checkpoint dir) and return its summary."""

    # Helpers for subclasses --------------------------------------------------------------
    def optimizer(self, params, lr: float | None = None) -> torch.optim.Optimizer:
        cfg = self.run.cfg
        return torch.optim.AdamW([p for p in params if p.requires_grad], lr=lr or cfg.lr,
                                 betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)

    def apply(self, name: str, loss: torch.Tensor, params) -> float:
        """Backward + clip + step of optimiser `name`; -> gradient norm."""
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for p in params if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(params, self.run.cfg.grad_clip
                                              if self.run.cfg.grad_clip > 0 else math.inf)
        opt.step()
        return float(norm)


# ------------------------------------------------------------------------------- schedule
def lr_factor(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to min_lr_ratio at the last step."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


# ------------------------------------------------------------------------------- checkpoints
def checkpoint_state(stage: Stage, step: int) -> dict[str, Any]:
    return {
        "step": step,
        "modules": {k: m.state_dict() for k, m in stage.modules.items()},
        "optimizers": {k: o.state_dict() for k, o in stage.optimizers.items()},
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                "python": random.getstate(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        "data_cursor": {"step": step, "note": "batches are a pure function of (seed, step)",
                        "world": data_module._WORLD_AT_IMPORT},
        "history": stage.run.history,
        "train_config": train_config_to_dict(stage.run.cfg),
    }


def save_state(run: Run, stage: Stage, step: int) -> Path:
    ckdir = run.out / CKPT_DIR
    ckdir.mkdir(parents=True, exist_ok=True)
    path = ckdir / f"step-{step:07d}.pt"
    tmp = path.with_suffix(".tmp")
    torch.save(checkpoint_state(stage, step), tmp)
    tmp.replace(path)                                   # never a half-written checkpoint
    (ckdir / LATEST).write_text(path.name)
    for old in sorted(ckdir.glob("step-*.pt"))[:-max(1, run.cfg.keep_checkpoints)]:
        old.unlink()
    return path


def latest_checkpoint(out: Path) -> Path | None:
    pointer = out / CKPT_DIR / LATEST
    if pointer.is_file() and (out / CKPT_DIR / pointer.read_text().strip()).is_file():
        return out / CKPT_DIR / pointer.read_text().strip()
    found = sorted((out / CKPT_DIR).glob("step-*.pt"))
    return found[-1] if found else None


def load_state(path: Path, stage: Stage) -> int:
    state = torch.load(path, map_location="cpu", weights_only=False)
    for k, m in stage.modules.items():
        m.load_state_dict(state["modules"][k])
    for k, o in stage.optimizers.items():
        o.load_state_dict(state["optimizers"][k])
    rng = state["rng"]
    torch.set_rng_state(rng["torch"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])
    if rng.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    stage.run.history[:] = state["history"]
    world = state.get("data_cursor", {}).get("world")
    if world != data_module._WORLD_AT_IMPORT:
        log.warning("%s was written under world generator %s, this process has %s: the data "
                    "after the resume point differs from an uninterrupted run's", path, world,
                    data_module._WORLD_AT_IMPORT)
    stage.step = int(state["step"])
    return stage.step


# ------------------------------------------------------------------------------- plots
def plot_history(history: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for h in history for k in h if k not in ("step", "time_s", "lr")})
    if not keys:
        return
    cols = min(3, len(keys))
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        pts = [(h["step"], h[key]) for h in history if key in h and np.isfinite(h[key])]
        if not pts:
            continue
        xs, ys = zip(*pts)
        ax.plot(xs, ys, lw=1, marker="." if len(xs) < 50 else None)
        if key.startswith("loss") and min(ys) > 0:
            ax.set_yscale("log")
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ------------------------------------------------------------------------------- the loop
class _Interrupt:
    """SIGTERM / SIGINT -> finish the current step, checkpoint, exit cleanly."""

    def __init__(self) -> None:
        self.requested = False
        self._old = {}

    def __enter__(self) -> "_Interrupt":
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:          # not the main thread (e.g. inside a test runner)
                pass
        return self

    def _handle(self, *_: Any) -> None:
        self.requested = True

    def __exit__(self, *_: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _make_run(cfg: TrainConfig, out: Path, dist: Dist) -> Run:
    model_cfg = cfg.model_config()
    max_pos = cfg.base.max_position if cfg.stage == "base" else 4096
    return Run(cfg, model_cfg, dist, out, Sampler(cfg.data, model_cfg, cfg.seed, max_pos))


def export_latest(cfg: TrainConfig, out: Path, stage_cls: type[Stage], dest: Path
                  ) -> dict[str, Any]:
    """Rebuild a run's stage from its latest checkpoint and export it to `dest` (1 process)."""
    dist = Dist(device=torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available()
                                    else ("cpu" if cfg.device == "auto" else cfg.device)))
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    stage = stage_cls(_make_run(cfg, out, dist))
    ck = latest_checkpoint(out)
    if ck is None:
        raise FileNotFoundError(f"no checkpoint in {out}")
    step = load_state(ck, stage)
    info = stage.export(dest)
    info["exported_from"] = f"{ck} (step {step} of {cfg.steps})"
    log.info("exported %s step %d -> %s", out, step, dest)
    return info


def train(cfg: TrainConfig, out: str | Path, stage_cls: type[Stage], resume: bool = False,
          stop_at: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) a stage to cfg.steps (or to `stop_at`, for tests); -> summary."""
    out = Path(out)
    dist = Dist.from_env(cfg.device)
    if cfg.threads > 0 and dist.device.type == "cpu":
        torch.set_num_threads(cfg.threads)
    model_cfg = cfg.model_config()
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    random.seed(cfg.seed)
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "samples").mkdir(exist_ok=True)
        save_train_config(cfg, out / "train.yaml")
        save_config(model_cfg, out / "model.yaml")
    dist.barrier()
    run = _make_run(cfg, out, dist)
    stage = stage_cls(run)
    step = 0
    if resume:
        ck = latest_checkpoint(out)
        if ck is None:
            log.warning("--resume: no checkpoint in %s, starting from step 0", out)
        else:
            step = load_state(ck, stage)
            log.info("resumed %s from %s (step %d)", cfg.stage, ck, step)
    end = cfg.steps if stop_at is None else min(stop_at, cfg.steps)
    t_start, t_ckpt = time.time(), time.time()
    elapsed0 = run.history[-1].get("time_s", 0.0) if run.history else 0.0
    bar = tqdm(total=end, initial=step, desc=f"train {cfg.stage}", unit="step",
               disable=not (progress and dist.main), dynamic_ncols=True)
    metrics_file = (out / "metrics.jsonl").open("a") if dist.main else None
    interrupted = False
    with _Interrupt() as interrupt:
        while step < end:
            lr = cfg.lr * lr_factor(cfg, step)
            for opt in stage.optimizers.values():
                for group in opt.param_groups:
                    group["lr"] = lr * group.get("lr_scale", 1.0)
            logs = stage.train_step(step)
            step += 1
            stage.step = step
            bar.update(1)
            record: dict[str, Any] = {}
            if step % cfg.log_every == 0 or step == end:
                record = {k: dist.mean(float(v)) for k, v in logs.items()}
                bar.set_postfix({k: f"{v:.4g}" for k, v in list(record.items())[:3]})
            if dist.main and (step % cfg.eval_every == 0 or step == end):
                record.update({f"eval_{k}": v for k, v in stage.evaluate(step).items()})
            if record and dist.main:
                record.update(step=step, lr=lr, time_s=elapsed0 + time.time() - t_start)
                run.history.append(record)
                metrics_file.write(json.dumps(record) + "\n")
                metrics_file.flush()
            if dist.enabled:             # all ranks stop at the same step (or DDP would hang)
                interrupt.requested = dist.mean(float(interrupt.requested)) > 0
            due = (step % cfg.ckpt_every_steps == 0 or step == end
                   or time.time() - t_ckpt > 60 * cfg.ckpt_every_minutes or interrupt.requested)
            if due and dist.main:
                path = save_state(run, stage, step)
                plot_history(run.history, out / "loss.png", f"{cfg.stage} ({model_cfg.name})")
                log.info("step %d: checkpoint %s", step, path.name)
            if due:
                t_ckpt = time.time()
            if interrupt.requested:
                interrupted = True
                log.warning("interrupted at step %d: checkpoint written; resume with --resume",
                            step)
                break
    bar.close()
    if metrics_file:
        metrics_file.close()
    summary: dict[str, Any] = {"stage": cfg.stage, "model": model_cfg.name, "step": step,
                               "world": data_module._WORLD_AT_IMPORT,
                               "steps": cfg.steps, "world_size": dist.world,
                               "train_seconds_this_process": time.time() - t_start,
                               "interrupted": interrupted}
    spread = max((dist.replica_spread(m) for m in stage.modules.values()), default=0.0)
    summary["replica_max_param_diff"] = spread
    if dist.main:
        summary["last"] = run.history[-1] if run.history else {}
        if step >= cfg.steps and not interrupted:
            summary["export"] = stage.export(out / "export")
        (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    dist.barrier()
    dist.close()
    return summary
