"""Stage 3: distil the causal few-step Online LPM from the bidirectional Base LPM.

The student is `LPM(causal=True)` initialised from the Base weights (CausVid); it samples each
chunk with `online_steps` Euler steps on the grid S = flow_timesteps(online_steps, shift), the
exact sampler of `PerformanceModel`. Two phases (step < `ode_steps`, then the rest):

(a) ODE-pair regression (CausVid's initialisation). The teacher integrates the whole clip with
    `teacher_steps` Euler steps (optionally with CFG), recording its states x(s_i) on the
    student's grid. In the teacher-forcing layout [clean teacher x0 | noisy chunks] (one
    forward, `LPM.teacher_forcing_mask`; equal to the stream by tests/model/test_streaming.py)
    every noisy chunk sits at a random grid time s_i and regresses the secant velocity
    (x(s_i) - x(s_{i+1})) / (s_i - s_{i+1}): an Euler step of the student then lands on the
    teacher's trajectory. Departure from CausVid: the target is the secant to the next grid
    point rather than the final x0 (identical for the last step, and what a multi-step Euler
    student needs); clean context is the teacher's own sample, as at inference.

(b) Self-Forcing. The student rolls out the clip autoregressively through its own generated
    context (dense block-causal prefix; equal to the paged-cache stream), chunk by chunk, with
    gradients only through the last denoising step of each chunk and the context detached
    (Self-Forcing's gradient truncation). The rollout x̂ is scored against the teacher with
    distribution matching distillation (DMD, as Self-Forcing): noise x̂ to a random t, and move
    x̂ along x0_fake(x_t) - x0_real(x_t), where x0_real is the frozen teacher's denoised
    estimate and x0_fake that of a critic trained online by flow matching on the student's
    samples. objective 'sds' drops the critic (x0_fake := x̂): a consistency pull toward the
    teacher's denoising, cheaper, more mode-seeking. Departures: bidirectional teacher/critic
    score the whole clip at one t (Self-Forcing uses per-frame t on a causal Wan teacher);
    critic/generator ratio defaults to 1 (DMD2: 5) to fit the CPU budget.

The truth term (`data_weight`, any phase; `ode_weight_a: 0` drops the teacher from phase (a)):
flow matching on the real clip in the same teacher-forcing layout, [clean truth | truth noised
to a grid time s_i], target eps - x0. The teacher caps what ODE pairs can teach (a student
regressing its trajectories inherits its lip sync); the world's renders are the truth, so the
student can also learn from them directly, as DMD2 adds a real-data GAN term to beat its
teacher. A regression, not a GAN: at t = 1 it pulls toward the posterior mean given the
conditioning (the mouth that the audio implies), which is what lip sync scores.

The reader term (`perf_weight`, any phase from `perf_start`): a frozen latent-space expert
(`LatentReader`, trained by `npc-runtime train reader` on training-identity renders) reads the
student's denoised estimates x̂0 = x_t - t v of every teacher-forced chunk, and the student is
trained so that they read as the clip's own ground-truth mouth and expression parameters
(Wav2Lip's frozen sync expert, EMO's expression loss). Unlike the truth term it constrains only a
few scalars that the conditioning determines (jaw, lips, brows, smile), not the whole latent;
blinks and nods are not read. Measured (docs/training.md, "Session 11"): lip sync +0.009, but
emotion accuracy -7 points, as the student gives up the guided teacher's exaggeration.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from npc_runtime.checkpoint import save_checkpoint
from npc_runtime.model.lpm import LPM
from npc_runtime.sampler import flow_timesteps
from npc_runtime.train.auxiliary import READ_PARAMS, motion_weights, read_targets
from npc_runtime.train.base import eval_clips
from npc_runtime.train.data import Clip, to_uint8
from npc_runtime.train.flow import (Conditioning, ConditionedVelocity, cat_context,
                                    encode_latents, freeze, guided, interpolate, load_lpm,
                                    sample_clip, sample_t, slice_context)
from npc_runtime.train.loop import Run, Stage
from npc_runtime.train.mouth import mouth_config, mouth_optimizer
from npc_runtime.train.reader import load_reader
from npc_runtime.train.visuals import save_grid

log = logging.getLogger(__name__)


def refine(grid: list[float], substeps: int) -> list[float]:
    """A finer Euler grid that passes through every point of `grid` (teacher ⊇ student)."""
    out = [grid[0]]
    for a, b in zip(grid[:-1], grid[1:]):
        out += [a + (b - a) * (j + 1) / substeps for j in range(substeps)]
    out[-1] = 0.0
    return out


class Student(nn.Module):
    """The Online LPM's training forwards as one module call (what DDP wraps).

    forward(clip, tf=..., rollout_noise=...) -> {'v_tf': ..., 'x_hat': ...} for whichever
    inputs are given: tf = (clean (B,F,...), noisy (B,F,...), t_noisy (B,F)) for the
    teacher-forcing pass; rollout_noise (B,F,...) for a Self-Forcing rollout."""

    def __init__(self, lpm: LPM, grid: list[float]) -> None:
        super().__init__()
        self.lpm, self.grid = lpm, grid

    def forward(self, clip: Clip, tf: tuple | None = None,
                rollout_noise: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        cond = Conditioning(self.lpm, clip)
        out = {}
        if tf is not None:
            out["v_tf"] = self.teacher_forcing(cond, *tf)
        if rollout_noise is not None:
            out["x_hat"] = self.rollout(cond, rollout_noise)
        return out

    def teacher_forcing(self, cond: Conditioning, clean: torch.Tensor, noisy: torch.Tensor,
                        t_noisy: torch.Tensor) -> torch.Tensor:
        """Velocities of every noisy chunk given the clean chunks before it (one pass)."""
        lpm, f = self.lpm, clean.shape[1]
        n_chunks = f // lpm.cfg.stream.chunk_frames
        mask = lpm.teacher_forcing_mask(n_chunks, cond.sink[0].shape[2], clean.device)
        z = torch.cat([clean, noisy], 1)
        t = torch.cat([torch.zeros_like(t_noisy), t_noisy], 1)
        return lpm.velocity(z, t, cat_context(cond.ctx, cond.ctx), cond.sink, mask)[:, f:]

    def rollout(self, cond: Conditioning, noise: torch.Tensor) -> torch.Tensor:
        """Autoregressive few-step generation; grad flows only through each chunk's last step."""
        lpm, c = self.lpm, self.lpm.cfg.stream.chunk_frames
        b, f = noise.shape[:2]
        clean: list[torch.Tensor] = []
        outs = []
        for k in range(f // c):
            ctx = slice_context(cond.ctx, 0, k + 1, c)
            x = noise[:, k * c:(k + 1) * c]
            steps = list(zip(self.grid[:-1], self.grid[1:]))
            for i, (t, t_next) in enumerate(steps):
                z = torch.cat(clean + [x], 1)
                times = torch.cat([torch.zeros(b, k * c, device=x.device),
                                   torch.full((b, c), t, device=x.device)], 1)
                with torch.set_grad_enabled(torch.is_grad_enabled() and i == len(steps) - 1):
                    v = lpm.velocity(z, times, ctx, cond.sink)[:, -c:]
                    x = x + (t_next - t) * v
            outs.append(x)
            clean.append(x.detach())
        return torch.cat(outs, 1)


class OnlineStage(Stage):
    def __init__(self, run: Run) -> None:
        super().__init__(run)
        o, mc = run.cfg.online, run.model_cfg
        torch.manual_seed(run.cfg.seed)
        if o.base_checkpoint:
            self.teacher, self.base_info = load_lpm(o.base_checkpoint, causal=False)
            # A teacher without the student's mouth track still teaches it: the track is an
            # extra input the student learns to use, not a change to what it generates.
            if mouth_config(self.teacher.cfg) != mouth_config(mc):
                raise ValueError(f"{o.base_checkpoint}: its model config differs from the "
                                 f"online run's ({self.teacher.cfg.name} vs {mc.name})")
        else:
            log.warning("online: no base_checkpoint; distilling from a RANDOM teacher (smoke)")
            self.teacher, self.base_info = LPM(mc, causal=False), {}
        freeze(self.teacher).to(run.device)
        self.student = LPM(mc, causal=True)
        self.init_info = {}
        if o.init_checkpoint:
            self.init_info = self._continue_from(o.init_checkpoint)
        elif mc.audio.mouth_track and self.teacher.mouth is None:
            raise ValueError("a student with a mouth track starts from a checkpoint that has "
                             "one (online.init_checkpoint, made by `npc-runtime train mouth`)")
        else:
            self.student.load_state_dict(self.teacher.state_dict())       # CausVid's init
        freeze(self.student.vae)
        if self.student.mouth is not None and self.teacher.mouth is not None:
            # The student reads the mouth its teacher learned to follow.
            self.student.mouth.load_state_dict(self.teacher.mouth.state_dict())
        if self.student.mouth is not None:
            # Trained on audio alone (`train mouth`); the DiT learns to follow it, not to bend it.
            freeze(self.student.mouth)
        if self.student.mouth_edit is not None:
            freeze(self.student.mouth_edit)  # trained on renders (`train editor`); kept as is
        self.student.to(run.device)
        self.grid = flow_timesteps(mc.stream.online_steps, mc.stream.timestep_shift)
        n_teacher = o.teacher_steps or mc.stream.base_steps
        self.teacher_grid = refine(self.grid, max(1, math.ceil(n_teacher / (len(self.grid) - 1))))
        self.net = run.dist.wrap(Student(self.student, self.grid))
        self.modules["student"] = self.student
        self.optimizers["student"] = mouth_optimizer(self.optimizer, self.student,
                                                     self.student.parameters(), o.mouth_lr_scale)
        if o.objective == "dmd":
            # The teacher's twin (the fake score models what the teacher models; a student's
            # mouth track is not part of it).
            self.critic = LPM(self.teacher.cfg, causal=False)
            self.critic.load_state_dict(self.teacher.state_dict())
            freeze(self.critic.vae)
            self.critic.to(run.device)
            self.critic_net = run.dist.wrap(ConditionedVelocity(self.critic))
            self.modules["critic"] = self.critic
            opt = self.optimizer(self.critic.parameters(), lr=o.critic_lr)
            for g in opt.param_groups:
                g["lr_scale"] = o.critic_lr / run.cfg.lr
            self.optimizers["critic"] = opt
        self.reader = None
        if o.reader_checkpoint:
            self.reader, meta = load_reader(o.reader_checkpoint)
            if self.reader.channels != mc.vae.latent_channels:
                raise ValueError(f"{o.reader_checkpoint}: reads {self.reader.channels}-channel "
                                 f"latents, the model has {mc.vae.latent_channels}")
            freeze(self.reader).to(run.device)
            # Trust each parameter as far as the reader reads it on held-out identities: a
            # parameter it cannot read (R² ~ 0) would only add noise to the student's gradient.
            unknown = sorted(set(o.read_params) - set(READ_PARAMS))
            if unknown:
                raise ValueError(f"online.read_params: {unknown} are not read (the reader "
                                 f"reads {list(READ_PARAMS)})")
            chosen = o.read_params or READ_PARAMS
            r2 = torch.tensor([max(0.0, float(meta["r2_heldout"][n])) if n in chosen else 0.0
                               for n in READ_PARAMS])
            if float(r2.sum()) <= 0:
                raise ValueError(f"{o.reader_checkpoint}: reads nothing of {list(chosen)} "
                                 "(held-out R² <= 0)")
            # Mean 1 over the chosen parameters (all of them by default, as before).
            picked = torch.tensor([n in chosen for n in READ_PARAMS])
            self.read_weights = (r2 / r2[picked].mean()).to(run.device)
            log.info("latent reader %s (held-out R² %s)", o.reader_checkpoint,
                     meta.get("r2_heldout"))
        self._eval = eval_clips(run, o.clip_chunks, o.max_refs).to(run.device) \
            if run.dist.main else None

    def _continue_from(self, checkpoint: str) -> dict:
        """Continue an earlier distillation: the student starts from that Online LPM's weights
        (the critic, if any, still starts from the teacher, as a fresh fake score would)."""
        donor, info = load_lpm(checkpoint, causal=True)
        if donor.cfg != self.student.cfg:
            raise ValueError(f"init_checkpoint {checkpoint}: its model config differs from the "
                             f"online run's ({donor.cfg.name} vs {self.student.cfg.name})")
        if info.get("stage") != "online":
            raise ValueError(f"init_checkpoint {checkpoint}: not an Online LPM (stage "
                             f"{info.get('stage')!r}); a Base LPM goes in base_checkpoint")
        self.student.load_state_dict(donor.state_dict())
        log.info("student initialised from %s (%s)", checkpoint, info.get("dit", "?"))
        return info

    # ------------------------------------------------------------------ teacher
    def teacher_velocity(self, clip: Clip):
        cond = Conditioning(self.teacher, clip)
        g = self.run.cfg.online.guidance
        null = cond.null(self.teacher, clip) if g != 1.0 else None
        return guided(self.teacher, cond, null, g)

    @torch.no_grad()
    def ode_pairs(self, clip: Clip, noise: torch.Tensor) -> tuple[torch.Tensor, list]:
        """Teacher sample x0 (B, F, ...) and its states on the student grid [x(s_0)..x(0)]."""
        x0, kept = sample_clip(self.teacher_velocity(clip), noise, self.teacher_grid,
                               keep_at=self.grid)
        return x0, [kept[t] for t in self.grid[:-1]] + [x0]

    def tf_batch(self, states: list, gen: torch.Generator) -> tuple:
        """Per chunk a random grid index i: (noisy x(s_i), t = s_i, target secant velocity)."""
        c = self.run.model_cfg.stream.chunk_frames
        b, f = states[0].shape[:2]
        idx = torch.randint(len(self.grid) - 1, (b, f // c), generator=gen)
        idx = idx.repeat_interleave(c, 1).to(states[0].device)               # (B, F)
        stack = torch.stack(states)                                          # (S+1, B, F, ...)
        pick = lambda j: torch.gather(stack, 0, j[None, ..., None, None, None].expand(  # noqa
            1, *stack.shape[1:]))[0]
        grid = torch.tensor(self.grid, device=idx.device)
        t, t_next = grid[idx], grid[idx + 1]
        secant = (pick(idx) - pick(idx + 1)) / (t - t_next)[..., None, None, None]
        return pick(idx), t, secant

    def latent_shape(self, clip: Clip) -> tuple:
        """(B, F, c, h, w) of the clip's latents."""
        mc = self.run.model_cfg
        return (*clip.frames.shape[:2], mc.vae.latent_channels, mc.latent_size, mc.latent_size)

    # ------------------------------------------------------------------ steps
    def train_step(self, step: int) -> dict[str, float]:
        run, o = self.run, self.run.cfg.online
        self.student.train()
        clip = run.sampler.clips(step, run.dist.rank, run.cfg.batch_size, o.clip_chunks,
                                 o.max_refs).to(run.device)
        shape = self.latent_shape(clip)
        phase_a = step < o.ode_steps
        ode_weight = o.ode_weight_a if phase_a else o.ode_weight_b
        parts = []  # (name, weight, clean context, noisy, t, target velocity)
        if ode_weight > 0:
            x0_t, states = self.ode_pairs(clip, run.randn(shape, step, salt=1))
            parts.append(("ode", ode_weight, x0_t, *self.tf_batch(states, run.generator(step, 2))))
        if o.data_weight > 0:
            parts.append(("data", o.data_weight, *self.data_batch(clip, shape, step)))
        tf, net_clip = None, clip
        if parts:
            # Teacher pairs and truth go through one student forward (what DDP expects): the
            # clip's conditioning repeated once per part, the parts along the batch.
            tf = tuple(torch.cat([p[k] for p in parts]) for k in (2, 3, 4))
            for _ in parts[1:]:
                net_clip = net_clip.cat(clip)
        noise = None if phase_a else run.randn(shape, step, salt=3)
        if noise is not None and len(parts) > 1:  # the rollout runs on the repeated batch too
            noise = noise.repeat(len(parts), *([1] * (noise.dim() - 1)))
        out = self.net(net_clip, tf=tf, rollout_noise=noise)
        if noise is not None:
            out["x_hat"] = out["x_hat"][:shape[0]]
        logs: dict[str, float] = {"phase": 0.0 if phase_a else 1.0}
        loss = torch.zeros((), device=run.device)
        b = shape[0]
        for j, (name, weight, clean, _, _, target) in enumerate(parts):
            err = (out["v_tf"][j * b:(j + 1) * b] - target).square()
            # Motion weights from the clean clip: the mouth and eyes count more.
            part = (err * motion_weights(clean, o.motion_weight)).mean() \
                if o.motion_weight > 0 else err.mean()
            loss = loss + weight * part
            logs[f"loss_{name}"] = float(part.detach())
        if not phase_a:
            dmd, extra = self.distribution_matching(clip, out["x_hat"], step)
            loss = loss + dmd
            logs.update(extra)
        if self.reader is not None and parts and step >= o.perf_start:
            # Every teacher-forced chunk's denoised estimate, in every part.
            x0_hat = tf[1] - tf[2][..., None, None, None] * out["v_tf"]
            perf = self.read_loss(x0_hat, net_clip)
            loss = loss + o.perf_weight * perf
            logs["loss_read"] = float(perf.detach())
        logs["grad_norm"] = self.apply("student", loss, self.student.parameters())
        if not phase_a and o.objective == "dmd":
            logs.update(self.critic_update(clip, out["x_hat"].detach(), step))
        return logs

    def read_loss(self, x0: torch.Tensor, clip: Clip) -> torch.Tensor:
        """Z-scored squared error of what the frozen reader reads in latents x0 (B, F, ...)
        against the clip's ground-truth parameters, each weighted by the reader's held-out R²
        (gradients reach x0 only)."""
        return self.reader.error(x0.flatten(0, 1), read_targets(clip.perf).flatten(0, 1),
                                 self.read_weights)

    @torch.no_grad()
    def data_batch(self, clip: Clip, shape: tuple, step: int) -> tuple:
        """The real clip as teacher-forcing input: clean truth latents as context and, per
        chunk, the truth noised to a random student grid time s_i with its flow-matching
        target eps - x0 (the secant of the straight path, as the ODE target is the teacher's)."""
        x0 = encode_latents(self.student.vae, clip.frames)
        c = self.run.model_cfg.stream.chunk_frames
        idx = torch.randint(len(self.grid) - 1, (shape[0], shape[1] // c),
                            generator=self.run.generator(step, 7)).repeat_interleave(c, 1)
        t = torch.tensor(self.grid)[idx].to(x0.device)
        noise = self.run.randn(shape, step, salt=6)
        return x0, interpolate(x0, noise, t), t, noise - x0

    def distribution_matching(self, clip: Clip, x_hat: torch.Tensor, step: int
                              ) -> tuple[torch.Tensor, dict[str, float]]:
        run, o = self.run, self.run.cfg.online
        b, f = x_hat.shape[:2]
        with torch.no_grad():
            t = o.dmd_t_min + (o.dmd_t_max - o.dmd_t_min) * run.rand((b,), step, salt=4)
            t = t[:, None].expand(b, f)
            x_t = interpolate(x_hat.detach(), run.randn(x_hat.shape, step, salt=5), t)
            tt = t[..., None, None, None]
            x0_real = x_t - tt * self.teacher_velocity(clip)(x_t, t)
            if o.objective == "dmd":
                self.critic.eval()
                cond = Conditioning(self.critic, clip)
                x0_fake = x_t - tt * self.critic.velocity(x_t, t, cond.ctx, cond.sink)
            else:
                x0_fake = x_hat.detach()
            norm = (x_hat.detach() - x0_real).abs().mean((1, 2, 3, 4), keepdim=True)
            grad = (x0_fake - x0_real) / norm.clamp_min(1e-4)
        loss = 0.5 * F.mse_loss(x_hat, (x_hat - grad).detach())
        return loss, {"loss_dm": float(loss.detach()),
                      "teacher_gap": float((x_hat.detach() - x0_real).square().mean())}

    def critic_update(self, clip: Clip, x_fake: torch.Tensor, step: int) -> dict[str, float]:
        """The fake score: flow matching on the student's own samples."""
        run = self.run
        self.critic.train()
        self.critic.vae.eval()
        losses = []
        b, f = x_fake.shape[:2]
        for j in range(run.cfg.online.critic_steps):
            noise = run.randn(x_fake.shape, step, salt=10 + 2 * j)
            t = sample_t(run.generator(step, 11 + 2 * j), b, 0.0, 1.0).to(run.device)
            t = t[:, None].expand(b, f)
            v = self.critic_net(clip, interpolate(x_fake, noise, t), t)
            loss = F.mse_loss(v, noise - x_fake)
            self.apply("critic", loss, self.critic.parameters())
            losses.append(float(loss.detach()))
        return {"loss_critic": sum(losses) / len(losses)}

    # ------------------------------------------------------------------ evaluation / export
    @torch.no_grad()
    def evaluate(self, step: int) -> dict[str, float]:
        """Student rollout (few steps, its own context) vs the teacher (full steps) from the
        same noise on held-out clips; the frames go to samples/."""
        self.student.eval()
        clip = self._eval
        shape = self.latent_shape(clip)
        noise = torch.randn(shape, generator=torch.Generator().manual_seed(5)).to(self.run.device)
        x_teacher, states = self.ode_pairs(clip, noise)
        student = Student(self.student, self.grid)
        x_student = student.rollout(Conditioning(self.student, clip), noise)
        noisy, t_noisy, target = self.tf_batch(states, torch.Generator().manual_seed(6))
        v = student.teacher_forcing(Conditioning(self.student, clip), x_teacher, noisy, t_noisy)
        truth = encode_latents(self.student.vae, clip.frames)
        rows = [to_uint8(clip.frames[0]), to_uint8(self.student.vae.decode(x_teacher[0])),
                to_uint8(self.student.vae.decode(x_student[0]))]
        save_grid(rows, self.run.out / "samples" / f"online-{step:07d}.png")
        read = {}
        if self.reader is not None:
            # Held out: how well the reader reads the truth, and what it reads in the samples.
            read = {f"read_mse_{name}": float(self.read_loss(x, clip))
                    for name, x in (("truth", truth), ("student", x_student),
                                    ("teacher", x_teacher))}
        return {**read, "student_teacher_mse": float(F.mse_loss(x_student, x_teacher)),
                "student_data_mse": float(F.mse_loss(x_student, truth)),
                "teacher_data_mse": float(F.mse_loss(x_teacher, truth)),
                "ode_loss": float(F.mse_loss(v, target))}

    def export(self, directory: Path) -> dict[str, Any]:
        run, o = self.run, self.run.cfg.online
        last = run.history[-1] if run.history else {}
        info = {"stage": "online", "causal": True,
                "vae": self.base_info.get("vae", "untrained"),
                "vae_psnr_db": self.base_info.get("vae_psnr_db"),
                "audio": "trained (Base LPM, then distilled)" if o.base_checkpoint else
                         "untrained teacher (smoke)",
                "dit": f"Online LPM distilled from {o.base_checkpoint or 'a random teacher'}"
                       + (f" sampled with CFG {o.guidance:g}" if o.guidance != 1.0 else "")
                       + f": {min(o.ode_steps, self.step)} ODE-pair steps + "
                       f"{max(0, self.step - o.ode_steps)} Self-Forcing ({o.objective}) steps"
                       + (f", continuing {o.init_checkpoint} ({self.init_info.get('dit', '?')})"
                          if o.init_checkpoint else ""),
                **({"mouth_track": self.init_info["mouth_track"],
                    "mouth_track_r_heldout": self.init_info.get("mouth_track_r_heldout")}
                   if "mouth_track" in self.init_info else {}),
                "teacher_guidance": o.guidance,
                "sampling_steps": run.model_cfg.stream.online_steps,
                "student_teacher_mse": last.get("eval_student_teacher_mse"),
                "recipe": "npc-runtime train vae -> base -> online"}
        trained = bool(o.base_checkpoint) and self.base_info.get("vae") == "trained"
        save_checkpoint(directory, self.student, run.model_cfg, trained=trained, info=info)
        return info
