"""The mouth editor's own training: counterfactual renders of the world, in latent space.

`npc-runtime train editor --init CKPT --out DIR` adds a `MouthEditor` (model/mouth_edit.py) to
an LPM checkpoint that has a mouth track and trains it, alone, to turn a frame's latent into the
latent of the same frame with another mouth. Every example is one performance vector (a frame of
a world session: identity, head pose, gaze, blink, emotion) rendered `variants` times with
different mouths (jaw open, lip width, lip rounding taken from other frames of the session), and
encoded by the checkpoint's own VAE, with the frame's emotion weights (the editor's second
condition, `emotion`: smile and sneer are in its window): any ordered pair (i, j) of variants is an example, input
z_i and mouth j, target z_j. The pair differs only where the mouth differs, so the loss is
weighted there (`mouth_weight`), or the easy identity map would drown the edit, the DiT's
problem again.

The stream feeds the editor the DiT's latents, not the VAE's, so inputs get Gaussian noise of a
random level (`input_noise`): the editor must put the mouth in a latent that is only roughly an
encoding. Held-out: evaluation-split sessions (identities and voices never trained on); the
bench's probe reads the jaw from the decoded edited frames, scored against the requested jaw
(Pearson r, and the same for the unedited input as the floor), beside the latent error in the
mouth region against copying the input.
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
from npc_runtime.train.flow import extend_lpm, freeze, load_lpm
from npc_runtime.train.mouth import MOUTH_INDEX
from npc_runtime.world.identity import Identity
from npc_runtime.world.performance import P, clip_performance
from npc_runtime.world.render import render_frames
from npc_runtime.world.session import generate_session

log = logging.getLogger(__name__)
# Held-out sessions: evaluation split, seeds away from the bench suites and the mouth track's.
TEST_FIRST_SEED = 21_000_000


@dataclass(frozen=True)
class EditorTrainConfig:
    train_sessions: int = 200
    test_sessions: int = 8
    session_s: float = 8.0
    frames_per_session: int = 16
    variants: int = 4              # renders of each frame, each with its own mouth
    first_seed: int = 800_000      # training-split session seeds first_seed..
    steps: int = 3000
    batch: int = 32
    lr: float = 1e-3
    mouth_weight: float = 20.0     # extra loss weight where the variants differ (the mouth)
    input_noise: float = 0.3       # max std of the noise on the input latent (unit-variance)
    emotion: bool = True           # condition on the emotion weights too (mouth_edit.emotion)
    seed: int = 17

    def __post_init__(self) -> None:
        if min(self.steps, self.batch, self.train_sessions, self.test_sessions,
               self.frames_per_session) < 1 or self.variants < 2:
            raise ValueError(f"editor training: counts must be >= 1 and variants >= 2: {self}")
        if self.mouth_weight < 0 or self.input_noise < 0 or self.lr <= 0:
            raise ValueError("editor training: mouth_weight, input_noise >= 0 and lr > 0")


def editor_config(cfg: ModelConfig, emotion: bool = True) -> ModelConfig:
    return cfg.replace(mouth_edit=replace(cfg.mouth_edit, enabled=True, emotion=emotion))


@torch.no_grad()
def encode_renders(lpm: LPM, identity: Identity, perf: np.ndarray) -> torch.Tensor:
    """Performance vectors (N, P) of one identity -> the checkpoint's VAE latents of their
    renders (N, c, h, w)."""
    img = render_frames(identity, perf, lpm.cfg.frame_size)
    x = torch.from_numpy(img).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return torch.cat([lpm.vae.encode(x[i:i + 64]) for i in range(0, len(x), 64)])


@torch.no_grad()
def editor_data(lpm: LPM, split: str, seeds: range, cfg: EditorTrainConfig
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> latents (N, K, c, h, w), their mouths (N, K, 3), the frames' emotion weights (N, E),
    and a mouth-region map (N, h, w) in [0, 1] (where the K variants' latents differ)."""
    rng = np.random.default_rng(cfg.seed + seeds.start)
    sessions = [generate_session(seed, cfg.session_s, split, render=False) for seed in seeds]
    # Mouths to give: the split's speech (NPCs are silent much of a session, and a silent
    # mouth is one value), and variant 1 of each frame closes the mouth as in silence.
    speech = np.concatenate([s.perf[s.speaking][:, MOUTH_INDEX] for s in sessions])
    rest = np.concatenate([s.perf[~s.speaking][:, MOUTH_INDEX] for s in sessions])
    if len(speech) == 0 or len(rest) == 0:
        raise ValueError(f"editor data: sessions {seeds} hold no speech or no silence")
    zs, mouths, emotions = [], [], []
    for s in sessions:
        frames = rng.choice(len(s.perf), cfg.frames_per_session, replace=False)
        perf = np.repeat(s.perf[frames], cfg.variants, axis=0).reshape(
            len(frames), cfg.variants, -1)                               # (F, K, P)
        # Variant 0 keeps the frame's own mouth.
        perf[:, 1:, MOUTH_INDEX] = speech[rng.integers(len(speech),
                                                       size=(len(frames), cfg.variants - 1))]
        perf[:, 1, MOUTH_INDEX] = rest[rng.integers(len(rest), size=len(frames))]
        perf = perf.reshape(-1, perf.shape[-1])
        z = encode_renders(lpm, s.identity, perf)
        zs.append(z.view(len(frames), cfg.variants, *z.shape[1:]))
        emotions.append(torch.from_numpy(s.emotion[frames]).float())
        mouths.append(torch.from_numpy(perf[:, MOUTH_INDEX]).float().view(len(frames),
                                                                          cfg.variants, -1))
    z, m = torch.cat(zs), torch.cat(mouths)
    return z, m, torch.cat(emotions), variant_region(z)


def variant_region(z: torch.Tensor) -> torch.Tensor:
    """Latents of K variants of each frame (N, K, c, h, w) -> where they differ (N, h, w) in
    [0, 1], with a one-pixel margin: the part of the frame a counterfactual edit must change."""
    spread = (z - z.mean(1, keepdim=True)).abs().amax(1).sum(1)           # (N, h, w)
    spread = F.max_pool2d(spread[:, None], 3, stride=1, padding=1)[:, 0]   # a margin
    return spread / spread.flatten(1).amax(1).clamp_min(1e-6)[:, None, None]


@torch.no_grad()
def variant_latents(lpm: LPM, split: str, seeds: range, session_s: float, frames_per_session: int,
                    variants: int, seed: int, column: int, vary
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Counterfactual renders of one performance channel (the nod editor's head pitch, the
    blink editor's eyelid): `frames_per_session` frames of each world session, each rendered
    `variants` times, variant 0 as it is and the others as `vary(perf (F, K, P), rng)` sets
    them in place; clipped to the renderer's range and encoded by the checkpoint's VAE.
    -> latents (N, K, c, h, w), the channel's value in each (N, K), and where the variants'
    latents differ (N, h, w) in [0, 1]."""
    rng = np.random.default_rng(seed + seeds.start)
    zs, values = [], []
    for session_seed in seeds:
        s = generate_session(session_seed, session_s, split, render=False)
        frames = rng.choice(s.num_frames, frames_per_session, replace=False)
        perf = np.repeat(s.perf[frames], variants, axis=0).reshape(len(frames), variants, -1)
        vary(perf, rng)
        perf = clip_performance(perf.reshape(-1, perf.shape[-1]))
        z = encode_renders(lpm, s.identity, perf)
        zs.append(z.view(len(frames), variants, *z.shape[1:]))
        values.append(torch.from_numpy(perf[:, column]).float().view(len(frames), -1))
    z = torch.cat(zs)
    return z, torch.cat(values), variant_region(z)


def _pairs(n: int, k: int, size: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    f = torch.randint(n, (size,), generator=gen)
    i = torch.randint(k, (size,), generator=gen)
    j = torch.randint(k, (size,), generator=gen)      # i == j too: keep the frame as it is
    return f, i, j


def train_variant_pairs(editor: torch.nn.Module, z: torch.Tensor, value: torch.Tensor,
                        region: torch.Tensor, *, relative: bool, steps: int, batch: int,
                        lr: float, region_weight: float, input_noise: float, seed: int,
                        name: str, progress: bool) -> None:
    """Train a one-channel editor (`editor(z, cond)`) on counterfactual variants: any ordered
    pair (i, j) of a frame's variants is an example, input z_i with noise of a random level up
    to `input_noise` (the stream's latents are the DiT's, not the VAE's), condition value_j -
    value_i (`relative`: the nod's pitch offset) or value_j (the blink's closure), target z_j.
    The loss is weighted `region_weight` more where the variants differ, or the identity map
    would drown the edit."""
    opt = torch.optim.AdamW(editor.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=0.05)
    gen = torch.Generator().manual_seed(seed)
    bar = tqdm(total=steps, desc=name, unit="step", disable=not progress)
    editor.train()
    k = z.shape[1]
    for step in range(steps):
        f, i, j = _pairs(len(z), k, batch, gen)
        sigma = input_noise * torch.rand(batch, 1, 1, 1, generator=gen)
        src = z[f, i] + sigma * torch.randn(z[f, i].shape, generator=gen)
        w = 1.0 + region_weight * region[f][:, None]
        out = editor(src, value[f, j] - value[f, i] if relative else value[f, j])
        loss = ((out - z[f, j]).square() * w).mean() / w.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if not progress and (step + 1) % 250 == 0:
            log.info("%s step %d/%d loss %.4f", name, step + 1, steps, loss.item())
    bar.close()
    editor.eval()


def train_channel_editor(lpm: LPM, editor: torch.nn.Module, cfg, data, heldout,
                         test_first_seed: int, relative: bool, name: str, progress: bool
                         ) -> dict:
    """A one-channel editor's whole training (the nod editor's, the blink editor's): its
    counterfactual data `data(lpm, split, seeds, cfg)` from `editor_sessions` training-split
    sessions and `editor_test_sessions` evaluation-split ones (seeds from `first_seed` and
    `test_first_seed`, + 50 000), `train_variant_pairs`, then `heldout(lpm, z, values,
    noise=0)` on the test data, clean and with half the training's input noise. `cfg` holds
    the editor_* fields, frames_per_session, variants, region_weight, input_noise and seed."""
    log.info("%s: rendering %d + %d sessions x %d frames x %d variants", name,
             cfg.editor_sessions, cfg.editor_test_sessions, cfg.frames_per_session, cfg.variants)
    t0 = time.perf_counter()
    seeds = range(cfg.first_seed + 50_000, cfg.first_seed + 50_000 + cfg.editor_sessions)
    z, value, region = data(lpm, "train", seeds, cfg)
    test_seeds = range(test_first_seed + 50_000,
                       test_first_seed + 50_000 + cfg.editor_test_sessions)
    test_z, test_value, _ = data(lpm, "eval", test_seeds, cfg)
    data_s = time.perf_counter() - t0
    train_variant_pairs(editor, z, value, region, relative=relative, steps=cfg.editor_steps,
                        batch=cfg.editor_batch, lr=cfg.editor_lr,
                        region_weight=cfg.region_weight, input_noise=cfg.input_noise,
                        seed=cfg.seed, name=name, progress=progress)
    return {"heldout": heldout(lpm, test_z, test_value),
            "heldout_noisy": heldout(lpm, test_z, test_value, noise=0.5 * cfg.input_noise),
            "data_seconds": round(data_s, 1)}


@torch.no_grad()
def probe_read(lpm: LPM, probe: Probe, latents: torch.Tensor) -> np.ndarray:
    """Latents (N, c, h, w) -> the probe's performance reads (N, NUM_PERF) of their decodes."""
    img = torch.cat([lpm.vae.decode(latents[a:a + 128]).clamp(-1, 1)
                     for a in range(0, len(latents), 128)])
    frames = ((img + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return probe.read(frames)[0]


@torch.no_grad()
def edit(lpm: LPM, z: torch.Tensor, mouth: torch.Tensor, emotion: torch.Tensor
         ) -> torch.Tensor:
    """The checkpoint's editor over many frames (N, ...), in batches."""
    return torch.cat([lpm.mouth_edit(z[a:a + 256], mouth[a:a + 256], emotion[a:a + 256])
                      for a in range(0, len(z), 256)])


@torch.no_grad()
def heldout(lpm: LPM, z: torch.Tensor, m: torch.Tensor, e: torch.Tensor, region: torch.Tensor,
            noise: float = 0.0, seed: int = 0) -> dict[str, float]:
    """Every ordered pair i != j of the held-out variants: jaw r (probe on the decoded frames)
    and mouth-region latent RMSE, edited and unedited."""
    n, k = z.shape[:2]
    ii, jj = zip(*[(i, j) for i in range(k) for j in range(k) if i != j])
    f = torch.arange(n).repeat_interleave(len(ii))
    i, j = torch.tensor(ii).repeat(n), torch.tensor(jj).repeat(n)
    gen = torch.Generator().manual_seed(seed)
    src = z[f, i] + noise * torch.randn(z[f, i].shape, generator=gen)
    edited = edit(lpm, src, m[f, j], e[f])
    w = region[f][:, None]

    def rmse(x):
        return float(((x - z[f, j]).square() * w).sum().div(w.sum() * z.shape[2]).sqrt())

    probe = Probe.load()
    want = m[f, j][:, 0].numpy()
    jaw = P["jaw_open"]
    return {"jaw_r_edited": round(pearson(probe_read(lpm, probe, edited)[:, jaw], want), 4),
            "jaw_r_unedited": round(pearson(probe_read(lpm, probe, src)[:, jaw], want), 4),
            "mouth_rmse_edited": round(rmse(edited), 4),
            "mouth_rmse_unedited": round(rmse(src), 4)}


def train_editor(donor: LPM, cfg: EditorTrainConfig = EditorTrainConfig(),
                 progress: bool = True) -> tuple[LPM, dict]:
    """-> (the donor with a trained mouth editor, report with held-out scores)."""
    if donor.mouth is None:
        raise ValueError("the mouth editor applies the mouth track's values: the checkpoint has "
                         "no mouth track (add one with `npc-runtime train mouth`)")
    if donor.mouth_edit is not None:
        raise ValueError("the checkpoint already has a mouth editor")
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    lpm = extend_lpm(donor, editor_config(donor.cfg, cfg.emotion), ("mouth_edit.",))
    freeze(lpm)
    editor = lpm.mouth_edit
    for p in editor.parameters():
        p.requires_grad_(True)
    log.info("rendering %d + %d sessions x %d frames x %d mouths", cfg.train_sessions,
             cfg.test_sessions, cfg.frames_per_session, cfg.variants)
    z, m, e, region = editor_data(lpm, "train", range(cfg.first_seed,
                                                   cfg.first_seed + cfg.train_sessions), cfg)
    test = editor_data(lpm, "eval", range(TEST_FIRST_SEED, TEST_FIRST_SEED + cfg.test_sessions),
                       cfg)
    data_s = time.perf_counter() - t0
    opt = torch.optim.AdamW(editor.parameters(), lr=cfg.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps,
                                                pct_start=0.05)
    gen = torch.Generator().manual_seed(cfg.seed)
    bar = tqdm(total=cfg.steps, desc="editor", unit="step", disable=not progress)
    editor.train()
    for step in range(cfg.steps):
        f, i, j = _pairs(len(z), cfg.variants, cfg.batch, gen)
        sigma = cfg.input_noise * torch.rand(cfg.batch, 1, 1, 1, generator=gen)
        src = z[f, i] + sigma * torch.randn(z[f, i].shape, generator=gen)
        w = 1.0 + cfg.mouth_weight * region[f][:, None]
        loss = ((editor(src, m[f, j], e[f]) - z[f, j]).square() * w).mean() / w.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if not progress and (step + 1) % 500 == 0:
            log.info("editor step %d/%d loss %.4f", step + 1, cfg.steps, loss.item())
    bar.close()
    editor.eval()
    report = {"heldout": heldout(lpm, *test),
              "heldout_noisy": heldout(lpm, *test, noise=0.5 * cfg.input_noise),
              "data_seconds": round(data_s, 1),
              "seconds": round(time.perf_counter() - t0, 1), "train_config": asdict(cfg)}
    log.info("mouth editor, held-out: %s; inputs with noise %.2f: %s", report["heldout"],
             0.5 * cfg.input_noise, report["heldout_noisy"])
    return lpm, report


def train_editor_checkpoint(init: str | Path, out: str | Path,
                            cfg: EditorTrainConfig = EditorTrainConfig(),
                            progress: bool = True) -> dict:
    """`npc-runtime train editor`: load `init`, give it a trained mouth editor, save it."""
    src = Path(init)
    src = src / "export" if (src / "export" / "model.yaml").is_file() else src
    _, trained, info = read_meta(src)
    donor, _ = load_lpm(src, causal=bool(info.get("causal", True)))
    lpm, report = train_editor(donor, cfg, progress)
    h = report["heldout"]
    info = {**info, "mouth_editor": (
        f"trained on counterfactual renders ({cfg.steps} steps, {cfg.train_sessions} sessions; "
        f"conditioned on the mouth{' and the emotion' if cfg.emotion else ''}), added to {init}; held-out jaw r {h['jaw_r_edited']:.3f} (unedited "
        f"{h['jaw_r_unedited']:.3f})"), "mouth_editor_heldout": h,
        "recipe": f"{info.get('recipe', 'npc-runtime train')} -> editor"}
    save_checkpoint(out, lpm, lpm.cfg, trained=trained, info=info)
    return report
