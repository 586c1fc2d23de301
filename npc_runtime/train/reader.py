"""The latent reader's own training: renders of training identities, encoded by the VAE.

`npc-runtime train reader --vae CKPT --out DIR` renders `train_frames` frames of TRAIN identities
with independent random performances (the probes' data recipe, bench/probes.py `probe_data`),
encodes them with the checkpoint's VAE, and fits `LatentReader` (train/auxiliary.py) to their
mouth and expression parameters; R² per parameter is reported on renders of EVAL identities. The
Online stage loads it frozen (`online.reader_checkpoint`). Minutes on a 2-core CPU.

Why not train it beside the student on the batch's truth latents: measured in session 11, after
200 steps of 16 latents from a pool of 16 sessions it read the held-out truth no better than
their mean (MSE 0.063 on the truth, 0.062 on the student's samples): far too few, too
correlated frames.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from npc_runtime.bench.probes import probe_data
from npc_runtime.model.vae import VAE
from npc_runtime.train.auxiliary import READ_INDEX, READ_PARAMS, LatentReader
from npc_runtime.train.data import to_unit
from npc_runtime.world.identity import EVAL_IDENTITY_SEEDS, TRAIN_IDENTITY_SEEDS

log = logging.getLogger(__name__)
WEIGHTS, META = "reader.safetensors", "reader.json"


@dataclass(frozen=True)
class ReaderTrainConfig:
    train_frames: int = 16_000
    test_frames: int = 1_000
    frames_per_identity: int = 6
    epochs: int = 8
    batch: int = 128
    lr: float = 2e-3
    # Latent noise (std drawn up to this per sample): the student's denoised estimates are not
    # clean encodings, and the reader must still read them.
    noise: float = 0.15
    width: int = 48
    seed: int = 11


@torch.no_grad()
def encode_frames(vae: VAE, frames: np.ndarray, batch: int = 64) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> scaled latent means (N, c, h, w)."""
    return torch.cat([vae.encode(to_unit(frames[i:i + batch]))
                      for i in range(0, len(frames), batch)])


def reader_data(vae: VAE, size: int, n: int, seeds: range, cfg: ReaderTrainConfig, seed: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    frames, y = probe_data(n, seeds, cfg.frames_per_identity, size, seed)
    return encode_frames(vae, frames), torch.from_numpy(y[:, READ_INDEX])


def r2(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    res = ((pred - target) ** 2).sum(0)
    tot = ((target - target.mean(0)) ** 2).sum(0).clamp_min(1e-12)
    return {name: round(float(v), 4) for name, v in zip(READ_PARAMS, 1 - res / tot)}


def fit_reader(z: torch.Tensor, y: torch.Tensor, cfg: ReaderTrainConfig,
               progress: bool = True) -> LatentReader:
    """A reader fitted to latents z (N, c, h, w) and their parameters y (N, len(READ_PARAMS));
    batches of cfg.batch, or of all N when fewer."""
    if len(z) < 2 or len(z) != len(y):
        raise ValueError(f"fit_reader: need >= 2 latents with one target row each, got "
                         f"{len(z)} and {len(y)}")
    batch = min(cfg.batch, len(z))
    reader = LatentReader(z.shape[1], cfg.width)
    reader.mean.copy_(y.mean(0))
    reader.std.copy_(y.std(0).clamp_min(1e-3))
    opt = torch.optim.AdamW(reader.parameters(), lr=cfg.lr, weight_decay=1e-4)
    steps = cfg.epochs * (len(z) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    bar = tqdm(total=steps, desc="reader", unit="step", disable=not progress)
    for _ in range(cfg.epochs):
        order = torch.randperm(len(z), generator=gen)
        for i in range(0, len(z) - batch + 1, batch):
            idx = order[i:i + batch]
            sigma = cfg.noise * torch.rand(len(idx), 1, 1, 1, generator=gen)
            x = z[idx] + sigma * torch.randn(z[idx].shape, generator=gen)
            loss = reader.error(x, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    return reader


def train_reader(vae: VAE, frame_size: int, cfg: ReaderTrainConfig = ReaderTrainConfig(),
                 progress: bool = True) -> tuple[LatentReader, dict]:
    """Train on TRAIN identities' frames (frame_size square, the model's); -> (reader, report
    with held-out R² on EVAL identities)."""
    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    vae.eval()
    log.info("rendering and encoding %d + %d reader frames", cfg.train_frames, cfg.test_frames)
    z, y = reader_data(vae, frame_size, cfg.train_frames, TRAIN_IDENTITY_SEEDS, cfg, cfg.seed)
    z_test, y_test = reader_data(vae, frame_size, cfg.test_frames, EVAL_IDENTITY_SEEDS, cfg,
                                 cfg.seed + 1)
    reader = fit_reader(z, y, cfg, progress)
    reader.eval()
    with torch.no_grad():
        scores = r2(reader(z_test), y_test)
    report = {"r2_heldout": scores, "seconds": round(time.perf_counter() - t0, 1),
              "train_config": asdict(cfg)}
    log.info("reader R² (held-out identities): %s", scores)
    return reader, report


def save_reader(reader: LatentReader, directory: str | Path, report: dict) -> None:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in reader.state_dict().items()}, str(d / WEIGHTS))
    meta = {"channels": reader.channels, "width": reader.width, "params": list(READ_PARAMS),
            **report}
    (d / META).write_text(json.dumps(meta, indent=1))


def load_reader(directory: str | Path) -> tuple[LatentReader, dict]:
    d = Path(directory)
    if not (d / WEIGHTS).is_file() or not (d / META).is_file():
        raise FileNotFoundError(f"{d}: not a latent reader (needs {WEIGHTS} and {META}; "
                                "make one with `npc-runtime train reader`)")
    meta = json.loads((d / META).read_text())
    if meta.get("params") != list(READ_PARAMS):
        raise ValueError(f"{d}: it reads {meta.get('params')}, this code reads "
                         f"{list(READ_PARAMS)}")
    reader = LatentReader(meta["channels"], meta["width"])
    reader.load_state_dict(load_file(str(d / WEIGHTS)))
    return reader.eval(), meta
