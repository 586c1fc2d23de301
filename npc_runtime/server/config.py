"""Typed sidecar configuration; YAML is loaded into these dataclasses at the edge.

A config file mirrors the nesting (`limits:`, `stream:`); unknown keys are an error so a typo
never silently falls back to a default. Example::

    address: 127.0.0.1
    port: 50051
    data_dir: ./npc_data
    limits: {max_sessions: 8}
    stream: {default_texture_format: rgba8}
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
class ServerConfig:
    address: str = "127.0.0.1"            # local only unless asked otherwise
    port: int = 50051
    data_dir: str = "npc_data"
    device: str = "cpu"
    model_steps: int = 0                  # sampling steps per chunk; 0 = the checkpoint's own
    warmup_chunks: int = 2                # chunks run at startup so the first client is not slow
    shutdown_grace_s: float = 5.0         # SIGTERM: streams drain this long, then close
    limits: Limits = field(default_factory=Limits)
    stream: StreamConfig = field(default_factory=StreamConfig)

    def validate(self) -> "ServerConfig":
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        self.limits.validate()
        self.stream.validate()
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
