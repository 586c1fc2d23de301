"""Listening nods' own training: the nod track on the world's dialogue, the nod editor on
counterfactual renders.

`npc-runtime train nod --init CKPT --out DIR` adds a `NodTrack` and a `NodEditor`
(model/nod.py) to an LPM checkpoint and trains them, alone; everything else is frozen and the
checkpoint streams as before but for the nods.

- The track: the world's sessions without rendering (espeak-ng speech, seconds a session). Input
  the partner's (LISTEN) loudness, target the frames within two of each ground-truth nod onset
  (the listener's nods, `meta["nod_times"]`), binary cross-entropy over whole sessions, so the
  GRU learns from the stream's own start. Held-out (evaluation-split sessions): the nods the
  stream would start (`nod_offsets`, the configured threshold) against the truth's, matched
  within `match_frames`, and the rates while the partner speaks and in silence.
- The editor: one performance vector (a frame of a world session) rendered `variants` times,
  variant 0 as it is and the others with the head pitched down by 0..`max_offset`, encoded by
  the checkpoint's VAE; any ordered pair (i, j) is an example, input z_i and condition
  pitch_j - pitch_i, target z_j. Inputs get noise of a random level (the stream's latents are
  the DiT's, not the VAE's). The loss is weighted where the variants differ (the face), or
  the identity map would drown the edit. Held-out: the bench's probe reads head pitch from
  the decoded edited frames: Pearson r against the requested pitch, and the slope of the read
  change against the requested one (1: the nod the track asks for is the nod the bench sees).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from npc_runtime.bench.metrics import pearson
from npc_runtime.bench.probes import Probe
from npc_runtime.checkpoint import read_meta, save_checkpoint
from npc_runtime.config import ModelConfig
from npc_runtime.model.lpm import LPM
from npc_runtime.model.nod import NodState, nod_offsets, track_features
from npc_runtime.train.editor import probe_read, train_channel_editor, variant_latents
from npc_runtime.train.flow import extend_lpm, freeze, load_lpm
from npc_runtime.train.mouth import _checkpoint_dir
from npc_runtime.world.performance import P
from npc_runtime.world.session import generate_session

log = logging.getLogger(__name__)
# Held-out sessions: evaluation split, seeds away from the bench suites', the mouth track's
# (20 000 000..) and the mouth editor's (21 000 000..).
TEST_FIRST_SEED = 22_000_000


@dataclass(frozen=True)
class NodTrainConfig:
    # The track.
    track_sessions: int = 400
    track_test_sessions: int = 24
    track_session_s: float = 30.0
    track_steps: int = 1500
    track_batch: int = 32          # whole sessions per step
    track_lr: float = 3e-3
    label_frames: int = 2          # a frame is positive within this many of a truth onset
    match_frames: int = 4          # a stream nod within this many frames of a truth one is a hit
    # The editor.
    editor_sessions: int = 120
    editor_test_sessions: int = 8
    editor_session_s: float = 8.0
    frames_per_session: int = 16
    variants: int = 4
    max_offset: float = 0.9        # head-pitch offsets of the variants: U(0, max_offset)
    editor_steps: int = 2000
    editor_batch: int = 32
    editor_lr: float = 1e-3
    region_weight: float = 10.0
    input_noise: float = 0.3
    first_seed: int = 900_000      # training-split session seeds first_seed..
    seed: int = 19

    def __post_init__(self) -> None:
        counts = (self.track_sessions, self.track_test_sessions, self.track_steps,
                  self.track_batch, self.editor_sessions, self.editor_test_sessions,
                  self.frames_per_session, self.editor_steps, self.editor_batch)
        if min(counts) < 1 or self.variants < 2:
            raise ValueError(f"nod training: counts must be >= 1 and variants >= 2: {self}")
        if self.max_offset <= 0 or self.input_noise < 0 or self.region_weight < 0 \
                or min(self.track_lr, self.editor_lr) <= 0 or self.label_frames < 0 \
                or self.match_frames < 0:
            raise ValueError(f"nod training: max_offset, learning rates > 0; input_noise, "
                             f"region_weight, label_frames, match_frames >= 0: {self}")


def nod_config(cfg: ModelConfig) -> ModelConfig:
    return cfg.replace(nod=replace(cfg.nod, enabled=True))


def add_nod(donor: LPM) -> LPM:
    """The donor with an (untrained) nod track and editor; the editor starts as the identity."""
    if donor.nod_track is not None:
        raise ValueError("the checkpoint already has a nod track")
    return extend_lpm(donor, nod_config(donor.cfg), ("nod_track.", "nod_edit."))


# ---------------------------------------------------------------------------------- the track
def track_data(cfg: ModelConfig, split: str, seeds: range, session_s: float, label_frames: int
               ) -> tuple[torch.Tensor, torch.Tensor, list[np.ndarray], np.ndarray, np.ndarray]:
    """-> LISTEN loudness (N, T, 4), onset labels (N, T - L), each session's truth onset frames,
    and listening / silence masks (N, T - L) as the bench forms them."""
    from npc_runtime.bench.metrics import dilate
    fps, look = cfg.stream.fps, cfg.nod.lookahead_frames
    feats, labels, onsets, listen, silence = [], [], [], [], []
    for seed in seeds:
        s = generate_session(seed, session_s, split, render=False)
        n = s.num_frames
        feats.append(track_features(cfg, torch.from_numpy(s.listen_audio[None]), n)[0])
        frames = np.ceil(np.asarray(s.meta["nod_times"]) * fps).astype(int)
        frames = frames[frames < n - look]
        y = np.zeros(n - look, np.float32)
        for f in frames:
            y[max(0, f - label_frames):f + label_frames + 1] = 1.0
        labels.append(torch.from_numpy(y))
        onsets.append(frames)
        quiet = ~dilate(s.speaking, int(0.4 * fps))
        listen.append((s.listening & quiet)[:n - look])
        silence.append((quiet & ~dilate(s.listening, int(1.0 * fps)))[:n - look])
    return (torch.stack(feats), torch.stack(labels), onsets, np.stack(listen),
            np.stack(silence))


def stream_nod_starts(cfg: ModelConfig, probs: torch.Tensor) -> np.ndarray:
    """One session's onset probabilities (T,) -> the frames where the stream starts a nod."""
    offsets = nod_offsets(cfg, probs[None], [NodState()])[0].numpy()
    return np.flatnonzero((offsets > 0) & (np.r_[0.0, offsets[:-1]] == 0))


@torch.no_grad()
def track_heldout(lpm: LPM, feats: torch.Tensor, onsets: list[np.ndarray], listen: np.ndarray,
                  silence: np.ndarray, match_frames: int) -> dict[str, float]:
    """The nods the stream would start on held-out sessions, against the truth's."""
    cfg, fps = lpm.cfg, lpm.cfg.stream.fps
    probs = torch.sigmoid(lpm.nod_track.sequence(feats)[0])
    fired = truth = precise = recalled = n_listen = n_silence = 0
    for b, true in enumerate(onsets):
        starts = stream_nod_starts(cfg, probs[b])
        near = np.abs(starts[:, None] - true[None, :]) <= match_frames      # (fired, truth)
        fired, truth = fired + len(starts), truth + len(true)
        precise += int(near.any(1).sum())
        recalled += int(near.any(0).sum())
        n_listen += int(listen[b][starts].sum())
        n_silence += int(silence[b][starts].sum())
    per_min = lambda count, mask: round(float(count / max(mask.sum() / fps / 60, 1e-9)), 2)  # noqa
    return {"precision": round(precise / max(fired, 1), 4),
            "recall": round(recalled / max(truth, 1), 4),
            "nods_per_min_listening": per_min(n_listen, listen),
            "nods_per_min_silence": per_min(n_silence, silence),
            "truth_nods": truth, "stream_nods": fired}


def train_track(lpm: LPM, cfg: NodTrainConfig, progress: bool) -> dict:
    mc = lpm.cfg
    log.info("synthesising %d + %d dialogue sessions", cfg.track_sessions,
             cfg.track_test_sessions)
    x, y, _, _, _ = track_data(mc, "train", range(cfg.first_seed,
                                                  cfg.first_seed + cfg.track_sessions),
                               cfg.track_session_s, cfg.label_frames)
    test = track_data(mc, "eval", range(TEST_FIRST_SEED, TEST_FIRST_SEED + cfg.track_test_sessions),
                      cfg.track_session_s, cfg.label_frames)
    track = lpm.nod_track
    opt = torch.optim.AdamW(track.parameters(), lr=cfg.track_lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.track_lr,
                                                total_steps=cfg.track_steps, pct_start=0.05)
    gen = torch.Generator().manual_seed(cfg.seed)
    bar = tqdm(total=cfg.track_steps, desc="nod track", unit="step", disable=not progress)
    track.train()
    for step in range(cfg.track_steps):
        idx = torch.randint(len(x), (min(cfg.track_batch, len(x)),), generator=gen)
        loss = F.binary_cross_entropy_with_logits(track.sequence(x[idx])[0], y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(track.parameters(), 1.0)
        opt.step()
        sched.step()
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if not progress and (step + 1) % 250 == 0:
            log.info("nod track step %d/%d loss %.4f", step + 1, cfg.track_steps, loss.item())
    bar.close()
    track.eval()
    feats, _, onsets, listen, silence = test
    return track_heldout(lpm, feats, onsets, listen, silence, cfg.match_frames)


# --------------------------------------------------------------------------------- the editor
def editor_data(lpm: LPM, split: str, seeds: range, cfg: NodTrainConfig
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> latents (N, K, c, h, w), their head pitch (N, K), and a map (N, h, w) in [0, 1] of
    where the K variants' latents differ."""
    hp = P["head_pitch"]

    def pitch_down(perf: np.ndarray, rng: np.random.Generator) -> None:
        perf[:, 1:, hp] += rng.uniform(0, cfg.max_offset, (perf.shape[0], cfg.variants - 1))

    return variant_latents(lpm, split, seeds, cfg.editor_session_s, cfg.frames_per_session,
                           cfg.variants, cfg.seed, hp, pitch_down)


@torch.no_grad()
def editor_heldout(lpm: LPM, z: torch.Tensor, pitch: torch.Tensor, noise: float = 0.0,
                   seed: int = 0) -> dict[str, float]:
    """From variant 0 (the frame's own pitch) to every other variant: the probe's head pitch on
    the decoded edited frames against the requested pitch (r), and the slope of the read change
    against the requested change; the same for the unedited input as the floor."""
    n, k = z.shape[:2]
    f = torch.arange(n).repeat_interleave(k - 1)
    j = torch.arange(1, k).repeat(n)
    gen = torch.Generator().manual_seed(seed)
    src = z[f, 0] + noise * torch.randn(z[f, 0].shape, generator=gen)
    want = pitch[f, j] - pitch[f, 0]
    edited = torch.cat([lpm.nod_edit(src[a:a + 256], want[a:a + 256])
                        for a in range(0, len(src), 256)])
    probe, hp = Probe.load(), P["head_pitch"]
    read_edit = probe_read(lpm, probe, edited)[:, hp]
    read_src = probe_read(lpm, probe, src)[:, hp]
    delta, target = read_edit - read_src, want.numpy()
    return {"pitch_r_edited": round(pearson(read_edit, pitch[f, j].numpy()), 4),
            "pitch_r_unedited": round(pearson(read_src, pitch[f, j].numpy()), 4),
            "read_change_slope": round(float((delta * target).sum() / (target ** 2).sum()), 4),
            "read_change_r": round(pearson(delta, target), 4)}


def train_editor(lpm: LPM, cfg: NodTrainConfig, progress: bool) -> dict:
    return train_channel_editor(lpm, lpm.nod_edit, cfg, editor_data, editor_heldout,
                                TEST_FIRST_SEED, relative=True, name="nod editor", progress=progress)


def train_nod(donor: LPM, cfg: NodTrainConfig = NodTrainConfig(), progress: bool = True
              ) -> tuple[LPM, dict]:
    """-> (the donor with a trained nod track and editor, report with held-out scores)."""
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    lpm = add_nod(donor)
    freeze(lpm)
    for p in [*lpm.nod_track.parameters(), *lpm.nod_edit.parameters()]:
        p.requires_grad_(True)
    track = train_track(lpm, cfg, progress)
    log.info("nod track, held-out: %s", track)
    editor = train_editor(lpm, cfg, progress)
    log.info("nod editor, held-out: %s; noisy inputs: %s", editor["heldout"],
             editor["heldout_noisy"])
    report = {"track_heldout": track, "editor_heldout": editor["heldout"],
              "editor_heldout_noisy": editor["heldout_noisy"],
              "editor_data_seconds": editor["data_seconds"],
              "seconds": round(time.perf_counter() - t0, 1), "train_config": asdict(cfg)}
    return lpm, report


def train_nod_checkpoint(init: str | Path, out: str | Path,
                         cfg: NodTrainConfig = NodTrainConfig(), progress: bool = True) -> dict:
    """`npc-runtime train nod`: load `init`, give it trained listening nods, save it."""
    src = _checkpoint_dir(init)
    _, trained, info = read_meta(src)
    donor, _ = load_lpm(src, causal=bool(info.get("causal", True)))
    lpm, report = train_nod(donor, cfg, progress)
    t, e = report["track_heldout"], report["editor_heldout"]
    info = {**info, "nod": (
        f"nod track ({cfg.track_steps} steps, {cfg.track_sessions} sessions) and nod editor "
        f"({cfg.editor_steps} steps, {cfg.editor_sessions} sessions of counterfactual renders) "
        f"added to {init}; held-out: nods {t['nods_per_min_listening']:.1f}/min listening, "
        f"{t['nods_per_min_silence']:.1f}/min in silence, precision {t['precision']:.2f}, "
        f"recall {t['recall']:.2f}; editor pitch r {e['pitch_r_edited']:.3f}, read change "
        f"slope {e['read_change_slope']:.2f}"),
        "nod_heldout": {"track": t, "editor": e},
        "recipe": f"{info.get('recipe', 'npc-runtime train')} -> nod"}
    save_checkpoint(out, lpm, lpm.cfg, trained=trained, info=info)
    return report
