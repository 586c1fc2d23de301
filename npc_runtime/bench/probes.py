"""Evaluator probes: a small CNN that reads the renderer's parameters back from one frame.

The probe is LPM-Bench-mini's stand-in for SyncNet and ArcFace: trained only on ground-truth
renders (training identity seeds), scored on renders of evaluation identities it never saw, it
reads every performance parameter (mouth, eyes, brows, pose) and every identity feature from a
single RGB frame of any resolution. Applied to a model's frames it says what the model drew.

Weights ship in the package (`probes.safetensors`, float16, ~1 MB) and are reproduced with
`npc-runtime world probes train`. Targets are z-scored with statistics stored beside the
weights, so outputs come back in the parameters' own units.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from npc_runtime.world.identity import (EVAL_IDENTITY_SEEDS, IDENTITY_FEATURES,
                                        TRAIN_IDENTITY_SEEDS, identity_vector, sample_identity)
from npc_runtime.world.performance import NUM_PERF, PERF_PARAMS, random_performance
from npc_runtime.world.render import render_frames

log = logging.getLogger(__name__)
TARGETS: tuple[str, ...] = PERF_PARAMS + IDENTITY_FEATURES
DEFAULT_PATH = "probes.safetensors"


@dataclass(frozen=True)
class ProbeConfig:
    # Two views of each frame: the face window (canvas coordinates x0, x1, y0, y1 in [-1, 1],
    # covering the face at every pose) at face_size, where mouth, eyes and brows are a few
    # pixels big, and the whole frame at global_size for pose, colours, clothes, background.
    face_window: tuple[float, float, float, float] = (-0.65, 0.65, -0.7, 0.6)
    face_size: int = 80
    global_size: int = 32
    face_channels: tuple[int, ...] = (24, 48, 64, 96)
    global_channels: tuple[int, ...] = (16, 32, 48)
    hidden: int = 192


@dataclass(frozen=True)
class ProbeTrainConfig:
    train_frames: int = 24_000
    test_frames: int = 1_500
    frames_per_identity: int = 6
    render_size: int = 128
    epochs: int = 16
    batch: int = 64
    lr: float = 2e-3
    seed: int = 0


def _stack(channels: tuple[int, ...]) -> nn.Sequential:
    layers, cin = [], 3
    for c in channels:  # each stage halves the resolution
        layers += [nn.Conv2d(cin, c, 3, stride=2, padding=1), nn.ReLU(),
                   nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU()]
        cin = c
    return nn.Sequential(*layers, nn.Flatten())


class ProbeNet(nn.Module):
    """(face (B, 3, F, F), whole (B, 3, G, G)) in [0, 1] -> (B, len(TARGETS)) z-scored."""

    def __init__(self, config: ProbeConfig = ProbeConfig()):
        super().__init__()
        self.config = config
        self.face = _stack(config.face_channels)
        self.whole = _stack(config.global_channels)
        face_side = config.face_size // 2 ** len(config.face_channels)
        n_face = config.face_channels[-1] * face_side ** 2
        n_whole = config.global_channels[-1] * (
            config.global_size // 2 ** len(config.global_channels)) ** 2
        # Flatten, not pool: gaze, pose and mouth are positions, pooling would discard them.
        self.head = nn.Sequential(nn.Linear(n_face + n_whole, config.hidden), nn.ReLU(),
                                  nn.Linear(config.hidden, len(TARGETS)))
        self.register_buffer("mean", torch.zeros(len(TARGETS)))
        self.register_buffer("std", torch.ones(len(TARGETS)))

    def forward(self, face: torch.Tensor, whole: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.face(face), self.whole(whole)], dim=1))


def to_input(frames: np.ndarray, config: ProbeConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, H, W, 3) uint8 -> the face window and the whole frame, float in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
    h, w = x.shape[-2:]
    x0, x1, y0, y1 = config.face_window
    px = lambda v, n: int(round((v + 1.0) / 2.0 * n))  # noqa: E731
    crop = x[:, :, px(y0, h):px(y1, h), px(x0, w):px(x1, w)]

    def resize(t, size):
        if t.shape[-1] == size and t.shape[-2] == size:
            return t
        return F.interpolate(t, size=(size, size), mode="bilinear", antialias=True,
                             align_corners=False)

    return resize(crop, config.face_size), resize(x, config.global_size)


class Probe:
    """The trained probe: `read(frames)` -> (perf (N, NUM_PERF), identity (N, F)) arrays."""

    def __init__(self, net: ProbeNet):
        self.net = net.eval()

    @classmethod
    def load(cls, path: str | Path | None = None) -> "Probe":
        if path is None:
            path = resources.files("npc_runtime.bench").joinpath(DEFAULT_PATH)
        tensors = load_file(str(path))
        from safetensors import safe_open
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        cfg = {k: tuple(v) if isinstance(v, list) else v
               for k, v in json.loads(meta.get("config", "{}")).items()}
        net = ProbeNet(ProbeConfig(**cfg))
        net.load_state_dict({k: v.float() for k, v in tensors.items()})
        return cls(net)

    def save(self, path: str | Path, report: dict | None = None) -> None:
        state = {k: v.detach().half().contiguous() if v.is_floating_point() and k not in
                 ("mean", "std") else v.detach().contiguous() for k, v in
                 self.net.state_dict().items() if not k.endswith("num_batches_tracked")}
        meta = {"config": json.dumps(asdict(self.net.config)), "targets": json.dumps(TARGETS)}
        if report is not None:
            meta["report"] = json.dumps(report)
        Path(path).parent.mkdir(parents=True, exist_ok=True)  # never lose a finished training
        save_file(state, str(path), metadata=meta)

    @torch.no_grad()
    def read(self, frames: np.ndarray, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
        outs = []
        for i in range(0, len(frames), batch):
            face, whole = to_input(frames[i:i + batch], self.net.config)
            outs.append(self.net(face, whole) * self.net.std + self.net.mean)
        y = torch.cat(outs).numpy() if outs else np.zeros((0, len(TARGETS)), np.float32)
        return y[:, :NUM_PERF], y[:, NUM_PERF:]


def probe_data(n: int, seeds: range, per_identity: int, size: int, seed: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """n renders of random identities from `seeds` with independent random performances."""
    rng = np.random.default_rng(seed)
    n_ids = -(-n // per_identity)
    ident_seeds = seeds.start + rng.choice(len(seeds), size=n_ids, replace=False)
    idents = [sample_identity(int(s)) for s in ident_seeds for _ in range(per_identity)][:n]
    perf = random_performance(rng, n)
    frames = render_frames(idents, perf, size)
    ids = np.stack([identity_vector(i) for i in idents])
    return frames, np.concatenate([perf, ids], axis=1).astype(np.float32)


def r2_scores(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    ss_res = ((pred - target) ** 2).sum(0)
    ss_tot = ((target - target.mean(0)) ** 2).sum(0)
    r2 = 1.0 - ss_res / np.maximum(ss_tot, 1e-12)
    return {name: round(float(v), 4) for name, v in zip(TARGETS, r2)}


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mild noise and blur so the probe still reads imperfect (generated) frames."""
    b = x.shape[0]
    blur = torch.rand(b, 1, 1, 1, generator=gen) < 0.3
    soft = F.interpolate(F.avg_pool2d(x, 2), size=x.shape[-2:], mode="bilinear")
    x = torch.where(blur, soft, x)
    return x + 0.02 * torch.rand(b, 1, 1, 1, generator=gen) * torch.randn(x.shape, generator=gen)


def train_probes(cfg: ProbeTrainConfig = ProbeTrainConfig(),
                 net_cfg: ProbeConfig = ProbeConfig()) -> tuple[Probe, dict]:
    """Train on TRAIN identities, report R² per target on EVAL identities."""
    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    log.info("rendering %d + %d probe frames", cfg.train_frames, cfg.test_frames)
    frames, y = probe_data(cfg.train_frames, TRAIN_IDENTITY_SEEDS, cfg.frames_per_identity,
                           cfg.render_size, cfg.seed)
    test_frames, y_test = probe_data(cfg.test_frames, EVAL_IDENTITY_SEEDS,
                                     cfg.frames_per_identity, cfg.render_size, cfg.seed + 1)
    face, whole = to_input(frames, net_cfg)
    del frames
    net = ProbeNet(net_cfg)
    net.mean.copy_(torch.from_numpy(y.mean(0)))
    net.std.copy_(torch.from_numpy(np.maximum(y.std(0), 1e-3)))
    yz = (torch.from_numpy(y) - net.mean) / net.std
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    steps = cfg.epochs * (len(face) // cfg.batch)
    # Performance parameters weigh as much in the loss as the (more numerous) identity ones.
    weight = torch.ones(len(TARGETS))
    weight[:NUM_PERF] = (len(TARGETS) - NUM_PERF) / NUM_PERF
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    bar = tqdm(total=steps, desc="probe", unit="step")
    for _ in range(cfg.epochs):
        net.train()
        order = torch.randperm(len(face), generator=gen)
        for i in range(0, len(face) - cfg.batch + 1, cfg.batch):
            idx = order[i:i + cfg.batch]
            pred = net(_augment(face[idx], gen), _augment(whole[idx], gen))
            loss = (weight * (pred - yz[idx]) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    probe = Probe(net)
    perf, ident = probe.read(test_frames)
    r2 = r2_scores(np.concatenate([perf, ident], 1), y_test)
    report = {"r2_heldout": r2, "train_frames": cfg.train_frames,
              "test_frames": cfg.test_frames, "seconds": round(time.perf_counter() - t0, 1),
              "train_config": asdict(cfg)}
    log.info("probe R² (held-out identities): %s", r2)
    return probe, report
