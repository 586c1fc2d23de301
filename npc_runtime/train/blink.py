"""Blinks' own training: the blink clock's rates fitted to the world's dialogue, the blink editor
on counterfactual renders.

`npc-runtime train blink --init CKPT --out DIR` adds a blink clock and a `BlinkEditor`
(model/blink.py) to an LPM checkpoint that has a mouth editor (its speech gate tells who
speaks); everything else is frozen and copied, so the checkpoint streams as before but for the
eyes.

- The rates: the world's sessions without rendering (espeak-ng speech, seconds a session). Each
  frame's state is read from the session's SPEAK and LISTEN audio exactly as the stream reads
  it (`speech_gate` on the chunk windows, `blink_frame_states`); a blink onset is the frame the
  world's blink begins in (`meta["blink_times"]`). The world lets no blink begin within
  `blink.refractory_frames` of the last, so the maximum-likelihood rate of a state is its onsets
  over its frames that could have held one. Held-out (evaluation-split sessions): the clock run
  with the fitted rates, its blink onsets against the truth's, counted per minute in the bench's
  listening and silence masks (bench/metrics.py `listening_counts`).
- The editor: one performance vector (a frame of a world session) rendered `variants` times,
  variant 0 as it is, variant 1 with the eyes shut and the others with the eyelid closed by
  U(0, 1); any ordered pair (i, j) is an example, input z_i (with noise, the stream's latents
  are the DiT's), condition closure_j, target z_j (train/editor.py `train_variant_pairs`).
  Held-out: the bench's probe reads the eyelid from the decoded edited frames: Pearson r
  against the requested closure, and the slope of the read against it (1: the blink the clock
  asks for is the blink the bench sees).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from npc_runtime.bench.metrics import dilate, pearson
from npc_runtime.bench.probes import Probe
from npc_runtime.checkpoint import read_meta, save_checkpoint
from npc_runtime.config import ModelConfig
from npc_runtime.model.audio import chunk_windows
from npc_runtime.model.blink import blink_closures, blink_frame_states, blink_state
from npc_runtime.model.lpm import LPM
from npc_runtime.model.mouth_edit import speech_gate
from npc_runtime.train.editor import probe_read, train_channel_editor, variant_latents
from npc_runtime.train.flow import extend_lpm, freeze, load_lpm
from npc_runtime.train.mouth import _checkpoint_dir
from npc_runtime.world.performance import P
from npc_runtime.world.session import generate_session

log = logging.getLogger(__name__)
# Held-out sessions: evaluation split, seeds away from the bench suites', the mouth track's
# (20 000 000..), the mouth editor's (21 000 000..) and the nods' (22 000 000..).
TEST_FIRST_SEED = 23_000_000
STATES = ("idle", "speaking", "listening")


@dataclass(frozen=True)
class BlinkTrainConfig:
    # The rates.
    rate_sessions: int = 300
    rate_test_sessions: int = 100
    rate_session_s: float = 30.0
    # The editor.
    editor_sessions: int = 120
    editor_test_sessions: int = 8
    editor_session_s: float = 8.0
    frames_per_session: int = 16
    variants: int = 4
    editor_steps: int = 2000
    editor_batch: int = 32
    editor_lr: float = 1e-3
    region_weight: float = 10.0
    input_noise: float = 0.3
    first_seed: int = 1_000_000    # training-split session seeds first_seed..
    seed: int = 26

    def __post_init__(self) -> None:
        counts = (self.rate_sessions, self.rate_test_sessions, self.editor_sessions,
                  self.editor_test_sessions, self.frames_per_session, self.editor_steps,
                  self.editor_batch)
        if min(counts) < 1 or self.variants < 2:
            raise ValueError(f"blink training: counts must be >= 1 and variants >= 2: {self}")
        if min(self.rate_session_s, self.editor_session_s, self.editor_lr) <= 0 \
                or self.input_noise < 0 or self.region_weight < 0:
            raise ValueError(f"blink training: session lengths and lr > 0; input_noise, "
                             f"region_weight >= 0: {self}")


def blink_config(cfg: ModelConfig, rates: tuple[float, float, float] | None = None
                 ) -> ModelConfig:
    b = cfg.blink if rates is None else replace(cfg.blink, rates_per_min=tuple(rates))
    return cfg.replace(blink=replace(b, enabled=True))


def add_blink(donor: LPM) -> LPM:
    """The donor with an (untrained) blink editor, the identity, and no blinks yet (rates 0)."""
    if donor.blink_edit is not None:
        raise ValueError("the checkpoint already has a blink editor")
    if donor.mouth_edit is None:
        raise ValueError("blinks need a checkpoint with a mouth editor (its speech gate reads "
                         "who speaks): run `npc-runtime train editor` first")
    return extend_lpm(donor, blink_config(donor.cfg), ("blink_edit.",))


# ---------------------------------------------------------------------------------- the rates
def session_states(cfg: ModelConfig, speak: np.ndarray, listen: np.ndarray, n_frames: int
                   ) -> np.ndarray:
    """A session's SPEAK and LISTEN tracks from sample 0 -> its frames' states (n_frames,), read
    chunk by chunk's windows as the stream reads them."""
    c = cfg.stream.chunk_frames
    n_chunks = -(-n_frames // c)
    gates = [speech_gate(cfg, chunk_windows(cfg, torch.from_numpy(a[None]).float(), n_chunks))
             for a in (speak, listen)]
    return blink_frame_states(gates[0], gates[1])[0, :n_frames]


@dataclass
class RateData:
    states: list[np.ndarray]       # each session's frame states
    onsets: list[np.ndarray]       # each session's truth blink onset frames
    listen: list[np.ndarray]       # the bench's listening and silence masks
    silence: list[np.ndarray]


def rate_data(cfg: ModelConfig, split: str, seeds: range, session_s: float) -> RateData:
    fps = cfg.stream.fps
    out = RateData([], [], [], [])
    for seed in seeds:
        s = generate_session(seed, session_s, split, render=False)
        n = s.num_frames
        out.states.append(session_states(cfg, s.speak_audio, s.listen_audio, n))
        frames = np.floor(np.asarray(s.meta["blink_times"]) * fps).astype(int)
        out.onsets.append(frames[frames < n])
        quiet = ~dilate(s.speaking, int(0.4 * fps))
        out.listen.append(s.listening & quiet)
        out.silence.append(quiet & ~dilate(s.listening, int(1.0 * fps)))
    return out


def fit_rates(cfg: ModelConfig, data: RateData) -> tuple[tuple[float, float, float], dict]:
    """Maximum likelihood: each state's onsets over its frames that could have begun a blink
    (none within `refractory_frames` after the last onset) -> rates per minute, and the counts."""
    refractory = cfg.blink.refractory_frames
    onsets, frames = np.zeros(3), np.zeros(3)
    for states, starts in zip(data.states, data.onsets):
        eligible = np.ones(len(states), bool)
        for o in starts:
            eligible[o + 1:o + refractory] = False
        frames += np.bincount(states[eligible], minlength=3)
        onsets += np.bincount(states[starts], minlength=3)
    per_min = 60.0 * cfg.stream.fps
    rates = tuple(round(float(per_min * o / f), 3) if f else 0.0 for o, f in zip(onsets, frames))
    return rates, {name: {"onsets": int(o), "frames": int(f)}
                   for name, o, f in zip(STATES, onsets, frames)}


def clock_heldout(cfg: ModelConfig, data: RateData, seed: int = 0) -> dict[str, float]:
    """The clock run with cfg's rates on held-out sessions (one seeded clock each) against the
    truth: blink onsets per minute in the bench's listening and silence masks."""
    fps = cfg.stream.fps
    counts = {"stream_listen": 0, "stream_silence": 0, "truth_listen": 0, "truth_silence": 0}
    listen_s = float(sum(m.sum() for m in data.listen)) / fps
    silence_s = float(sum(m.sum() for m in data.silence)) / fps
    for k, (states, truth) in enumerate(zip(data.states, data.onsets)):
        closure = blink_closures(cfg, states[None], [blink_state(seed + k)])[0].numpy()
        stream = np.flatnonzero((closure > 0) & (np.r_[0.0, closure[:-1]] == 0))
        for who, starts in (("stream", stream), ("truth", truth)):
            counts[f"{who}_listen"] += int(data.listen[k][starts].sum())
            counts[f"{who}_silence"] += int(data.silence[k][starts].sum())
    out = {}
    for who in ("stream", "truth"):
        out[f"{who}_per_min_listening"] = round(60 * counts[f"{who}_listen"] / max(listen_s,
                                                                                   1e-9), 2)
        out[f"{who}_per_min_silence"] = round(60 * counts[f"{who}_silence"] / max(silence_s,
                                                                                  1e-9), 2)
    return out


# --------------------------------------------------------------------------------- the editor
def editor_data(lpm: LPM, split: str, seeds: range, cfg: BlinkTrainConfig
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> latents (N, K, c, h, w), their eyelid closure (N, K), and a map (N, h, w) in [0, 1]
    of where the K variants' latents differ."""
    bl = P["blink"]

    def close_eyes(perf: np.ndarray, rng: np.random.Generator) -> None:
        perf[:, 1:, bl] = rng.uniform(0, 1, (perf.shape[0], cfg.variants - 1))
        perf[:, 1, bl] = 1.0           # shut: the blink's peak, the edit that must read

    return variant_latents(lpm, split, seeds, cfg.editor_session_s, cfg.frames_per_session,
                           cfg.variants, cfg.seed, bl, close_eyes)


@torch.no_grad()
def editor_heldout(lpm: LPM, z: torch.Tensor, closure: torch.Tensor, noise: float = 0.0,
                   seed: int = 0) -> dict[str, float]:
    """From variant 0 (the frame's own eyelid) to every other variant: the probe's blink read on
    the decoded edited frames against the requested closure (r and the slope of the read
    change), and the unedited input's r as the floor."""
    n, k = z.shape[:2]
    f = torch.arange(n).repeat_interleave(k - 1)
    j = torch.arange(1, k).repeat(n)
    gen = torch.Generator().manual_seed(seed)
    src = z[f, 0] + noise * torch.randn(z[f, 0].shape, generator=gen)
    want = closure[f, j]
    edited = torch.cat([lpm.blink_edit(src[a:a + 256], want[a:a + 256])
                        for a in range(0, len(src), 256)])
    probe, bl = Probe.load(), P["blink"]
    read_edit = probe_read(lpm, probe, edited)[:, bl]
    read_src = probe_read(lpm, probe, src)[:, bl]
    delta, target = read_edit - read_src, (want - closure[f, 0]).numpy()
    shut = want.numpy() == 1.0
    return {"blink_r_edited": round(pearson(read_edit, want.numpy()), 4),
            "blink_r_unedited": round(pearson(read_src, want.numpy()), 4),
            "read_change_slope": round(float((delta * target).sum() / (target ** 2).sum()), 4),
            "read_shut_mean": round(float(read_edit[shut].mean()), 4) if shut.any() else 0.0,
            "read_source_mean": round(float(read_src.mean()), 4)}


def train_editor(lpm: LPM, cfg: BlinkTrainConfig, progress: bool) -> dict:
    return train_channel_editor(lpm, lpm.blink_edit, cfg, editor_data, editor_heldout,
                                TEST_FIRST_SEED, relative=False, name="blink editor", progress=progress)


def train_blink(donor: LPM, cfg: BlinkTrainConfig = BlinkTrainConfig(), progress: bool = True
                ) -> tuple[LPM, dict]:
    """-> (the donor with fitted blink rates and a trained blink editor, report with held-out
    scores)."""
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    lpm = add_blink(donor)
    log.info("synthesising %d + %d dialogue sessions", cfg.rate_sessions, cfg.rate_test_sessions)
    train = rate_data(lpm.cfg, "train", range(cfg.first_seed, cfg.first_seed + cfg.rate_sessions),
                      cfg.rate_session_s)
    rates, counts = fit_rates(lpm.cfg, train)
    lpm.cfg = blink_config(lpm.cfg, rates)
    test = rate_data(lpm.cfg, "eval", range(TEST_FIRST_SEED,
                                            TEST_FIRST_SEED + cfg.rate_test_sessions),
                     cfg.rate_session_s)
    clock = clock_heldout(lpm.cfg, test, cfg.seed)
    log.info("blink rates (idle, speaking, listening) %s per min; held-out %s", rates, clock)
    freeze(lpm)
    for p in lpm.blink_edit.parameters():
        p.requires_grad_(True)
    editor = train_editor(lpm, cfg, progress)
    log.info("blink editor, held-out: %s; noisy inputs: %s", editor["heldout"],
             editor["heldout_noisy"])
    report = {"rates_per_min": list(rates), "rate_counts": counts, "clock_heldout": clock,
              "editor_heldout": editor["heldout"],
              "editor_heldout_noisy": editor["heldout_noisy"],
              "editor_data_seconds": editor["data_seconds"],
              "seconds": round(time.perf_counter() - t0, 1), "train_config": asdict(cfg)}
    return lpm, report


def train_blink_checkpoint(init: str | Path, out: str | Path,
                           cfg: BlinkTrainConfig = BlinkTrainConfig(), progress: bool = True
                           ) -> dict:
    """`npc-runtime train blink`: load `init`, give it blinks, save it."""
    src = _checkpoint_dir(init)
    _, trained, info = read_meta(src)
    donor, _ = load_lpm(src, causal=bool(info.get("causal", True)))
    lpm, report = train_blink(donor, cfg, progress)
    r, c, e = report["rates_per_min"], report["clock_heldout"], report["editor_heldout"]
    info = {**info, "blink": (
        f"blink clock (rates idle {r[0]:.1f}, speaking {r[1]:.1f}, listening {r[2]:.1f} a "
        f"minute, fitted on {cfg.rate_sessions} sessions) and blink editor ({cfg.editor_steps} "
        f"steps, {cfg.editor_sessions} sessions of counterfactual renders) added to {init}; "
        f"held-out: clock {c['stream_per_min_listening']:.1f}/min listening, "
        f"{c['stream_per_min_silence']:.1f}/min in silence (truth "
        f"{c['truth_per_min_listening']:.1f}, {c['truth_per_min_silence']:.1f}); editor blink "
        f"r {e['blink_r_edited']:.3f}, read change slope {e['read_change_slope']:.2f}"),
        "blink_heldout": {"clock": c, "editor": e},
        "recipe": f"{info.get('recipe', 'npc-runtime train')} -> blink"}
    save_checkpoint(out, lpm, lpm.cfg, trained=trained, info=info)
    return report
