"""The steady head's own training: a pitch reader on renders with known head pitch.

`npc-runtime train steady --init CKPT --out DIR` adds a `PitchReader` (model/steady.py) to a
checkpoint with listening nods and trains it, alone; everything else is frozen, and the
checkpoint streams as before but for the steadied frames.

Data: frames of the world's sessions (training split, training identities), their head pitch
moved by a random offset in [offset_low, offset_high] for half of them (the DiT's bobs and the
nods lie in that range), rendered and encoded by the checkpoint's VAE. Inputs get latent noise
of a random level up to `input_noise` (the stream's latents are the DiT's, not the VAE's), as the
nod editor's did. Loss: squared z-scored error.

Held-out (evaluation-split sessions, identities never trained on): R² and RMSE of the read pitch
on clean and noisy latents; and the loop the stream closes: the nod editor tilts held-out
latents by known offsets and the reader must read the change (slope 1: a correction the
stabiliser asks for is one it then sees).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from npc_runtime.checkpoint import read_meta, save_checkpoint
from npc_runtime.config import ModelConfig
from npc_runtime.model.lpm import LPM
from npc_runtime.train.flow import extend_lpm, freeze, load_lpm
from npc_runtime.train.mouth import _checkpoint_dir
from npc_runtime.train.reader import encode_frames
from npc_runtime.world.performance import P, clip_performance
from npc_runtime.world.render import render_frames
from npc_runtime.world.session import generate_session

log = logging.getLogger(__name__)
# Held-out sessions: evaluation split, seeds away from the bench suites' and the other add-ons'
# (mouth 20 000 000.., 21 000 000..; nods 22 000 000..).
TEST_FIRST_SEED = 23_000_000


@dataclass(frozen=True)
class SteadyTrainConfig:
    sessions: int = 320
    test_sessions: int = 12
    session_s: float = 8.0
    frames_per_session: int = 40
    offset_low: float = -0.4
    offset_high: float = 0.7
    steps: int = 3000
    batch: int = 64
    lr: float = 2e-3
    input_noise: float = 0.3
    first_seed: int = 930_000          # training-split session seeds first_seed..
    seed: int = 20

    def __post_init__(self) -> None:
        if min(self.sessions, self.test_sessions, self.frames_per_session, self.steps,
               self.batch) < 1 or self.session_s <= 0:
            raise ValueError(f"steady training: counts >= 1 and session_s > 0: {self}")
        if self.offset_low > self.offset_high or self.lr <= 0 or self.input_noise < 0:
            raise ValueError(f"steady training: offset_low <= offset_high, lr > 0, "
                             f"input_noise >= 0: {self}")


def add_steady(donor: LPM) -> LPM:
    """The donor (with listening nods) with an untrained pitch reader."""
    if donor.nod_edit is None:
        raise ValueError("the checkpoint has no nod editor to steer with: add listening nods "
                         "first (npc-runtime train nod)")
    if donor.pitch_reader is not None:
        raise ValueError("the checkpoint already has a pitch reader")
    cfg: ModelConfig = donor.cfg
    return extend_lpm(donor, cfg.replace(steady=replace(cfg.steady, enabled=True)),
                      ("pitch_reader.",))


@torch.no_grad()
def steady_data(lpm: LPM, split: str, seeds: range, cfg: SteadyTrainConfig
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """-> latents (N, c, h, w) of session frames, half with their head pitch moved, and the
    pitch they were rendered with (N,)."""
    rng = np.random.default_rng(cfg.seed + seeds.start)
    zs, pitches = [], []
    for seed in seeds:
        s = generate_session(seed, cfg.session_s, split, render=False)
        n = min(cfg.frames_per_session, s.num_frames)
        perf = s.perf[rng.choice(s.num_frames, n, replace=False)].copy()
        moved = rng.random(n) < 0.5
        perf[moved, P["head_pitch"]] += rng.uniform(cfg.offset_low, cfg.offset_high,
                                                    int(moved.sum()))
        perf = clip_performance(perf)                                   # the renderer's range
        zs.append(encode_frames(lpm.vae, render_frames(s.identity, perf, lpm.cfg.frame_size)))
        pitches.append(torch.from_numpy(perf[:, P["head_pitch"]]).float())
    return torch.cat(zs), torch.cat(pitches)


@torch.no_grad()
def steady_heldout(lpm: LPM, z: torch.Tensor, pitch: torch.Tensor, noise: float,
                   seed: int = 0) -> dict[str, float]:
    """Read pitch against the truth (R², RMSE) on clean and noisy latents; the read change of
    nod-editor tilts of +-0.1..0.4 against the requested change (slope and r)."""
    reader, gen = lpm.pitch_reader.eval(), torch.Generator().manual_seed(seed)
    out: dict[str, float] = {}
    for name, sigma in (("clean", 0.0), ("noisy", noise)):
        x = z + sigma * torch.randn(z.shape, generator=gen)
        read = torch.cat([reader(x[a:a + 256]) for a in range(0, len(x), 256)])
        res = ((read - pitch) ** 2).sum()
        out[f"r2_{name}"] = round(float(1 - res / ((pitch - pitch.mean()) ** 2).sum()), 4)
        out[f"rmse_{name}"] = round(float((res / len(pitch)).sqrt()), 4)
    want = (0.1 + 0.3 * torch.rand(len(z), generator=gen)) \
        * torch.where(torch.rand(len(z), generator=gen) < 0.5, -1.0, 1.0)
    tilted = torch.cat([lpm.nod_edit(z[a:a + 256], want[a:a + 256])
                        for a in range(0, len(z), 256)])
    change = torch.cat([reader(tilted[a:a + 256]) - reader(z[a:a + 256])
                        for a in range(0, len(z), 256)])
    out["edit_read_slope"] = round(float((change * want).sum() / (want ** 2).sum()), 4)
    out["edit_read_r"] = round(float(torch.corrcoef(torch.stack([change, want]))[0, 1]), 4)
    return out


def train_steady(donor: LPM, cfg: SteadyTrainConfig = SteadyTrainConfig(),
                 progress: bool = True) -> tuple[LPM, dict]:
    """-> (the donor with a trained pitch reader, report with held-out scores)."""
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    lpm = add_steady(donor)
    freeze(lpm)
    reader = lpm.pitch_reader
    for p in reader.parameters():
        p.requires_grad_(True)
    log.info("rendering %d + %d sessions x %d frames", cfg.sessions, cfg.test_sessions,
             cfg.frames_per_session)
    z, pitch = steady_data(lpm, "train", range(cfg.first_seed, cfg.first_seed + cfg.sessions),
                           cfg)
    test_z, test_pitch = steady_data(
        lpm, "eval", range(TEST_FIRST_SEED, TEST_FIRST_SEED + cfg.test_sessions), cfg)
    data_s = time.perf_counter() - t0
    reader.mean.fill_(float(pitch.mean()))
    reader.std.fill_(float(pitch.std().clamp_min(1e-3)))
    opt = torch.optim.AdamW(reader.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps,
                                                pct_start=0.05)
    gen = torch.Generator().manual_seed(cfg.seed)
    bar = tqdm(total=cfg.steps, desc="pitch reader", unit="step", disable=not progress)
    reader.train()
    batch = min(cfg.batch, len(z))
    for step in range(cfg.steps):
        idx = torch.randint(len(z), (batch,), generator=gen)
        sigma = cfg.input_noise * torch.rand(batch, 1, 1, 1, generator=gen)
        x = z[idx] + sigma * torch.randn(z[idx].shape, generator=gen)
        loss = ((reader(x) - pitch[idx]) / reader.std).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if not progress and (step + 1) % 500 == 0:
            log.info("pitch reader step %d/%d loss %.4f", step + 1, cfg.steps, loss.item())
    bar.close()
    reader.eval()
    heldout = steady_heldout(lpm, test_z, test_pitch, 0.5 * cfg.input_noise)
    log.info("pitch reader, held-out: %s", heldout)
    return lpm, {"heldout": heldout, "data_seconds": round(data_s, 1),
                 "seconds": round(time.perf_counter() - t0, 1), "train_config": asdict(cfg)}


def train_steady_checkpoint(init: str | Path, out: str | Path,
                            cfg: SteadyTrainConfig = SteadyTrainConfig(),
                            progress: bool = True) -> dict:
    """`npc-runtime train steady`: load `init`, give it a trained pitch reader, save it."""
    src = _checkpoint_dir(init)
    _, trained, info = read_meta(src)
    donor, _ = load_lpm(src, causal=bool(info.get("causal", True)))
    lpm, report = train_steady(donor, cfg, progress)
    h = report["heldout"]
    info = {**info, "steady": (
        f"pitch reader ({cfg.steps} steps, {cfg.sessions} sessions of renders) added to {init}; "
        f"held-out R² {h['r2_clean']:.3f} (noisy {h['r2_noisy']:.3f}), reads the nod editor's "
        f"tilts with slope {h['edit_read_slope']:.2f}"),
        "steady_heldout": h,
        "recipe": f"{info.get('recipe', 'npc-runtime train')} -> steady"}
    save_checkpoint(out, lpm, lpm.cfg, trained=trained, info=info)
    return report
