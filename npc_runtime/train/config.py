"""Typed training configs for the three stages, loaded from YAML at the edge.

One `TrainConfig` per run: the stage (`vae`, `base`, `online`), the model (a preset name or a
model YAML, with optional overrides), the optimiser and schedule, checkpoint cadence, the data
source and the stage's own options (`VAEOptions`, `BaseOptions`, `OnlineOptions`). Unknown or
mistyped keys are errors (the same strict reader as the model config). `smoke()` shrinks a
config to a seconds-long run for tests and `--smoke`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from npc_runtime.config import (AudioConfig, DiTConfig, ModelConfig, StreamConfig, VAEConfig,
                                _from_dict, config_to_dict, dataclass_to_dict, load_config,
                                preset)

STAGES = ("vae", "base", "online")


@dataclass(frozen=True)
class DataConfig:
    """Where training frames come from.

    source 'world': sessions generated on the fly by `generate_session(first_seed + i)`; a
    rolling pool of `pool_sessions` sessions, one new session entering every `refresh_every`
    steps (so the batch at step k is a pure function of (seed, k): exact resume for free).
    source 'shards': sessions read from `shards` (a `world make` directory), same sampling.
    """
    source: str = "world"
    shards: str = ""
    first_seed: int = 0
    session_s: float = 8.0
    pool_sessions: int = 16
    refresh_every: int = 25
    eval_sessions: int = 4          # held-out (split='eval') sessions for evaluation
    eval_seed: int = 10_000_000     # the bench's evaluation seed range starts here
    eval_frames: int = 64           # frames scored per evaluation


@dataclass(frozen=True)
class VAEOptions:
    l1: float = 1.0
    l2: float = 1.0
    kl: float = 1e-6                # per-element KL weight (SD-VAE scale): latents stay smooth
    sample_posterior: bool = True
    scale_frames: int = 256         # frames used to fit `latent_scale` at export
    init_checkpoint: str = ""       # start from this checkpoint's VAE (continue / fine-tune)
    train_encoder: bool = True      # False: decoder-only fine-tune; latent space kept bit-exact
    edge_weight: float = 0.0        # L1 weighted by 1 + edge_weight * |target gradient|
    # Reconstruction error inside the face window (canvas x0, x1, y0, y1 in [-1, 1]) weighs
    # face_weight times the rest: eyes, brows, lips are a few pixels of a 128 px frame. The
    # world always frames the face here (the bench probe's face view uses the same region;
    # training states it itself and never imports the bench).
    face_weight: float = 1.0
    face_window: tuple[float, float, float, float] = (-0.65, 0.65, -0.7, 0.6)


@dataclass(frozen=True)
class BaseOptions:
    vae_checkpoint: str = "npc_runtime/weights/tiny"   # a checkpoint dir holding a trained VAE
    clip_chunks: int = 4            # chunks per training clip (bidirectional attention span)
    max_refs: int = 4               # 1..max_refs references drawn per clip
    t_logit_mean: float = 0.0       # logit-normal flow-time sampling (SD3)
    t_logit_std: float = 1.0
    drop_audio: float = 0.1         # condition dropout (classifier-free guidance)
    drop_emotion: float = 0.1
    max_position: int = 4096        # clip start frames drawn in [0, max_position): RoPE coverage
    eval_steps: int = 0             # Base sampling steps at evaluation (0 = config base_steps)
    init_checkpoint: str = ""       # start from this Base run/checkpoint's LPM weights (fine-tune)
    motion_weight: float = 0.0      # motion-weighted flow loss strength (train/auxiliary.py)
    aux_weight: float = 0.0         # weight of the performance-head loss (0 = no head)
    latent_cache: bool = True       # encode each pool session once (exact; saves VAE time)
    mouth_lr_scale: float = 10.0    # learning-rate multiple of the DiT's mouth-track embedding


@dataclass(frozen=True)
class OnlineOptions:
    base_checkpoint: str = ""       # a `train base` run dir or checkpoint dir (the teacher)
    init_checkpoint: str = ""       # continue: the student starts from this Online LPM instead
    clip_chunks: int = 4
    max_refs: int = 4
    ode_steps: int = 1000           # phase (a): ODE-pair regression steps, then phase (b)
    teacher_steps: int = 0          # teacher Euler steps for ODE pairs (0 = config base_steps)
    guidance: float = 1.0           # teacher CFG scale (1 = off)
    objective: str = "dmd"          # phase (b): 'dmd' (fake-score critic) or 'sds' (no critic)
    critic_lr: float = 1e-4
    critic_steps: int = 1           # critic updates per generator update (DMD2 uses 5)
    ode_weight_a: float = 1.0       # ODE regression in phase (a); 0 = no teacher sampling
    ode_weight_b: float = 0.25      # ODE regression kept as a regulariser in phase (b)
    # Flow matching on the real clip at the student's grid times, teacher-forced on the real
    # clean context, in every phase (0 = off): what the truth adds beyond the teacher.
    data_weight: float = 0.0
    # The latent reader (`npc-runtime train reader`, frozen): from step `perf_start` the
    # student's denoised estimates must read as the clip's ground-truth mouth and expression,
    # at weight `perf_weight` (0 = off).
    reader_checkpoint: str = ""
    perf_weight: float = 0.0
    perf_start: int = 0
    # The parameters the reader term scores (empty = every one the reader reads), e.g. only the
    # mouth: jaw_open, lip_width, lip_round.
    read_params: tuple[str, ...] = ()
    mouth_lr_scale: float = 10.0    # learning-rate multiple of the DiT's mouth-track embedding
    dmd_t_min: float = 0.02
    motion_weight: float = 0.0      # motion-weighted ODE regression (train/auxiliary.py)
    dmd_t_max: float = 0.98


@dataclass(frozen=True)
class TrainConfig:
    stage: str = "vae"
    model: str = "tiny"             # a preset name or a path to a model YAML
    model_overrides: dict = field(default_factory=dict)
    seed: int = 0
    steps: int = 10_000
    batch_size: int = 8
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 200
    min_lr_ratio: float = 0.1       # cosine decay to lr * min_lr_ratio
    grad_clip: float = 1.0
    betas: tuple = (0.9, 0.99)
    threads: int = 1                # torch.set_num_threads (CPU); 0 = torch's default
    device: str = "auto"            # 'auto' = cuda when available
    log_every: int = 10
    eval_every: int = 250
    ckpt_every_steps: int = 100
    ckpt_every_minutes: float = 5.0
    keep_checkpoints: int = 2
    data: DataConfig = field(default_factory=DataConfig)
    vae: VAEOptions = field(default_factory=VAEOptions)
    base: BaseOptions = field(default_factory=BaseOptions)
    online: OnlineOptions = field(default_factory=OnlineOptions)

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.data.source not in ("world", "shards"):
            raise ValueError(f"data.source must be 'world' or 'shards', got {self.data.source!r}")
        if self.online.objective not in ("dmd", "sds"):
            raise ValueError(f"online.objective must be 'dmd' or 'sds'")
        if self.vae.edge_weight < 0:
            raise ValueError("vae.edge_weight must be >= 0")
        if self.vae.face_weight < 1:
            raise ValueError("vae.face_weight must be >= 1 (1 = the face weighs like the rest)")
        if len(self.vae.face_window) != 4:
            raise ValueError("vae.face_window: expected [x0, x1, y0, y1]")
        x0, x1, y0, y1 = self.vae.face_window
        if not (-1 <= x0 < x1 <= 1 and -1 <= y0 < y1 <= 1):
            raise ValueError(f"vae.face_window {self.vae.face_window}: need -1 <= x0 < x1 <= 1 "
                             "and -1 <= y0 < y1 <= 1")
        if not self.vae.train_encoder and not self.vae.init_checkpoint:
            raise ValueError("vae.train_encoder: false needs vae.init_checkpoint (a trained "
                             "encoder to keep)")
        if min(self.base.motion_weight, self.base.aux_weight, self.online.motion_weight) < 0:
            raise ValueError("base.motion_weight, base.aux_weight and online.motion_weight "
                             "must be >= 0")
        o = self.online
        if min(o.ode_weight_a, o.ode_weight_b, o.data_weight, o.perf_weight) < 0:
            raise ValueError("online.ode_weight_a, ode_weight_b, data_weight and perf_weight "
                             "must be >= 0")
        if o.mouth_lr_scale <= 0 or self.base.mouth_lr_scale <= 0:
            raise ValueError("base.mouth_lr_scale and online.mouth_lr_scale must be > 0")
        if o.perf_start < 0:
            raise ValueError("online.perf_start must be >= 0")
        if (o.perf_weight > 0) != bool(o.reader_checkpoint):
            raise ValueError("online.perf_weight > 0 and online.reader_checkpoint go together "
                             "(the reader term needs a reader; a reader needs a weight)")
        if self.stage == "online" and o.ode_steps > 0 and o.ode_weight_a == 0 \
                and o.data_weight == 0:
            raise ValueError("online: phase (a) has no loss (ode_weight_a and data_weight "
                             "are both 0)")

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def model_config(self) -> ModelConfig:
        base = load_config(self.model) if self.model.endswith((".yaml", ".yml")) else \
            preset(self.model)
        if not self.model_overrides:
            return base
        merged = _deep_merge(config_to_dict(base), dict(self.model_overrides))
        from npc_runtime.config import config_from_dict
        return config_from_dict(merged)


def _deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) \
            else v
    return out


# A micro model with every code path of `tiny`: the smoke runs and tests train this.
SMOKE_MODEL: dict = config_to_dict(ModelConfig(
    name="micro", frame_size=32, vae=VAEConfig(channels=(8, 8, 8)),
    audio=AudioConfig(dim=32, layers=1, heads=2, frame_radius=2),
    dit=DiTConfig(dim=64, depth=2, heads=2, rope_dims=16),
    stream=StreamConfig(window_chunks=2, online_steps=2, base_steps=4)))


def smoke(cfg: TrainConfig) -> TrainConfig:
    """A seconds-long version of `cfg`: micro model, tiny batches, short sessions."""
    model = dict(SMOKE_MODEL)
    model.pop("name")
    return cfg.replace(
        model="tiny", model_overrides={**model, "name": "micro"}, steps=min(cfg.steps, 6),
        batch_size=2, warmup_steps=2, log_every=1, eval_every=3, ckpt_every_steps=3,
        ckpt_every_minutes=60.0,
        data=dataclasses.replace(cfg.data, source="world", session_s=1.6, pool_sessions=2,
                                 refresh_every=2, eval_sessions=1, eval_frames=8),
        vae=dataclasses.replace(cfg.vae, scale_frames=8),
        # The stage inputs of full runs do not fit the micro model: smoke runs start from
        # scratch (tests chain smoke stages by setting these explicitly).
        base=dataclasses.replace(cfg.base, clip_chunks=2, max_refs=2, max_position=64,
                                 eval_steps=2, vae_checkpoint="", init_checkpoint=""),
        online=dataclasses.replace(cfg.online, clip_chunks=3, max_refs=2, ode_steps=3,
                                   teacher_steps=3, base_checkpoint="",
                                   init_checkpoint="", reader_checkpoint="",
                                   perf_weight=0.0))


# ---------------------------------------------------------------------------------- YAML edge
def train_config_from_dict(data: dict[str, Any]) -> TrainConfig:
    data = dict(data)
    overrides = data.pop("model_overrides", None) or {}
    if not isinstance(overrides, dict):
        raise ValueError("train config.model_overrides: expected a mapping")
    cfg = _from_dict(TrainConfig, data, "train config")
    cfg = cfg.replace(model_overrides=overrides, betas=tuple(cfg.betas),
                      vae=dataclasses.replace(cfg.vae, face_window=tuple(
                          float(v) for v in cfg.vae.face_window)),
                      online=dataclasses.replace(cfg.online, read_params=tuple(
                          str(v) for v in cfg.online.read_params)))
    cfg.model_config()              # fail early on a bad model name or override
    return cfg


def load_train_config(path: str | Path) -> TrainConfig:
    return train_config_from_dict(yaml.safe_load(Path(path).read_text()) or {})


def train_config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    return dataclass_to_dict(cfg)


def save_train_config(cfg: TrainConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(train_config_to_dict(cfg), sort_keys=False))
