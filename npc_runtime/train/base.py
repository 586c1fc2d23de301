"""Stage 2: the Base LPM, a bidirectional clip model trained by flow matching.

Per step: clips of `clip_chunks` chunks from world sessions -> frozen VAE latents x0; one flow
time per clip (logit-normal), x_t = (1 - t) x0 + t noise; the LPM predicts v = noise - x0 from
x_t, its 1..4 reference images (the identity sink), the SPEAK/LISTEN audio windows of each
chunk and the per-frame emotion; MSE on v. Audio and emotion are dropped independently with
small probabilities so the model also learns the unconditional velocity (optional CFG).

The audio encoder and the DiT train; the VAE comes frozen from stage 1 (`vae_checkpoint`).
Evaluation: the flow loss on held-out (eval-split) clips at fixed times, and a strip of frames
sampled with the Base LPM's full step count next to the ground truth.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from npc_runtime.checkpoint import save_checkpoint
from npc_runtime.model.lpm import LPM
from npc_runtime.sampler import flow_timesteps
from npc_runtime.train.auxiliary import PerfHead, aux_targets, motion_weights
from npc_runtime.train.data import Clip, SessionSource, clip_batch, to_uint8
from npc_runtime.train.flow import (Conditioning, ConditionedVelocity, LatentCache,
                                    encode_latents, freeze, guided, interpolate, load_lpm,
                                    sample_clip, sample_t)
from npc_runtime.train.loop import Run, Stage
from npc_runtime.train.mouth import mouth_optimizer
from npc_runtime.train.visuals import save_grid

log = logging.getLogger(__name__)
EVAL_TIMES = (0.1, 0.3, 0.5, 0.7, 0.9)


def eval_clips(run: Run, n_chunks: int, max_refs: int, count: int = 2) -> Clip:
    """Fixed held-out clips (split='eval' sessions), the same at every evaluation."""
    src = SessionSource(run.cfg.data, run.model_cfg.frame_size, "eval",
                        cache_size=run.cfg.data.eval_sessions)
    sessions = [src[i % run.cfg.data.eval_sessions] for i in range(count)]
    return clip_batch(run.model_cfg, sessions, np.random.default_rng(1234), n_chunks,
                      max_refs, max_position=run.cfg.base.max_position)


def load_vae_into(lpm: LPM, checkpoint: str | Path) -> dict:
    """Copy the (trained) VAE of a checkpoint into `lpm`; -> that checkpoint's info."""
    donor, info = load_lpm(checkpoint, causal=False)
    if donor.cfg.vae != lpm.cfg.vae or donor.cfg.frame_size != lpm.cfg.frame_size:
        raise ValueError(f"{checkpoint}: its VAE config differs from the model being trained")
    lpm.vae.load_state_dict(donor.vae.state_dict())
    if info.get("vae") != "trained":
        log.warning("%s: info does not say its VAE is trained (%s)", checkpoint, info)
    return info


class BaseStage(Stage):
    def __init__(self, run: Run) -> None:
        super().__init__(run)
        o, mc = run.cfg.base, run.model_cfg
        torch.manual_seed(run.cfg.seed)
        self.lpm = LPM(mc, causal=False)
        self.vae_info = load_vae_into(self.lpm, o.vae_checkpoint) if o.vae_checkpoint else {}
        if mc.audio.mouth_track and not o.init_checkpoint:
            raise ValueError("a Base with a mouth track starts from a checkpoint that has a "
                             "trained one (base.init_checkpoint, made by `npc-runtime train "
                             "mouth`)")
        self.init_info = self._init_from(o.init_checkpoint) if o.init_checkpoint else {}
        freeze(self.lpm.vae)
        if self.lpm.mouth is not None:
            freeze(self.lpm.mouth)          # trained on audio alone; the DiT learns to follow it
        if self.lpm.mouth_edit is not None:
            freeze(self.lpm.mouth_edit)     # trained on renders (`train editor`); kept as is
        self.lpm.to(run.device)
        self.head = PerfHead(mc.dit.dim).to(run.device) if o.aux_weight > 0 else None
        self.net = run.dist.wrap(ConditionedVelocity(self.lpm, self.head))
        self.modules["lpm"] = self.lpm
        params = list(self.lpm.parameters())
        if self.head is not None:
            self.modules["perf_head"] = self.head
            params += list(self.head.parameters())
        self.optimizers["lpm"] = mouth_optimizer(self.optimizer, self.lpm, params,
                                                 o.mouth_lr_scale)
        self.latents = LatentCache(self.lpm.vae, run.cfg.data.pool_sessions + 4) \
            if o.latent_cache else None
        self._eval = eval_clips(run, o.clip_chunks, o.max_refs).to(run.device) \
            if run.dist.main else None

    def _init_from(self, checkpoint: str) -> dict:
        """Fine-tune: the DiT and audio encoder of an earlier Base run.

        The model configs must match, except for the latent geometry (the VAE and the DiT's
        patch size) and the audio alignment (`audio.frame_radius`): a Base trained in another
        latent space (a new VAE) still hands over its audio encoder and every DiT weight whose
        shape is unchanged (attention, MLPs, conditioning); the layers whose shape changed or
        that the donor lacks (patch embedding, output head, frame-audio positions) start
        fresh, as in a new run."""
        donor, info = load_lpm(checkpoint, causal=False)
        own_cfg = self.lpm.cfg
        geometry = {"vae": own_cfg.vae,
                    "dit": dataclasses.replace(donor.cfg.dit, patch=own_cfg.dit.patch),
                    "audio": dataclasses.replace(donor.cfg.audio,
                                                 frame_radius=own_cfg.audio.frame_radius)}
        if own_cfg.audio.mouth_track and donor.mouth is None:
            raise ValueError(f"init_checkpoint {checkpoint}: it has no mouth track to start "
                             "from (add one with `npc-runtime train mouth`)")
        if donor.cfg.replace(**geometry) != own_cfg:
            raise ValueError(f"init_checkpoint {checkpoint}: its model config differs (only "
                             "the VAE, the DiT patch size and audio.frame_radius may differ)")
        self.lpm.audio.load_state_dict(donor.audio.state_dict())
        if self.lpm.mouth is not None:
            self.lpm.mouth.load_state_dict(donor.mouth.state_dict())
        own, theirs = self.lpm.dit.state_dict(), donor.dit.state_dict()
        fresh = sorted(k for k in own if k not in theirs or theirs[k].shape != own[k].shape)
        self.lpm.dit.load_state_dict({k: theirs[k] if k not in fresh else own[k] for k in own})
        info = dict(info)
        if fresh:
            info["reinitialised"] = fresh
            log.info("latent space or audio alignment changed: %s start fresh", ", ".join(fresh))
        log.info("initialised the DiT and audio encoder from %s (%s)", checkpoint,
                 info.get("dit", "?"))
        return info

    def train_step(self, step: int) -> dict[str, float]:
        run, o = self.run, self.run.cfg.base
        self.lpm.train()
        self.lpm.vae.eval()
        clip, sessions = run.sampler.clips_and_sessions(step, run.dist.rank, run.cfg.batch_size,
                                                        o.clip_chunks, o.max_refs)
        clip = clip.to(run.device)
        b, f = clip.frames.shape[:2]
        x0 = self.latents.clip(clip, sessions, f) if self.latents is not None else \
            encode_latents(self.lpm.vae, clip.frames)                     # (B, F, c, h, w)
        noise = run.randn(x0.shape, step, salt=1)
        t = sample_t(run.generator(step, 2), b, o.t_logit_mean, o.t_logit_std).to(run.device)
        t = t[:, None].expand(b, f)
        keep = run.rand((2, b), step, salt=3)
        keep_audio, keep_emotion = keep[0] >= o.drop_audio, keep[1] >= o.drop_emotion
        out = self.net(clip, interpolate(x0, noise, t), t, keep_audio, keep_emotion)
        v, perf = out if self.head is not None else (out, None)
        err = (v - (noise - x0)).square()
        flow = (err * motion_weights(x0, o.motion_weight)).mean() if o.motion_weight > 0 \
            else err.mean()
        logs = {"flow": float(flow.detach())}
        loss = flow
        if perf is not None:
            # Only where the conditioning that explains the targets was kept.
            keep_both = (keep_audio & keep_emotion).to(perf.dtype)[:, None, None]
            aux = ((perf - aux_targets(clip.perf)).square() * keep_both).sum() / \
                (keep_both.sum() * f * perf.shape[-1]).clamp_min(1.0)
            loss = loss + o.aux_weight * aux
            logs["aux"] = float(aux.detach())
        grad = self.apply("lpm", loss, [p for g in self.optimizers["lpm"].param_groups
                                        for p in g["params"]])
        return {"loss": float(loss.detach()), "grad_norm": grad, **logs}

    @torch.no_grad()
    def validation_loss(self, clip: Clip) -> float:
        """Flow loss averaged over EVAL_TIMES with fixed noise: comparable across runs."""
        self.lpm.eval()
        x0 = encode_latents(self.lpm.vae, clip.frames)
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(7)).to(x0.device)
        cond = Conditioning(self.lpm, clip)
        losses = []
        for t in EVAL_TIMES:
            tt = torch.full(x0.shape[:2], t, device=x0.device)
            v = self.lpm.velocity(interpolate(x0, noise, tt), tt, cond.ctx, cond.sink)
            losses.append(F.mse_loss(v, noise - x0).item())
        return float(np.mean(losses))

    @torch.no_grad()
    def evaluate(self, step: int) -> dict[str, float]:
        clip = self._eval
        out = {"val_loss": self.validation_loss(clip)}
        one = Clip(clip.frames[:1], clip.references[:1], clip.speak[:1], clip.listen[:1],
                   clip.emotion[:1], clip.positions[:1], clip.session_seeds[:1],
                   clip.start_frames[:1], clip.perf[:1])
        steps = self.run.cfg.base.eval_steps or self.run.model_cfg.stream.base_steps
        x0 = encode_latents(self.lpm.vae, one.frames)
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(11)).to(x0.device)
        z, _ = sample_clip(guided(self.lpm, Conditioning(self.lpm, one), None, 1.0), noise,
                           flow_timesteps(steps, self.run.model_cfg.stream.timestep_shift))
        gen = to_uint8(self.lpm.vae.decode(z[0]))
        truth = to_uint8(one.frames[0])
        out["sample_latent_mse"] = float(F.mse_loss(z, x0))
        save_grid([truth, gen], self.run.out / "samples" / f"base-{step:07d}.png")
        return out

    def export(self, directory: Path) -> dict[str, Any]:
        run, o = self.run, self.run.cfg.base
        extra = []
        if o.init_checkpoint:
            extra.append(f"initialised from {o.init_checkpoint} ({self.init_info.get('dit', '?')})")
            if self.init_info.get("reinitialised"):
                extra.append("re-initialised: " + ", ".join(self.init_info["reinitialised"]))
        if "mouth_track" in self.init_info:
            extra.append(f"mouth track: {self.init_info['mouth_track']}")
        if o.motion_weight > 0:
            extra.append(f"motion-weighted flow loss {o.motion_weight:g}")
        if o.aux_weight > 0:
            extra.append(f"performance-head loss {o.aux_weight:g}")
        info = {"stage": "base", "causal": False,
                "vae": "trained" if self.vae_info.get("vae") == "trained" else "untrained",
                "vae_psnr_db": self.vae_info.get("psnr_db", self.vae_info.get("vae_psnr_db")),
                "audio": f"trained (Base LPM flow matching, {self.step} steps)",
                "dit": f"trained as the bidirectional Base LPM ({self.step} steps, batch "
                       f"{run.cfg.batch_size} x {run.cfg.base.clip_chunks} chunks); not distilled "
                       "for streaming" + "".join(f"; {e}" for e in extra),
                "val_loss": (run.history[-1].get("eval_val_loss") if run.history else None),
                "clip_chunks": run.cfg.base.clip_chunks,
                "recipe": "npc-runtime train base"}
        save_checkpoint(directory, self.lpm, run.model_cfg, trained=False, info=info)
        return info
