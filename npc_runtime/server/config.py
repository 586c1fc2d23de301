"""Typed sidecar configuration; YAML is loaded into these dataclasses at the edge.

A config file mirrors the nesting (`limits:`, `stream:`); unknown keys are an error so a typo
never silently falls back to a default. Example::

    address: 127.0.0.1
    port: 50051
    data_dir: ./npc_data
    limits: {max_sessions: 8}
    stream: {default_texture_format: rgba8}
    scheduler: {hero_npcs: [king], degraded_steps: 1}
    admission: {target_utilisation: 0.75}
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

MIB = 1 << 20


@dataclass
class Limits:
    """What the server accepts; reported to clients in ServerInfo.limits."""
    max_message_bytes: int = 24 * MIB     # covers 4 images at max_image_bytes plus fields
    min_reference_images: int = 1
    max_reference_images: int = 4
    max_image_bytes: int = 5 * MIB
    max_image_pixels: int = 4096 * 4096
    min_image_side: int = 16
    max_sessions: int = 16
    min_sample_rate: int = 8000
    max_sample_rate: int = 48000
    max_audio_chunk_s: float = 10.0       # one AudioChunk message
    max_audio_ahead_s: float = 30.0       # buffered beyond the frame clock before back-pressure
    max_audio_gap_s: float = 60.0         # silence a pts jump may insert
    max_transition_s: float = 10.0
    max_presets: int = 32
    max_display_name_chars: int = 256
    max_pending_cues: int = 256           # emotion cues / line markers not yet reached

    def validate(self) -> None:
        if not 1 <= self.min_reference_images <= self.max_reference_images:
            raise ValueError("limits: need 1 <= min_reference_images <= max_reference_images")
        if self.max_audio_chunk_s > self.max_audio_ahead_s:
            # a chunk longer than the buffer could never be accepted
            raise ValueError("limits: max_audio_chunk_s must not exceed max_audio_ahead_s")
        if self.max_message_bytes < self.max_image_bytes:
            raise ValueError("limits: max_message_bytes must be at least max_image_bytes")
        if not 1 <= self.min_sample_rate <= self.max_sample_rate:
            raise ValueError("limits: bad sample rate range")


@dataclass
class StreamConfig:
    """Pacing of Perform streams."""
    default_texture_format: str = "bc1"   # "bc1" | "rgba8"
    # Frames are computed this many chunk periods before they are due, to absorb compute time.
    compute_lead_chunks: float = 1.0
    # Extra playout delay for network jitter on the client's audio.
    jitter_margin_s: float = 0.06
    # When the engine is this far behind real time, a stream skips ahead (FRAMES_DROPPED).
    max_lag_s: float = 1.0
    # RMS level (dBFS) above which a frame counts as speaking / listening.
    vad_threshold_dbfs: float = -45.0

    def validate(self) -> None:
        if self.default_texture_format not in ("bc1", "rgba8"):
            raise ValueError("stream.default_texture_format must be 'bc1' or 'rgba8'")
        if self.compute_lead_chunks < 0 or self.jitter_margin_s < 0 or self.max_lag_s <= 0:
            raise ValueError("stream: lead, margin and max lag must be non-negative")


@dataclass
class SchedulerConfig:
    """How the engine batches sessions and degrades under overload (see docs/scaling.md)."""
    # Most sessions stepped in one model call; 1 = one at a time (the baseline bench perf uses).
    max_batch: int = 64
    # Start each stream's chunk clock on the engine's tick grid (one tick = one chunk period),
    # so every stream falls due at the same instants and is batched; costs up to one chunk
    # period of extra latency per stream (half on average).
    align_to_tick: bool = True
    # False: always full quality (overload shows as lag, then FRAMES_DROPPED); bench perf
    # measures with it off so its figures are at full quality.
    degrade: bool = True
    # Sampling steps used for non-hero sessions under overload (degradation level 1).
    degraded_steps: int = 1
    # Level >= 2 holds every other chunk of BACKGROUND sessions (they show 12.5 of 25 fps).
    # Levels rise when a step is predicted (or observed) to finish after the earliest
    # deadline of its batch, and fall after this many consecutive on-time ticks.
    recover_ticks: int = 25
    # NPC ids that are heroes (never degraded) / background (first to lose fps) by default;
    # a stream's `npc-priority` metadata overrides these.
    hero_npcs: list = field(default_factory=list)
    background_npcs: list = field(default_factory=list)

    def validate(self) -> None:
        if self.max_batch < 1:
            raise ValueError("scheduler.max_batch must be >= 1")
        if not 1 <= self.degraded_steps <= 4:
            raise ValueError("scheduler.degraded_steps must be 1..4")
        if self.recover_ticks < 1:
            raise ValueError("scheduler.recover_ticks must be >= 1")
        for name in ("hero_npcs", "background_npcs"):
            if not all(isinstance(x, str) for x in getattr(self, name)):
                raise ValueError(f"scheduler.{name} must be a list of NPC ids")


@dataclass
class AdmissionConfig:
    """Capacity from measurement: streams admitted while the measured cost model says one batch
    of all of them fits in `target_utilisation` of a chunk period (see docs/scaling.md)."""
    # False: capacity is limits.max_sessions, fixed (tests; operators who size replicas by hand).
    measured: bool = True
    target_utilisation: float = 0.75      # headroom for gRPC, texture encoding, jitter
    calibrate: bool = True                # time model steps at startup (else learn online)
    calibration_batch: int = 4            # batch sizes 1 and this are timed at startup
    calibration_repeats: int = 2
    # At least this many streams are admitted even when one stream alone does not fit in real
    # time (they run degraded): a sidecar that admits nobody is of no use to the game.
    min_capacity: int = 1
    # Observations kept per sampling-step count; older ones are forgotten (load changes).
    window: int = 64

    def validate(self) -> None:
        if not 0 < self.target_utilisation <= 1:
            raise ValueError("admission.target_utilisation must be in (0, 1]")
        if self.calibration_batch < 1 or self.calibration_repeats < 1 or self.window < 4:
            raise ValueError("admission: calibration_batch/repeats >= 1, window >= 4")
        if self.min_capacity < 0:
            raise ValueError("admission.min_capacity must be >= 0")


@dataclass
class ServerConfig:
    address: str = "127.0.0.1"            # local only unless asked otherwise
    port: int = 50051
    data_dir: str = "npc_data"
    device: str = "cpu"
    # "" = the checkpoint shipped in the package; a preset name (tiny, small, base) or a model
    # config YAML = that architecture, seeded and UNTRAINED (speed benchmarks); a directory =
    # a checkpoint.
    model: str = ""
    model_steps: int = 0                  # sampling steps per chunk; 0 = the checkpoint's own
    # How far tagged emotions are pushed from neutral (the model's stream.emotion_gain;
    # docs/model.md); 0 = the checkpoint's own. Above it faces read stronger, and less like the NPC.
    model_emotion_gain: float = 0.0
    warmup_chunks: int = 2                # chunks run at startup so the first client is not slow
    shutdown_grace_s: float = 5.0         # SIGTERM: streams drain this long, then close
    # torch intra-op threads of the engine; 0 = torch's default. On a shared, oversubscribed CPU
    # 1 avoids OpenMP threads spinning against each other (see docs/scaling.md).
    torch_threads: int = 0
    metrics_port: int = -1                # Prometheus /metrics on address:port; 0 = any, -1 = off
    limits: Limits = field(default_factory=Limits)
    stream: StreamConfig = field(default_factory=StreamConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    admission: AdmissionConfig = field(default_factory=AdmissionConfig)

    def validate(self) -> "ServerConfig":
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        if self.model_emotion_gain and not 0 < self.model_emotion_gain <= 4:
            raise ValueError(f"model_emotion_gain must be 0 (the checkpoint's own) or in "
                             f"(0, 4], got {self.model_emotion_gain}")
        if self.torch_threads < 0 or not -1 <= self.metrics_port <= 65535:
            raise ValueError("torch_threads must be >= 0 and metrics_port -1..65535")
        self.limits.validate()
        self.stream.validate()
        self.scheduler.validate()
        self.admission.validate()
        return self

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "ServerConfig":
        return _build(cls, raw, "").validate()

    @classmethod
    def from_yaml(cls, path: str | Path) -> "ServerConfig":
        raw = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
        return cls.from_dict(raw)


def _build(cls: type, raw: Mapping[str, Any], where: str):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(raw) - set(fields)
    if unknown:
        raise ValueError(f"unknown config keys {sorted(where + k for k in unknown)}; "
                         f"known: {sorted(where + k for k in fields)}")
    kwargs = {}
    for name, value in raw.items():
        default = getattr(cls(), name) if name in fields else None
        if dataclasses.is_dataclass(default):
            if not isinstance(value, Mapping):
                raise ValueError(f"config key {where}{name} must be a mapping")
            kwargs[name] = _build(type(default), value, f"{where}{name}.")
        else:
            kind = type(default)
            if kind is float and isinstance(value, int):
                value = float(value)
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise ValueError(f"config key {where}{name} must be {kind.__name__}, "
                                 f"got {value!r}")
            kwargs[name] = value
    return cls(**kwargs)
