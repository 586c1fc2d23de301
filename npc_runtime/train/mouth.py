"""The mouth track's own training: audio only, on the world's speech.

`npc-runtime train mouth --init CKPT --out DIR` adds a `MouthTrack` (model/audio.py) to an LPM
checkpoint and trains it, alone, to read the frame's ground-truth mouth (jaw open, lip width, lip
rounding) from the SPEAK window the stream gives each chunk. Nothing is rendered (the world's
sessions with `render=False`: espeak-ng speech and its viseme track), so thousands of steps take
minutes on a 2-core CPU. Held-out: Pearson r per parameter over speech on evaluation-split
sessions (unseen lines and voices; session seeds away from the bench's suites).

The track starts from the checkpoint's trained audio encoder (same architecture), so it begins
from features that already separate speech sounds. The exported checkpoint is the donor with
the track added (`audio.mouth_track: true`); the DiT's mouth embedding starts at zero, so the
checkpoint performs exactly as the donor until a later stage (`train online`, the track frozen)
teaches the DiT to use it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from tqdm import tqdm

from npc_runtime.bench.metrics import dilate, pearson
from npc_runtime.checkpoint import read_meta, save_checkpoint
from npc_runtime.config import ModelConfig
from npc_runtime.model.audio import MOUTH_PARAMS, chunk_windows
from npc_runtime.model.lpm import LPM
from npc_runtime.train.flow import extend_lpm, load_lpm
from npc_runtime.world.performance import P
from npc_runtime.world.session import generate_session

log = logging.getLogger(__name__)
MOUTH_INDEX = [P[name] for name in MOUTH_PARAMS]
# Held-out sessions: evaluation split, seeds far from the bench suites' (10 000 000 + 7919 i).
TEST_FIRST_SEED = 20_000_000


@dataclass(frozen=True)
class MouthTrainConfig:
    train_sessions: int = 480
    test_sessions: int = 16
    session_s: float = 30.0
    first_seed: int = 700_000      # training-split session seeds first_seed.. (any range works)
    steps: int = 8000
    batch: int = 64                # chunk windows per step
    lr: float = 1e-3
    seed: int = 13


def mouth_config(cfg: ModelConfig) -> ModelConfig:
    return cfg.replace(audio=replace(cfg.audio, mouth_track=True))


def mouth_data(cfg: ModelConfig, split: str, seeds: range, session_s: float
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> SPEAK chunk windows (N, Sw), the mouth of each chunk's frames (N, C, 3) and a speech
    mask (N, C): the metric's span, speech dilated by 200 ms."""
    c = cfg.stream.chunk_frames
    windows, mouths, masks = [], [], []
    for seed in seeds:
        s = generate_session(seed, session_s, split, render=False)
        n = len(s.perf) // c
        windows.append(chunk_windows(cfg, torch.from_numpy(s.speak_audio[None]), n)[0])
        mouths.append(torch.from_numpy(s.perf[:n * c, MOUTH_INDEX]).float().view(n, c, -1))
        mask = dilate(s.speaking[:n * c], int(0.2 * cfg.stream.fps))
        masks.append(torch.from_numpy(mask).view(n, c))
    return torch.cat(windows), torch.cat(mouths), torch.cat(masks)


@torch.no_grad()
def heldout_r(lpm: LPM, windows: torch.Tensor, mouth: torch.Tensor, mask: torch.Tensor,
              batch: int = 256) -> dict[str, float]:
    """Pearson r of the track against the truth per parameter, over speech frames."""
    lpm.mouth.eval()
    pred = torch.cat([lpm.mouth.chunk_frames(windows[i:i + batch][:, None])
                      for i in range(0, len(windows), batch)])
    keep = mask.flatten()
    p, y = pred.reshape(-1, len(MOUTH_PARAMS))[keep], mouth.reshape(-1, len(MOUTH_PARAMS))[keep]
    return {name: round(pearson(p[:, j].numpy(), y[:, j].numpy()), 4)
            for j, name in enumerate(MOUTH_PARAMS)}


def mouth_optimizer(make, lpm: LPM, params, scale: float) -> torch.optim.Optimizer:
    """`make(params)` (a stage's optimiser factory) over `params`, with the DiT's mouth-track
    embedding, if the model has one, in its own group at `scale` times the learning rate: it
    starts at zero inside a trained DiT, and at a continuation's small learning rate would barely
    leave zero in a few hundred steps."""
    fresh = list(lpm.dit.mouth_embed.parameters()) if lpm.mouth is not None else []
    ids = {id(p) for p in fresh}
    opt = make(p for p in params if id(p) not in ids)
    if fresh:
        opt.add_param_group({"params": fresh, "lr": opt.defaults["lr"] * scale,
                             "lr_scale": scale})
    return opt


def add_mouth_track(donor: LPM) -> LPM:
    """The donor with a mouth track (initialised from its audio encoder) and a zero mouth
    embedding: the same performance until trained."""
    if donor.mouth is not None:
        raise ValueError("the checkpoint already has a mouth track")
    lpm = extend_lpm(donor, mouth_config(donor.cfg), ("mouth.", "dit.mouth_embed."))
    audio = donor.audio.state_dict()
    lpm.mouth.load_state_dict({**lpm.mouth.state_dict(), **audio})
    return lpm


def train_mouth(donor: LPM, cfg: MouthTrainConfig = MouthTrainConfig(), progress: bool = True
                ) -> tuple[LPM, dict]:
    """-> (the donor with a trained mouth track, report with held-out r)."""
    if cfg.steps < 1 or cfg.batch < 1 or cfg.train_sessions < 1 or cfg.test_sessions < 1:
        raise ValueError(f"train_mouth: steps, batch and session counts must be >= 1: {cfg}")
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    lpm = add_mouth_track(donor)
    mc = lpm.cfg
    log.info("synthesising %d + %d sessions of speech", cfg.train_sessions, cfg.test_sessions)
    w, y, _ = mouth_data(mc, "train", range(cfg.first_seed, cfg.first_seed + cfg.train_sessions),
                         cfg.session_s)
    test = mouth_data(mc, "eval", range(TEST_FIRST_SEED, TEST_FIRST_SEED + cfg.test_sessions),
                      cfg.session_s)
    std = y.flatten(0, 1).std(0).clamp_min(1e-3)
    track = lpm.mouth
    before = heldout_r(lpm, *test)
    opt = torch.optim.AdamW(track.parameters(), lr=cfg.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps,
                                                pct_start=0.05)
    gen = torch.Generator().manual_seed(cfg.seed)
    bar = tqdm(total=cfg.steps, desc="mouth", unit="step", disable=not progress)
    track.train()
    for _ in range(cfg.steps):
        idx = torch.randint(len(w), (min(cfg.batch, len(w)),), generator=gen)
        # z-scored error: the three parameters weigh alike whatever their ranges.
        loss = ((track.chunk_frames(w[idx][:, None]) - y[idx]) / std).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    after = heldout_r(lpm, *test)
    track.eval()
    report = {"r_heldout": after, "r_heldout_init": before,
              "seconds": round(time.perf_counter() - t0, 1), "train_config": asdict(cfg)}
    log.info("mouth track r (held-out lines and voices): %s (from %s)", after, before)
    return lpm, report


def _checkpoint_dir(path: str | Path) -> Path:
    src = Path(path)
    return src / "export" if (src / "export" / "model.yaml").is_file() else src


def train_mouth_checkpoint(init: str | Path, out: str | Path,
                           cfg: MouthTrainConfig = MouthTrainConfig(), progress: bool = True,
                           track_from: str | Path | None = None) -> dict:
    """`npc-runtime train mouth`: load `init`, give it a trained mouth track, save the
    checkpoint. The track is trained here, or with `track_from` copied from another checkpoint
    that has one (a teacher and its student then read the same track)."""
    src = _checkpoint_dir(init)
    _, trained, info = read_meta(src)
    donor, _ = load_lpm(src, causal=bool(info.get("causal", True)))
    if track_from is None:
        lpm, report = train_mouth(donor, cfg, progress)
        how = f"trained on audio alone ({cfg.steps} steps, {cfg.train_sessions} sessions)"
    else:
        other, other_info = load_lpm(_checkpoint_dir(track_from), causal=True)
        if other.mouth is None:
            raise ValueError(f"track_from {track_from}: it has no mouth track")
        lpm = add_mouth_track(donor)
        if mouth_config(other.cfg).audio != lpm.cfg.audio:
            raise ValueError(f"track_from {track_from}: its audio config differs from {init}'s")
        lpm.mouth.load_state_dict(other.mouth.state_dict())
        report = {"r_heldout": other_info.get("mouth_track_r_heldout", {})}
        how = f"copied from {track_from}"
    info = {**info, "mouth_track": f"{how}, added to {init}; held-out r "
                                   + ", ".join(f"{k} {v:.3f}" for k, v in
                                               report["r_heldout"].items()),
            "mouth_track_r_heldout": report["r_heldout"],
            "recipe": f"{info.get('recipe', 'npc-runtime train')} -> mouth"}
    save_checkpoint(out, lpm, lpm.cfg, trained=trained, info=info)
    return report
