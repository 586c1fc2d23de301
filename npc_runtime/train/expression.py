"""The expression decoder's training: the VAE decoder learns to read the frames' emotion tags.

`npc-runtime train expression --init CKPT --out DIR` turns a checkpoint's plain VAE decoder into
an expression decoder (`vae.emotion_dim`, model/vae.py) and fine-tunes the decoder alone; the
encoder, `latent_scale`, the DiT and every add-on stay bit-identical, so the stream samples the
same latents and only the pixels change.

Why: the tiny latent keeps little of the brows and mouth corners an emotion is read from (the
VAE round trip of the truth reads 76 % on the full suite against 87 % for the renders; a latent
reader's R² for the brows is 0.12-0.42), and the DiT cannot draw what its latent space does not
hold. The stream already carries each frame's tagged weights; the decoder draws from them what
the latent lost. The paper's decoder is unconditioned; a larger latent with a retrained Base
and student is the scale path (docs/training.md, "Session 21").

Data: frames of the world's sessions (training split, training identities) with their tagged
weights; half of them re-tagged with a random base emotion at intensity U(0.3, 1) (the world's
expression is additive, weights @ EXPRESSION_BASIS, so swapping the tag's part of the
performance is the world's own rendering of the new tag), which balances the emotions. Rendered
and encoded by the checkpoint's own encoder; the latents get a little Gaussian noise (the
stream decodes the DiT's latents, not the encoder's). Each frame is also rendered with its tag's
part taken out and with another base emotion's in its place; the pixels the tag changes are
where the expression lives (brows, eyelids, mouth corners, the head's tilt). The decoder learns
to draw the frame as tagged from its own latent, and, for `mismatch` of the samples, from the
latent of the untagged or the other emotion's render: the tag, not the latent, decides the
expression. Loss: the VAE stage's reconstruction (L1 + L2, the face window weighted, edge-aware
L1) + `expression_weight` x the L1 on the expression's pixels.

Why both (session 21, docs/training.md): with the reconstruction alone the decoder ignores the
tag (held-out face PSNR with the frames' own tags 29.358 dB, with shuffled tags 29.346), those
pixels being a small share of its loss; with the expression term but only matching latents it
learns to draw the latent's expression sharper (the truth's round trip reads 94 % of strong
windows on selection cases, was 80 %) but still ignores the tag, since the truth's latent and
tag always agree, and the stream's latents, whose expression is the one that is wrong, decode
as before. The renderer, not any evaluator, says where the expression's pixels are.

Held-out (evaluation-split sessions, identities never trained on): PSNR of the whole frame, of
the face window and of the expression pixels decoded from the frames' own latents with their
tags, with no tag (neutral: the plain decoder's path) and with the tags shuffled; and of the
expression pixels decoded from the other emotion's latent with the frame's tag (`_from_other`):
the decoder must draw the tag (tagged > shuffled, and from_other close to tagged).
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
from npc_runtime.emotions import DEFAULT_VOCABULARY
from npc_runtime.model.lpm import LPM
from npc_runtime.train.config import VAEOptions
from npc_runtime.train.data import to_uint8, to_unit
from npc_runtime.train.flow import extend_lpm, freeze, load_lpm
from npc_runtime.train.mouth import _checkpoint_dir
from npc_runtime.train.reader import encode_frames
from npc_runtime.train.vae import psnr, reconstruction_loss, window_weights
from npc_runtime.world.performance import EXPRESSION_BASIS, clip_performance
from npc_runtime.world.render import render_frames
from npc_runtime.world.session import generate_session

log = logging.getLogger(__name__)
# Held-out sessions: evaluation split, seeds away from the bench suites' and the other add-ons'
# (mouth 20 000 000.., 21 000 000..; nods 22 000 000..; steady head 23 000 000..).
TEST_FIRST_SEED = 24_000_000


@dataclass(frozen=True)
class ExpressionTrainConfig:
    sessions: int = 200
    test_sessions: int = 8
    session_s: float = 8.0
    frames_per_session: int = 40
    retag: float = 0.5                 # share of frames re-tagged with a random base emotion
    mismatch: float = 0.6              # share of samples decoded from another render's latent
    steps: int = 3000
    batch: int = 16
    lr: float = 1e-4                   # the decoder's (a continuation, as the decoder rounds)
    film_lr: float = 1e-3              # the new FiLM layers' (they start at zero)
    latent_noise: float = 0.1
    face_weight: float = 8.0
    edge_weight: float = 2.0
    expression_weight: float = 4.0     # the L1 on the expression's pixels (mean over them)
    expression_threshold: int = 12     # uint8 change that marks a pixel as the expression's
    first_seed: int = 940_000          # training-split session seeds first_seed..
    seed: int = 21

    def __post_init__(self) -> None:
        if min(self.sessions, self.test_sessions, self.frames_per_session, self.steps,
               self.batch) < 1 or self.session_s <= 0:
            raise ValueError(f"expression training: counts >= 1 and session_s > 0: {self}")
        if not 0 <= self.retag <= 1 or not 0 <= self.mismatch <= 1 or self.lr <= 0 or self.film_lr <= 0 \
                or self.latent_noise < 0 or self.face_weight <= 0 or self.edge_weight < 0 \
                or self.expression_weight < 0 or not 0 < self.expression_threshold < 256:
            raise ValueError(f"expression training: retag and mismatch in [0, 1], lr and "
                             f"film_lr > 0, "
                             f"latent_noise, edge_weight and expression_weight >= 0, "
                             f"face_weight > 0, expression_threshold in 1..255: {self}")


def add_expression(donor: LPM) -> LPM:
    """The donor with an expression decoder (its decoder's weights, FiLM at zero)."""
    cfg: ModelConfig = donor.cfg
    if cfg.vae.emotion_dim:
        raise ValueError("the checkpoint already has an expression decoder")
    return extend_lpm(donor, cfg.replace(vae=replace(cfg.vae, emotion_dim=cfg.emotion_dim)),
                      ("vae.decoder.film.",))


def _retagged(perf: np.ndarray, emotion: np.ndarray, rng: np.random.Generator,
              share: float) -> tuple[np.ndarray, np.ndarray]:
    """Swap the tag's part of the performance (weights @ EXPRESSION_BASIS) for a random base
    emotion's on `share` of the frames."""
    perf, emotion = perf.copy(), emotion.copy()
    vocab = DEFAULT_VOCABULARY
    for i in np.flatnonzero(rng.random(len(perf)) < share):
        new = vocab.tag_vector(str(rng.choice(vocab.tags[1:])), float(rng.uniform(0.3, 1.0)))
        perf[i] += (new - emotion[i]) @ EXPRESSION_BASIS
        emotion[i] = new
    return clip_performance(perf), emotion.astype(np.float32)


def expression_pixels(frames: np.ndarray, untagged: np.ndarray, threshold: int) -> np.ndarray:
    """uint8 frames and the same frames rendered without their tag -> bool (N, H, W): the
    pixels the tag changes by more than `threshold` in some channel."""
    return (np.abs(frames.astype(np.int16) - untagged.astype(np.int16)).max(-1) > threshold)


def masked_l1(recon: torch.Tensor, x: torch.Tensor, pixels: np.ndarray) -> torch.Tensor:
    """Mean L1 of images (N, 3, H, W) over the marked pixels, bool (N, H, W) (0 where none)."""
    m = torch.from_numpy(pixels)[:, None].to(recon.dtype)
    return ((recon - x).abs() * m).sum() / (3 * m.sum()).clamp_min(1.0)


def _other_emotion(emotion: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per frame, a base emotion other than its dominant one, at intensity U(0.3, 1)."""
    vocab = DEFAULT_VOCABULARY
    out = np.zeros_like(emotion)
    for i, w in enumerate(emotion):
        own = int(np.argmax(w[1:])) + 1 if w[1:].max() > 0 else 0
        tag = int(rng.choice([j for j in range(1, vocab.size) if j != own]))
        out[i] = vocab.tag_vector(vocab.tags[tag], float(rng.uniform(0.3, 1.0)))
    return out


@torch.no_grad()
def expression_data(lpm: LPM, split: str, seeds: range, cfg: ExpressionTrainConfig
                    ) -> tuple[np.ndarray, torch.Tensor, torch.Tensor, np.ndarray]:
    """-> frames uint8 (N, H, W, 3); latents (3, N, c, h, w) of the frame, of its untagged
    render and of its render with another emotion; emotion weights (N, E); the expression's
    pixels, bool (N, H, W) (expression_pixels)."""
    rng = np.random.default_rng(cfg.seed + seeds.start)
    frames, untagged, other, emotions, masks = [], [], [], [], []
    size = lpm.cfg.frame_size
    for seed in seeds:
        s = generate_session(seed, cfg.session_s, split, render=False)
        idx = rng.choice(s.num_frames, min(cfg.frames_per_session, s.num_frames), replace=False)
        perf, em = _retagged(s.perf[idx], s.emotion[idx], rng, cfg.retag)
        rest = perf - em @ EXPRESSION_BASIS
        frames.append(render_frames(s.identity, perf, size))
        untagged.append(render_frames(s.identity, clip_performance(rest), size))
        other.append(render_frames(s.identity, clip_performance(
            rest + _other_emotion(em, rng) @ EXPRESSION_BASIS), size))
        masks.append(expression_pixels(frames[-1], untagged[-1], cfg.expression_threshold))
        emotions.append(torch.from_numpy(em))
    frames_np = np.concatenate(frames)
    z = torch.stack([encode_frames(lpm.vae, np.concatenate(f))
                     for f in (frames, untagged, other)])
    return frames_np, z, torch.cat(emotions), np.concatenate(masks)


@torch.no_grad()
def expression_heldout(lpm: LPM, frames: np.ndarray, z: torch.Tensor, emotion: torch.Tensor,
                       pixels: np.ndarray, face: torch.Tensor, seed: int = 0
                       ) -> dict[str, float]:
    """PSNR (dB) of the frame, of the face window and of the expression's pixels (over all
    frames' such pixels), decoded from the frames' latents z[0] with their tags, none (neutral)
    and shuffled tags; and of the expression's pixels decoded from the other emotion's latents
    z[2] with the frames' tags."""
    vae = lpm.vae.eval()
    shuffled = emotion[torch.randperm(len(emotion), generator=torch.Generator().manual_seed(seed))]
    inside = face[0, 0] > face[0, 0].min()
    out: dict[str, float] = {}
    for name, src, em in (("tagged", z[0], emotion), ("neutral", z[0], None),
                          ("shuffled", z[0], shuffled), ("tagged_from_other", z[2], emotion)):
        img = to_uint8(torch.cat([vae.decode(src[a:a + 64], None if em is None else em[a:a + 64])
                                  for a in range(0, len(src), 64)]))
        if name != "tagged_from_other":
            out[f"psnr_{name}"] = round(float(psnr(img, frames).mean()), 3)
            out[f"face_psnr_{name}"] = round(float(psnr(img[:, inside],
                                                        frames[:, inside]).mean()), 3)
        out[f"expression_psnr_{name}"] = round(float(psnr(img[pixels][None],
                                                          frames[pixels][None])[0]), 3)
    return out


def train_expression(donor: LPM, cfg: ExpressionTrainConfig = ExpressionTrainConfig(),
                     progress: bool = True) -> tuple[LPM, dict]:
    """-> (the donor with a trained expression decoder, report with held-out scores)."""
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    lpm = add_expression(donor)
    freeze(lpm)
    decoder = lpm.vae.decoder
    for p in decoder.parameters():
        p.requires_grad_(True)
    log.info("rendering %d + %d sessions x %d frames", cfg.sessions, cfg.test_sessions,
             cfg.frames_per_session)
    frames, z, emotion, pixels = expression_data(
        lpm, "train", range(cfg.first_seed, cfg.first_seed + cfg.sessions), cfg)
    test = expression_data(
        lpm, "eval", range(TEST_FIRST_SEED, TEST_FIRST_SEED + cfg.test_sessions), cfg)
    data_s = time.perf_counter() - t0
    size = lpm.cfg.frame_size
    face = window_weights((size, size), VAEOptions().face_window, cfg.face_weight)
    before = expression_heldout(lpm, *test, face)
    film = list(decoder.film.parameters())
    rest = [p for n, p in decoder.named_parameters() if not n.startswith("film.")]
    opt = torch.optim.AdamW([{"params": rest, "lr": cfg.lr},
                             {"params": film, "lr": cfg.film_lr}], weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[cfg.lr, cfg.film_lr],
                                                total_steps=cfg.steps,
                                                pct_start=min(0.5, max(0.05, 3 / cfg.steps)))
    gen = torch.Generator().manual_seed(cfg.seed)
    bar = tqdm(total=cfg.steps, desc="expression decoder", unit="step", disable=not progress)
    decoder.train()
    batch = min(cfg.batch, len(emotion))
    for step in range(cfg.steps):
        idx = torch.randint(len(emotion), (batch,), generator=gen)
        # The latent decoded: the frame's own, or (mismatch) its untagged or other-emotion one.
        u = torch.rand(batch, generator=gen)
        source = torch.where(u < cfg.mismatch, 1 + (u < cfg.mismatch / 2).long(), 0)
        zi = z[source, idx]
        sigma = cfg.latent_noise * torch.rand(batch, 1, 1, 1, generator=gen)
        zi = zi + sigma * torch.randn(zi.shape, generator=gen)
        x = to_unit(frames[idx.numpy()])
        recon = lpm.vae.decode(zi, emotion[idx])
        loss = reconstruction_loss(recon, x, 1.0, 1.0, cfg.edge_weight, face)
        if cfg.expression_weight > 0:
            loss = loss + cfg.expression_weight * masked_l1(recon, x, pixels[idx.numpy()])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(decoder.parameters(), 1.0)
        opt.step()
        sched.step()
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if not progress and (step + 1) % 250 == 0:
            log.info("expression decoder step %d/%d loss %.4f", step + 1, cfg.steps, loss.item())
    bar.close()
    freeze(lpm)
    heldout = expression_heldout(lpm, *test, face)
    log.info("expression decoder, held-out: before %s, after %s", before, heldout)
    return lpm, {"heldout": heldout, "heldout_before": before, "data_seconds": round(data_s, 1),
                 "seconds": round(time.perf_counter() - t0, 1), "train_config": asdict(cfg)}


def train_expression_checkpoint(init: str | Path, out: str | Path,
                                cfg: ExpressionTrainConfig = ExpressionTrainConfig(),
                                progress: bool = True) -> dict:
    """`npc-runtime train expression`: load `init`, give it an expression decoder, save it."""
    src = _checkpoint_dir(init)
    _, trained, info = read_meta(src)
    donor, _ = load_lpm(src, causal=bool(info.get("causal", True)))
    lpm, report = train_expression(donor, cfg, progress)
    h, b = report["heldout"], report["heldout_before"]
    info = {**info, "expression_decoder": (
        f"decoder fine-tuned to read the emotion tags ({cfg.steps} steps, {cfg.sessions} "
        f"sessions of renders) from {init}; held-out PSNR on the expression's pixels "
        f"{b['expression_psnr_tagged']:.2f} -> {h['expression_psnr_tagged']:.2f} dB (shuffled "
        f"tags {h['expression_psnr_shuffled']:.2f})"),
        "expression_heldout": h, "expression_heldout_before": b,
        "recipe": f"{info.get('recipe', 'npc-runtime train')} -> expression"}
    save_checkpoint(out, lpm, lpm.cfg, trained=trained, info=info)
    return report
