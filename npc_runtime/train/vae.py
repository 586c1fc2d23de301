"""Stage 1: the VAE, trained on world renders; reports PSNR on held-out (eval-split) renders.

Loss: L1 + L2 reconstruction + a small per-element KL (the SD-VAE recipe without its
perceptual and adversarial terms: no pretrained perceptual network (LPIPS/VGG) can be fetched
offline, and a GAN term is not worth its cost on flat-shaded renders). After training,
`latent_scale` is fitted so that the encoder's latents have unit standard deviation, which is
what the flow model's unit-variance noise assumes.

Export: a full `LPM` checkpoint (what the pipeline loads) whose VAE is trained and whose audio
encoder and DiT are the seeded random initialisation; `trained: false`, and `info` says which
parts are trained.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from npc_runtime.checkpoint import save_checkpoint
from npc_runtime.model.lpm import LPM
from npc_runtime.model.vae import VAE
from npc_runtime.train.data import eval_frames, to_uint8, to_unit
from npc_runtime.train.loop import Run, Stage
from npc_runtime.train.visuals import save_grid

log = logging.getLogger(__name__)
TARGET_PSNR_DB = 30.0   # the bar for shipping the VAE as "good"


class Reconstruction(nn.Module):
    """VAE forward for training: x -> (reconstruction, mean, logvar)."""

    def __init__(self, vae: VAE) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor, eps: torch.Tensor | None = None):
        mean, logvar = self.vae.encoder(x)
        z = mean if eps is None else mean + eps * (0.5 * logvar).exp()
        return self.vae.decoder(z.contiguous(memory_format=torch.channels_last)), mean, logvar


def edge_weights(x: torch.Tensor, strength: float) -> torch.Tensor:
    """(N, 3, H, W) targets -> (N, 1, H, W) weights 1 + strength * |gradient| (normalised to
    mean 1 per image): eyes, brows, lips and glasses are thin lines that a plain L1/L2 average
    away first; this keeps them (an edge-aware loss, in place of a perceptual network)."""
    gray = x.mean(1, keepdim=True)
    gx = torch.nn.functional.pad((gray[..., :, 1:] - gray[..., :, :-1]).abs(), (0, 1))
    gy = torch.nn.functional.pad((gray[..., 1:, :] - gray[..., :-1, :]).abs(), (0, 0, 0, 1))
    g = gx + gy
    w = 1.0 + strength * g / g.mean((1, 2, 3), keepdim=True).clamp_min(1e-6)
    return w / w.mean((1, 2, 3), keepdim=True)


def window_weights(shape: tuple[int, ...], window: tuple[float, float, float, float],
                   weight: float) -> torch.Tensor:
    """(1, 1, H, W) weights: `weight` inside the canvas window (x0, x1, y0, y1 in [-1, 1]),
    1 outside, normalised to mean 1 (the loss scale stays that of a plain mean)."""
    h, w = shape[-2:]
    ys = (torch.arange(h) + 0.5) / h * 2 - 1
    xs = (torch.arange(w) + 0.5) / w * 2 - 1
    x0, x1, y0, y1 = window
    inside = ((ys >= y0) & (ys <= y1))[:, None] & ((xs >= x0) & (xs <= x1))[None, :]
    m = 1.0 + (weight - 1.0) * inside.float()
    return (m / m.mean())[None, None]


def reconstruction_loss(recon: torch.Tensor, x: torch.Tensor, l1: float, l2: float,
                        edge_weight: float = 0.0, face: torch.Tensor | None = None
                        ) -> torch.Tensor:
    """Weighted L2 + L1; `face`: optional (1, 1, H, W) weights (window_weights) on both terms,
    `edge_weight`: edge_weights on the L1 term."""
    err = recon - x
    w = face.to(err) if face is not None else 1.0
    loss = l2 * (err.square() * w).mean()
    if edge_weight > 0:
        w = w * edge_weights(x, edge_weight)
    return loss + l1 * (err.abs() * w).mean()


def vae_loss(recon: torch.Tensor, x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor,
             l1: float, l2: float, kl: float, edge_weight: float = 0.0,
             face: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Reconstruction (reconstruction_loss) + kl * the per-element KL."""
    err = recon - x
    rec_l1, rec_l2 = err.abs().mean(), err.square().mean()
    kl_term = 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).mean()
    loss = reconstruction_loss(recon, x, l1, l2, edge_weight, face) + kl * kl_term
    logs = {"loss": loss, "l1": rec_l1, "l2": rec_l2, "kl": kl_term}
    return loss, {k: float(v.detach()) for k, v in logs.items()}


def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image PSNR (dB) of uint8 images (N, H, W, 3)."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(len(a), -1).mean(1)
    return 10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-10))


@torch.no_grad()
def reconstruct(vae: VAE, frames: np.ndarray, batch: int = 16,
                emotion: np.ndarray | None = None) -> np.ndarray:
    """uint8 frames -> uint8 reconstructions through encode (mean) and decode; `emotion`
    (N, E): the frames' weights for an expression decoder (None: neutral)."""
    out = []
    device = next(vae.parameters()).device
    for i in range(0, len(frames), batch):
        x = to_unit(frames[i:i + batch]).to(device)
        e = None if emotion is None else torch.as_tensor(
            np.asarray(emotion[i:i + batch], np.float32), device=device)
        out.append(to_uint8(vae.decode(vae.encode(x), e)))
    return np.concatenate(out)


@torch.no_grad()
def fit_latent_scale(vae: VAE, frames: torch.Tensor, batch: int = 16) -> float:
    """1 / std of the (unscaled) latent means over `frames` (N, 3, H, W)."""
    device = next(vae.parameters()).device
    zs = [vae.encoder(frames[i:i + batch].to(device))[0] for i in range(0, len(frames), batch)]
    return float(1.0 / torch.cat(zs).float().std().clamp_min(1e-6))


def swap_decoder(vae: VAE, donor: VAE) -> None:
    """Give `vae` the decoder of `donor`, which must share its latent space: config, encoder
    weights and latent_scale bit-identical (a decoder-only fine-tune of the same VAE)."""
    if vae.cfg.emotion_dim != donor.cfg.emotion_dim:
        raise ValueError("one decoder reads emotion tags and the other does not: an expression "
                         "decoder comes with its checkpoint (npc-runtime train expression), it "
                         "is not swapped in")
    a, b = vae.state_dict(), donor.state_dict()
    if vae.cfg != donor.cfg or not all(torch.equal(a[k], b[k]) for k in a
                                       if not k.startswith("decoder.")):
        raise ValueError("its encoder/latent_scale differ: only a decoder-only fine-tune of "
                         "the same VAE can be swapped in")
    vae.decoder.load_state_dict(donor.decoder.state_dict())


class VAEStage(Stage):
    def __init__(self, run: Run) -> None:
        super().__init__(run)
        mc = run.model_cfg
        torch.manual_seed(run.cfg.seed)
        self.vae = VAE(mc.vae)
        o = run.cfg.vae
        self.init_info: dict = {}
        if o.init_checkpoint:
            from npc_runtime.train.flow import load_lpm
            donor, self.init_info = load_lpm(o.init_checkpoint, causal=False)
            if donor.cfg.vae != mc.vae:
                raise ValueError(f"vae.init_checkpoint {o.init_checkpoint}: VAE config differs")
            self.vae.load_state_dict(donor.vae.state_dict())
        if not o.train_encoder:
            # Decoder-only: the latent space (encoder + latent_scale) stays bit-identical, so
            # every Base/Online LPM trained on it keeps working with the new decoder.
            for p in self.vae.encoder.parameters():
                p.requires_grad_(False)
        self.vae.to(run.device).to(memory_format=torch.channels_last)
        self.net = run.dist.wrap(Reconstruction(self.vae))
        self.modules["vae"] = self.vae
        self.optimizers["vae"] = self.optimizer(self.vae.parameters())
        self._eval = eval_frames(run.cfg.data, mc.frame_size) if run.dist.main else None
        # Frames are always frame_size square: the face weights are built once, not per step.
        self._face = window_weights((mc.frame_size, mc.frame_size), o.face_window,
                                    o.face_weight).to(run.device) if o.face_weight != 1.0 \
            else None

    def train_step(self, step: int) -> dict[str, float]:
        run, o = self.run, self.run.cfg.vae
        x = run.sampler.frames(step, run.dist.rank, run.cfg.batch_size).to(run.device)
        x = x.contiguous(memory_format=torch.channels_last)
        self.vae.train()
        if not o.train_encoder:
            self.vae.encoder.eval()
        shape = (x.shape[0], self.vae.cfg.latent_channels, x.shape[2] // self.vae.cfg.downsample,
                 x.shape[3] // self.vae.cfg.downsample)
        eps = run.randn(shape, step, salt=1) if o.sample_posterior else None
        recon, mean, logvar = self.net(x, eps)
        loss, logs = vae_loss(recon, x, mean, logvar, o.l1, o.l2,
                              o.kl if o.train_encoder else 0.0, o.edge_weight, self._face)
        logs["grad_norm"] = self.apply("vae", loss, [p for p in self.vae.parameters()
                                                     if p.requires_grad])
        return logs

    def evaluate(self, step: int) -> dict[str, float]:
        self.vae.eval()
        rec = reconstruct(self.vae, self._eval)
        p = psnr(rec, self._eval)
        n = min(8, len(rec))
        save_grid([self._eval[:n], rec[:n]], self.run.out / "samples" / f"vae-{step:07d}.png")
        return {"psnr_db": float(p.mean()), "psnr_db_min": float(p.min())}

    def export(self, directory: Path) -> dict[str, Any]:
        run, mc = self.run, self.run.model_cfg
        self.vae.eval()
        # Frames of the current pool, drawn under a rank id that never trains (not a batch).
        if run.cfg.vae.train_encoder:
            fit = run.sampler.frames(self.step, 10**6, run.cfg.vae.scale_frames)
            scale = fit_latent_scale(self.vae, fit)
            self.vae.latent_scale.fill_(scale)
        else:                               # the latent space is the init checkpoint's
            scale = float(self.vae.latent_scale)
        metrics = self.evaluate(self.step)
        torch.manual_seed(0)                # the same random DiT/audio as an untrained default
        lpm = LPM(mc, causal=True)
        lpm.vae.load_state_dict(self.vae.state_dict())
        info = {"vae": "trained", "audio": "untrained (random init, seed 0)",
                "dit": "untrained (random init, seed 0)", "stage": "vae",
                "vae_steps": self.step, "vae_batch": run.cfg.batch_size,
                "psnr_db": round(metrics["psnr_db"], 2),
                "psnr_db_min": round(metrics["psnr_db_min"], 2),
                "psnr_target_db": TARGET_PSNR_DB,
                "meets_psnr_target": bool(metrics["psnr_db"] >= TARGET_PSNR_DB),
                "psnr_eval": f"{len(self._eval)} held-out frames (split=eval, seeds "
                             f"{run.cfg.data.eval_seed}+)",
                "latent_scale": round(scale, 5), "recipe": "npc-runtime train vae"}
        if run.cfg.vae.init_checkpoint:
            info["vae_init"] = run.cfg.vae.init_checkpoint
            info["vae_init_psnr_db"] = self.init_info.get("psnr_db")
        if not run.cfg.vae.train_encoder:
            info["vae_decoder_only"] = True
            info["vae_steps"] = (f"{self.init_info.get('vae_steps', '?')} + {self.step} "
                                 "decoder-only")
        save_checkpoint(directory, lpm, mc, trained=False, info=info)
        log.info("VAE export %s: PSNR %.2f dB, latent_scale %.4f", directory,
                 metrics["psnr_db"], scale)
        return info
